//go:build !linux && !darwin

package main

import "os"

func isTerminal(int) bool { return false }

func inForeground(int) bool { return false }

func takeForeground(int) {}

func fdOf(v any) int {
	if f, ok := v.(*os.File); ok && f != nil {
		return int(f.Fd())
	}
	return -1
}
