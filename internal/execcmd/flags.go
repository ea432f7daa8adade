package execcmd

import (
	"errors"
	"os"
	"strings"

	"github.com/gpulock/gpulock/gpulock"
)

// Every flag can also be set by an environment variable: GPULOCK_ and the
// flag's name in capitals with '-' as '_' (--conflict-exit-code is
// GPULOCK_CONFLICT_EXIT_CODE), except --lock-dir, which is the library's
// GPULOCK_DIR. A flag on the command line wins over its variable.
const (
	FlagLockDir = "lock-dir"
	FlagGPU     = "gpu"
	FlagQuiet   = "quiet"
)

// EnvVar is the environment variable of a flag.
func EnvVar(flag string) []string {
	b := []byte("GPULOCK_" + flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return []string{string(b)}
}

// lockDirValue is --lock-dir: an empty one is a mistake (an unset shell
// variable, say), not a wish for the default.
type lockDirValue struct{ dir string }

// Set takes a directory.
func (v *lockDirValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("needs a directory; leave --lock-dir out for the default, " + gpulock.DefaultDir)
	}
	v.dir = s
	return nil
}

// String is the directory.
func (v *lockDirValue) String() string {
	if v == nil {
		return ""
	}
	return v.dir
}

// EnvLockDir is $GPULOCK_DIR, else /tmp.
func EnvLockDir() string {
	if d := os.Getenv(gpulock.DirEnv); d != "" {
		return d
	}
	return gpulock.DefaultDir
}
