package execcmd

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// urfave/cli's and the flag package's messages about a bad command line,
// rewritten to name what the user wrote: the flag with two dashes as in
// our help, or the environment variable the value came from. They are
// compiled at the first bad command line, not at every start (issue 15).
var flagErrorREs = sync.OnceValue(func() [5]*regexp.Regexp {
	return [5]*regexp.Regexp{
		regexp.MustCompile(`^could not parse "(.*)" (?:as [\w ]+ value )?from environment variable "(\w+)" (?:as value )?for flag [\w-]+: (.*)$`),
		regexp.MustCompile(`^invalid (value|boolean value) "(.*)" for (?:flag )?-+([\w-]+): (.*)$`),
		regexp.MustCompile(`^flag provided but not defined: -+([\w-]+)$`),
		regexp.MustCompile(`^flag needs an argument: -+([\w-]+)$`),
		regexp.MustCompile(`^Cannot use two forms of the same flag: ([\w-]+) ([\w-]+)$`),
	}
})

// FlagErrorText is err's message as a user should read it.
func FlagErrorText(err error) string {
	msg := strings.TrimSpace(err.Error())
	res := flagErrorREs()
	envValueRE, flagValueRE, undefinedRE, needsValueRE, twoFormsRE := res[0], res[1], res[2], res[3], res[4]
	if m := envValueRE.FindStringSubmatch(msg); m != nil {
		return m[2] + "=" + shown(m[1]) + ": " + causeOf(m[3])
	}
	if m := flagValueRE.FindStringSubmatch(msg); m != nil {
		cause := m[4]
		if m[1] == "boolean value" {
			cause = "strconv.ParseBool" // the flag package says only "parse error"
		}
		return dashes(m[3]) + " " + shown(m[2]) + ": " + causeOf(cause)
	}
	if m := undefinedRE.FindStringSubmatch(msg); m != nil {
		return "unknown flag " + dashes(m[1])
	}
	if m := needsValueRE.FindStringSubmatch(msg); m != nil {
		return dashes(m[1]) + " needs a value"
	}
	if m := twoFormsRE.FindStringSubmatch(msg); m != nil {
		return dashes(m[2]) + " and " + dashes(m[1]) + " are the same flag: give it once"
	}
	return msg
}

// causeOf turns the flag package's bare "parse error" (its own numbers
// and booleans) into words.
func causeOf(cause string) string {
	switch {
	case cause == "parse error":
		return "not a valid value"
	case strings.HasPrefix(cause, "strconv.ParseBool"):
		return "not a boolean: use true or false"
	case strings.HasPrefix(cause, "strconv.Parse"):
		if strings.HasSuffix(cause, "invalid syntax") {
			return "not a number"
		}
		if strings.HasSuffix(cause, "value out of range") {
			return "out of range"
		}
	}
	return cause
}

// dashes writes a flag's name as the help does: -E, --gpu.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// shown quotes a value that would not read as one: empty, or with spaces.
func shown(v string) string {
	if v == "" || strings.ContainsAny(v, " \t") {
		return strconv.Quote(v)
	}
	return v
}
