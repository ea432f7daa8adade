//go:build !linux && !darwin

package execcmd

import "os"

// IsTerminal reports whether fd is a terminal: never, here.
func IsTerminal(int) bool { return false }

func inForeground(int) bool { return false }

func takeForeground(int) {}

// FDOf returns the descriptor of a stream that is an *os.File, or -1.
func FDOf(v any) int {
	if f, ok := v.(*os.File); ok && f != nil {
		return int(f.Fd())
	}
	return -1
}
