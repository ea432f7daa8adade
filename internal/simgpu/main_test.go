package simgpu

import (
	"bufio"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Environment variables naming a re-executed test binary's role.
const (
	childRoleEnv = "SIMGPU_TEST_CHILD_ROLE"
	childDirEnv  = "SIMGPU_TEST_CHILD_DIR"
)

// Child roles.
const (
	roleHold = "hold" // begin a job, print "begun", end it when stdin closes
	roleOnce = "once" // begin and end a job
	roleDie  = "die"  // begin a job and exit without ending it
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childRoleEnv); role != "" {
		if err := runChild(role, os.Getenv(childDirEnv)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// runChild plays one child role against GPU 0 in dir.
func runChild(role, dir string) error {
	g, err := Open(dir, 0, Options{})
	if err != nil {
		return err
	}
	job, err := g.Begin("child", role, GiB)
	if err != nil {
		return err
	}
	switch role {
	case roleHold:
		fmt.Println("begun")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // returns at EOF
		return job.End()
	case roleOnce:
		return job.End()
	case roleDie:
		os.Exit(0)
	}
	return fmt.Errorf("unknown role %q", role)
}
