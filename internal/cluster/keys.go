package cluster

import "fmt"

// Redis keys. Every key starts with prefix; the scripts build the same
// names from ARGV[1].
const (
	prefix = "gpulock:"
	// channelMatched carries the id of each matched job (a wake-up hint).
	channelMatched = prefix + "matched"
)

func keyFree(profile string) string    { return prefix + "free:" + profile }
func keyGPUs(profile string) string    { return prefix + "gpus:" + profile }
func keyJob(id string) string          { return prefix + "job:" + id }
func keyReg(gpu string) string         { return prefix + "reg:" + gpu }
func keyPrompt(promptID string) string { return prefix + "prompt:" + promptID }

// GPUID names one GPU serving one profile on one machine in the cluster:
// "node/gpu/profile".
func GPUID(node string, gpu int, profile string) string {
	return fmt.Sprintf("%s/%d/%s", node, gpu, profile)
}
