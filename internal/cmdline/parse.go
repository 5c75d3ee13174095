package cmdline

// Parsing compatible with GNU getopt_long in "+" mode: options end at "--"
// or at the first argument that is not an option, and error messages use
// getopt's wording, which Podman matches on.

import (
	"errors"
	"fmt"
	"strings"
)

// Parse applies the options at the start of args to c, in order, and
// returns the arguments after them (after "--" if given). On error, c holds
// what the options before the bad one set.
func (cmd *Command[C]) Parse(c *C, args []string) ([]string, error) {
	q := argQueue(args)
	for {
		arg, ok := q.pop()
		var err error
		switch {
		case !ok:
			return nil, nil
		case arg == "--":
			return q, nil
		case strings.HasPrefix(arg, "--"):
			err = cmd.parseLong(c, arg, &q)
		case len(arg) > 1 && arg[0] == '-':
			err = cmd.parseShortGroup(c, arg, &q)
		default:
			return append([]string{arg}, q...), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// argQueue is the part of the command line not consumed yet.
type argQueue []string

// pop removes and returns the next argument, if any.
func (q *argQueue) pop() (string, bool) {
	if len(*q) == 0 {
		return "", false
	}
	arg := (*q)[0]
	*q = (*q)[1:]
	return arg, true
}

// parseLong applies one "--name" or "--name=value" argument, taking the
// value from q if the option needs one and it's not given with '='.
func (cmd *Command[C]) parseLong(c *C, arg string, q *argQueue) error {
	name, value, hasValue := strings.Cut(arg[2:], "=")
	opt, err := cmd.lookupLong(name, arg)
	if err != nil {
		return err
	}
	switch {
	case !opt.takesArg() && hasValue:
		return fmt.Errorf("option '--%s' doesn't allow an argument", opt.Long)
	case opt.takesArg() && !hasValue:
		if value, hasValue = q.pop(); !hasValue {
			return fmt.Errorf("option '--%s' requires an argument", opt.Long)
		}
	}
	return opt.apply(c, value)
}

// lookupLong finds the option called name, or the only one name is a prefix
// of, like getopt_long does. arg is the whole argument, for messages.
func (cmd *Command[C]) lookupLong(name, arg string) (*Option[C], error) {
	var matches []*Option[C]
	for i := range cmd.Options {
		opt := &cmd.Options[i]
		if opt.Long == name {
			return opt, nil
		}
		if name != "" && strings.HasPrefix(opt.Long, name) {
			matches = append(matches, opt)
		}
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("unrecognized option '%s'", arg)
	}
	for _, m := range matches[1:] {
		if !sameOption(matches[0], m) {
			return nil, ambiguityError(arg, matches)
		}
	}
	return matches[0], nil
}

// sameOption reports whether two long names are spellings of one option
// (like passt's --socket and --socket-path), which makes a prefix of both
// unambiguous, as in getopt_long.
func sameOption[C any](a, b *Option[C]) bool {
	return a.Short != 0 && a.Short == b.Short && a.takesArg() == b.takesArg()
}

func ambiguityError[C any](arg string, matches []*Option[C]) error {
	var b strings.Builder
	fmt.Fprintf(&b, "option '%s' is ambiguous; possibilities:", arg)
	for _, m := range matches {
		fmt.Fprintf(&b, " '--%s'", m.Long)
	}
	return errors.New(b.String())
}

// parseShortGroup applies a group of short options such as "-fd" or
// "-fdp file". An option taking an argument ends the group: the rest of the
// group is its value, or, if nothing is left, the next argument is.
func (cmd *Command[C]) parseShortGroup(c *C, arg string, q *argQueue) error {
	for i, ch := range arg[1:] {
		opt := cmd.lookupShort(ch)
		if opt == nil {
			return fmt.Errorf("invalid option -- '%c'", ch)
		}
		if !opt.takesArg() {
			if err := opt.apply(c, ""); err != nil {
				return err
			}
			continue
		}
		value := arg[2+i:] // after ch, which is ASCII as all short options are
		if value == "" {
			var ok bool
			if value, ok = q.pop(); !ok {
				return fmt.Errorf("option requires an argument -- '%c'", ch)
			}
		}
		return opt.apply(c, value)
	}
	return nil
}

// lookupShort finds the first option whose short name is ch.
func (cmd *Command[C]) lookupShort(ch rune) *Option[C] {
	for i := range cmd.Options {
		if cmd.Options[i].Short == ch {
			return &cmd.Options[i]
		}
	}
	return nil
}

// apply runs the option's handler, naming the option in its error.
func (opt *Option[C]) apply(c *C, value string) error {
	if err := opt.Set(c, value); err != nil {
		return fmt.Errorf("--%s: %w", opt.Long, err)
	}
	return nil
}
