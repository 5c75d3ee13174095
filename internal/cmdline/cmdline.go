// Package cmdline holds what gopasta's commands (pasta, and pesto) need from
// one table of options: a parser compatible with GNU getopt_long in "+" mode,
// the --help text, the man page and the bash completion script. Everything is
// generated from the table, so that the four can never disagree.
//
// The Man field of an option, and the text of a man page's sections, use a
// small markup of plain text:
//
//   - Blocks are separated by blank lines. A block is a paragraph, unless
//   - all its lines start with four spaces: a literal display (an example
//     command), shown as is; or
//   - its first line starts at the margin and all the others with two
//     spaces: a tagged paragraph, the first line the tag (shown as literal
//     text, e.g. a port spec), the rest its description.
//
// In any text, option names (-x, --long-name) are set in bold and
// references to manual pages (name(N)) get a bold name, automatically.
package cmdline

// Option describes one command-line option: how to parse it, and how to
// document and complete it.
type Option[C any] struct {
	Long  string // long name, without "--"
	Short rune   // short name, 0 if none
	// Arg names the option's argument in --help and the man page ("PATH");
	// "" if the option takes none. Arguments are never optional, as in
	// pasta(1): an option either always or never takes one.
	Arg      string
	Group    *Group
	Help     string     // what the option does, in one line of --help
	Man      string     // the man page's description, in the markup above
	Complete Completion // what bash completion offers for the argument
	Words    []string   // keywords bash completion offers for the argument
	// Set applies the option to the configuration, with "" for options
	// without an argument. Its error names the bad value but not the
	// option: the parser adds "--LONG: " in front.
	Set func(c *C, arg string) error
}

// takesArg tells whether the option needs an argument.
func (o *Option[C]) takesArg() bool { return o.Arg != "" }

// Group is a heading under which options are listed, in --help and in the
// man page.
type Group struct {
	Title string // "Port forwarding"
	Note  string // printed after the group's options in --help; "" for none
	// Refused marks options that are parsed only to be refused with an
	// error (pasta takes passt's options this way): they are listed by name
	// only and not offered by completion.
	Refused bool
}

// Completion says what bash completion offers for an option's argument or
// for the operands after the options.
type Completion int

const (
	CompleteNothing   Completion = iota // free text (an address, a number): nothing but Words
	CompleteFile                        // file names
	CompleteInterface                   // the host's network interface names
	CompleteUser                        // user names
	CompleteCommand                     // a command, then its arguments as file names
)

// Command is a program's command line: its options and what comes after.
type Command[C any] struct {
	Name string // the program's name, as in its usage lines
	// Synopsis lists the forms of the command line, without the name:
	// "[OPTION]... PID". Upper-case words are meta-variables.
	Synopsis    []string
	Description string // what the command does, one paragraph, for --help
	Groups      []*Group
	Options     []Option[C]
	Operands    Completion // what completion offers after the options
}
