package cmdline

import (
	"fmt"
	"strings"
)

const (
	helpWidth  = 80 // columns of the --help text
	helpColumn = 30 // where an option's description starts
)

// Usage returns the --help text: the usage lines, the description, and each
// group of options with its one-line descriptions.
func (cmd *Command[C]) Usage() string {
	var b strings.Builder
	for i, form := range cmd.Synopsis {
		prefix := "Usage: "
		if i > 0 {
			prefix = strings.Repeat(" ", len(prefix))
		}
		fmt.Fprintf(&b, "%s%s %s\n", prefix, cmd.Name, form)
	}
	b.WriteString("\n")
	b.WriteString(wrap(cmd.Description, "", ""))
	for _, g := range cmd.Groups {
		b.WriteString("\n")
		opts := cmd.optionsOf(g)
		if g.Refused {
			b.WriteString(wrap(g.Title+": "+strings.Join(optionNames(opts), ", ")+".", "", ""))
			continue
		}
		b.WriteString(g.Title + ":\n")
		for _, opt := range opts {
			b.WriteString(optionHelp(opt))
		}
		if g.Note != "" {
			b.WriteString(wrap(g.Note, "  ", "  "))
		}
	}
	return b.String()
}

// optionsOf returns the options of group g, in table order.
func (cmd *Command[C]) optionsOf(g *Group) []*Option[C] {
	var opts []*Option[C]
	for i := range cmd.Options {
		if cmd.Options[i].Group == g {
			opts = append(opts, &cmd.Options[i])
		}
	}
	return opts
}

// optionNames lists every spelling of opts: "-s", "--socket", "--socket-path"
// (an alias's short name only once).
func optionNames[C any](opts []*Option[C]) []string {
	var names []string
	seen := map[rune]bool{}
	for _, opt := range opts {
		if opt.Short != 0 && !seen[opt.Short] {
			seen[opt.Short] = true
			names = append(names, "-"+string(opt.Short))
		}
		names = append(names, "--"+opt.Long)
	}
	return names
}

// optionHelp formats one option as "  -l, --log-file PATH    text", the text
// at helpColumn, or on the next line if the names are too long.
func optionHelp[C any](opt *Option[C]) string {
	head := "      --" + opt.Long
	if opt.Short != 0 {
		head = "  -" + string(opt.Short) + ", --" + opt.Long
	}
	if opt.takesArg() {
		head += " " + opt.Arg
	}
	indent := strings.Repeat(" ", helpColumn)
	if len(head) > helpColumn-2 {
		return head + "\n" + wrap(opt.Help, indent, indent)
	}
	return wrap(opt.Help, head+strings.Repeat(" ", helpColumn-len(head)), indent)
}

// wrap fills text into lines of at most helpWidth columns, the first
// starting with first and the others with rest. A word longer than a line
// gets a line of its own.
func wrap(text, first, rest string) string {
	var b strings.Builder
	line := first
	empty := true // nothing but the indentation on line yet
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > helpWidth {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}
