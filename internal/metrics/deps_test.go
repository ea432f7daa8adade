package metrics

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBinaryLinksNoPrometheusClient guards issue 15's start-up budget: the
// gpulock command must not link Prometheus's client libraries or protobuf,
// whose package initialisation alone cost about 1.6 ms per process. Only
// tests may import them (to parse this package's output).
func TestBinaryLinksNoPrometheusClient(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("metrics: the go tool is needed to list the command's packages: %v", err)
		}
		t.Skip("metrics: no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/gpulock/gpulock/cmd/gpulock").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/gpulock/gpulock/internal/metrics")
	for _, p := range deps {
		for _, banned := range []string{"github.com/prometheus/", "google.golang.org/protobuf/"} {
			assert.False(t, strings.HasPrefix(p, banned), "cmd/gpulock links %s", p)
		}
	}
}
