package execcmd

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Printable returns s as it is when every character in it is printable,
// and quoted with Go's escapes (strconv.Quote: "\x1b[2J") otherwise. Text
// read from the lock directory (service names, commands) was written by
// whoever could write there: it must never drive the terminal.
func Printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
