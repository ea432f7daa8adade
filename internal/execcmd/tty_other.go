//go:build !linux && !darwin

package execcmd

import "os"

func IsTerminal(int) bool { return false }

func inForeground(int) bool { return false }

func takeForeground(int) {}

func FDOf(v any) int {
	if f, ok := v.(*os.File); ok && f != nil {
		return int(f.Fd())
	}
	return -1
}
