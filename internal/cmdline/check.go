package cmdline

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var (
	longName  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	shortName = regexp.MustCompile(`^[a-zA-Z0-9]$`)
)

// Check reports the mistakes in a command's table: names given twice, an
// option without a group, help or man text, or one that completes an
// argument it does not take. Each command's tests call it.
func (cmd *Command[C]) Check() error {
	var errs []error
	bad := func(opt *Option[C], format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", opt.Long, fmt.Sprintf(format, args...)))
	}
	longs := map[string]bool{}
	for i := range cmd.Options {
		opt := &cmd.Options[i]
		if !longName.MatchString(opt.Long) {
			bad(opt, "long name is not lower-case letters, digits and '-'")
		}
		if longs[opt.Long] {
			bad(opt, "listed twice")
		}
		longs[opt.Long] = true
		if opt.Short != 0 && !shortName.MatchString(string(opt.Short)) {
			bad(opt, "short name -%c is not a letter or digit", opt.Short)
		}
		if first := cmd.lookupShort(opt.Short); opt.Short != 0 && !sameOption(first, opt) {
			bad(opt, "-%c is also --%s", opt.Short, first.Long)
		}
		if opt.Set == nil {
			bad(opt, "no handler")
		}
		if opt.Group == nil || !slices.Contains(cmd.Groups, opt.Group) {
			bad(opt, "group not among the command's groups")
			continue
		}
		if opt.Help == "" || strings.Contains(opt.Help, "\n") {
			bad(opt, "help is not one line")
		}
		if opt.Man == "" && !opt.Group.Refused {
			bad(opt, "no man page text")
		}
		if !opt.takesArg() && (opt.Complete != CompleteNothing || len(opt.Words) > 0) {
			bad(opt, "completes an argument it does not take")
		}
	}
	if _, ok := operandScripts[cmd.Operands]; !ok {
		errs = append(errs, errors.New("operands: bash completion can't complete them"))
	}
	for _, g := range cmd.Groups {
		if len(cmd.optionsOf(g)) == 0 {
			errs = append(errs, fmt.Errorf("group %q has no options", g.Title))
		}
	}
	return errors.Join(errs...)
}
