package execcmd

import (
	"errors"
	"os"
	"strings"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/urfave/cli/v2"
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

// LockDirFlag is --lock-dir. urfave/cli reads an app's flags only before the
// command name, so every command takes it too; see LockDir.
func LockDirFlag() cli.Flag {
	return &cli.GenericFlag{
		Name:    FlagLockDir,
		Usage:   "directory of the lock files; every program sharing a GPU must use the same one",
		Value:   &lockDirValue{dir: gpulock.DefaultDir},
		EnvVars: []string{gpulock.DirEnv},
	}
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

// quietFlag is --quiet.
func quietFlag() cli.Flag {
	return &cli.BoolFlag{
		Name:    FlagQuiet,
		Aliases: []string{"q"},
		Usage:   "print nothing of gpulock's own except errors",
		EnvVars: EnvVar(FlagQuiet),
	}
}

// LockDir returns the lock directory: --lock-dir given after the command,
// else given before it, else $GPULOCK_DIR, else /tmp.
func LockDir(c *cli.Context) string {
	if d, ok := GivenLockDir(c); ok {
		return d
	}
	return envLockDir()
}

// envLockDir is $GPULOCK_DIR, else /tmp.
func envLockDir() string {
	if d := os.Getenv(gpulock.DirEnv); d != "" {
		return d
	}
	return gpulock.DefaultDir
}

// GivenLockDir returns the --lock-dir given on the command line, if any
// (one equal to $GPULOCK_DIR's value cannot be told from it).
func GivenLockDir(c *cli.Context) (string, bool) {
	fallback := envLockDir()
	// Each level's flag holds either what its command line said or the
	// fallback; the innermost one that differs was given explicitly.
	for _, cc := range c.Lineage() {
		if cc.Command == nil {
			continue
		}
		if v := cc.String(FlagLockDir); v != "" && v != fallback {
			return v, true
		}
	}
	return "", false
}
