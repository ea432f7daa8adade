package execcmd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseArgs parses a command line of the flags specs (help aside: it adds
// --help, -h itself) as urfave/cli v2 parses a command's: the same syntax,
// the same environment variables, the same errors, word for word, so that
// onUsageError-style rewriting (FlagErrorText) gives the same messages.
// A test in internal/execcli checks it against urfave/cli on many command
// lines.
//
// The syntax is Go's flag package's: -flag and --flag alike, a value as
// --flag=v or --flag v (a boolean only as --flag=v), and the flags end at
// "--" (which is dropped) or at the first argument that is not a flag.
// A flag's variable, when set, comes before the command line's flags.
// getenv looks a variable up.
func ParseArgs(specs []FlagSpec, args []string, getenv func(string) (string, bool)) (*ParsedArgs, error) {
	specs = append(specs[:len(specs):len(specs)], helpSpec())
	p := &ParsedArgs{byName: make(map[string]*parsedFlag)}
	for i := range specs {
		f := &parsedFlag{spec: &specs[i]}
		f.setDefault()
		for _, name := range f.spec.Names() {
			p.byName[name] = f
		}
		if err := f.fromEnv(getenv); err != nil {
			return nil, err
		}
		p.flags = append(p.flags, f)
	}
	rest, err := p.parseFlags(args)
	if err != nil {
		return nil, err
	}
	if err := p.checkOneForm(); err != nil {
		return nil, err
	}
	p.args = rest
	p.Help = p.Bool("help")
	return p, nil
}

// ParsedArgs is a command line that ParseArgs parsed: its flags (read them
// by name, as FlagReader) and the arguments after them.
type ParsedArgs struct {
	// Help says that --help or -h was given.
	Help   bool
	flags  []*parsedFlag
	byName map[string]*parsedFlag
	args   []string
	// given are the names (as written, alias or not) the command line set.
	given []string
}

// parsedFlag is one flag's value.
type parsedFlag struct {
	spec  *FlagSpec
	b     bool
	s     string
	n     int
	value FlagValue
}

// Args are the arguments after the flags.
func (p *ParsedArgs) Args() []string { return p.args }

// String is a StringKind flag's text, or another kind's value as text.
func (p *ParsedArgs) String(name string) string {
	f := p.byName[name]
	if f == nil {
		return ""
	}
	switch f.spec.Kind {
	case BoolKind:
		return strconv.FormatBool(f.b)
	case IntKind:
		return strconv.Itoa(f.n)
	case ValueKind:
		return f.value.String()
	}
	return f.s
}

// Bool is a BoolKind flag's value.
func (p *ParsedArgs) Bool(name string) bool {
	f := p.byName[name]
	return f != nil && f.spec.Kind == BoolKind && f.b
}

// Int is an IntKind flag's value.
func (p *ParsedArgs) Int(name string) int {
	if f := p.byName[name]; f != nil && f.spec.Kind == IntKind {
		return f.n
	}
	return 0
}

// Generic is a ValueKind flag's FlagValue, or nil.
func (p *ParsedArgs) Generic(name string) any {
	if f := p.byName[name]; f != nil && f.spec.Kind == ValueKind {
		return f.value
	}
	return nil
}

func (f *parsedFlag) setDefault() {
	switch f.spec.Kind {
	case BoolKind:
		f.b = f.spec.Bool
	case StringKind:
		f.s = f.spec.String
	case IntKind:
		f.n = f.spec.Int
	case ValueKind:
		f.value = f.spec.NewValue()
	}
}

// fromEnv sets f from the first of its variables that is set, as
// urfave/cli v2 does: an empty one turns a boolean off and a text to "",
// and leaves a number or a value as it was.
func (f *parsedFlag) fromEnv(getenv func(string) (string, bool)) error {
	for _, name := range f.spec.EnvVars {
		v, ok := getenv(strings.TrimSpace(name))
		if !ok {
			continue
		}
		from := fmt.Sprintf("environment variable %q", strings.TrimSpace(name))
		switch f.spec.Kind {
		case BoolKind:
			if v == "" {
				f.b = false
				return nil
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("could not parse %q as bool value from %s for flag %s: %s", v, from, f.spec.Name, err)
			}
			f.b = b
		case StringKind:
			f.s = v
		case IntKind:
			if v == "" {
				return nil
			}
			n, err := strconv.ParseInt(v, 0, 64)
			if err != nil {
				return fmt.Errorf("could not parse %q as int value from %s for flag %s: %s", v, from, f.spec.Name, err)
			}
			f.n = int(n)
		case ValueKind:
			if v == "" {
				return nil
			}
			if err := f.value.Set(v); err != nil {
				return fmt.Errorf("could not parse %q from %s as value for flag %s: %s", v, from, f.spec.Name, err)
			}
		}
		return nil
	}
	return nil
}

// parseFlags parses the flags at the start of args, as the flag package
// does, and returns the arguments after them.
func (p *ParsedArgs) parseFlags(args []string) ([]string, error) {
	for len(args) > 0 {
		s := args[0]
		if len(s) < 2 || s[0] != '-' {
			return args, nil
		}
		minuses := 1
		if s[1] == '-' {
			minuses++
			if len(s) == 2 {
				return args[1:], nil // "--" ends the flags
			}
		}
		name := s[minuses:]
		if name == "" || name[0] == '-' || name[0] == '=' {
			return nil, fmt.Errorf("bad flag syntax: %s", s)
		}
		args = args[1:]
		value, hasValue := "", false
		if i := strings.IndexByte(name[1:], '='); i >= 0 {
			name, value, hasValue = name[:i+1], name[i+2:], true
		}
		f := p.byName[name]
		if f == nil {
			return nil, fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if f.spec.Kind == BoolKind {
			if !hasValue {
				value = "true"
			}
			b, err := strconv.ParseBool(value)
			if err != nil {
				return nil, fmt.Errorf("invalid boolean value %q for -%s: parse error", value, name)
			}
			f.b = b
		} else {
			if !hasValue {
				if len(args) == 0 {
					return nil, fmt.Errorf("flag needs an argument: -%s", name)
				}
				value, args = args[0], args[1:]
			}
			if err := f.set(value); err != nil {
				return nil, fmt.Errorf("invalid value %q for flag -%s: %v", value, name, err)
			}
		}
		p.given = append(p.given, name)
	}
	return nil, nil
}

// set sets a flag that takes a value from the command line.
func (f *parsedFlag) set(value string) error {
	switch f.spec.Kind {
	case StringKind:
		f.s = value
	case IntKind:
		n, err := strconv.ParseInt(value, 0, strconv.IntSize)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
				return errors.New("value out of range")
			}
			return errors.New("parse error")
		}
		f.n = int(n)
	case ValueKind:
		return f.value.Set(value)
	}
	return nil
}

// checkOneForm refuses a flag given under two of its names (--gpu 0 -g 1),
// as urfave/cli does.
func (p *ParsedArgs) checkOneForm() error {
	given := make(map[string]bool, len(p.given))
	for _, name := range p.given {
		given[name] = true
	}
	for _, f := range p.flags {
		first := ""
		for _, name := range f.spec.Names() {
			if !given[name] {
				continue
			}
			if first != "" {
				return errors.New("Cannot use two forms of the same flag: " + name + " " + first)
			}
			first = name
		}
	}
	return nil
}
