package cmdline

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ManPage is what a manual page adds to a command's table.
type ManPage struct {
	Section     int
	Date        string   // of the last change of the text, YYYY-MM-DD
	Source      string   // the package and version: "gopasta 0.1.0"
	Manual      string   // "User Commands"
	Names       []string // the names the page documents, for NAME
	Summary     string   // the NAME line's description
	Description string   // DESCRIPTION, in the markup of the package doc
	OptionsText string   // what comes before the options, in the markup
	Sections    []Section
}

// Section is a section of a man page after OPTIONS.
type Section struct {
	Title string // "EXIT STATUS"
	Text  string // in the markup of the package doc
}

// Man returns the man page, in the man(7) macros of roff.
func (cmd *Command[C]) Man(page *ManPage) string {
	w := &roffWriter{}
	w.b.WriteString(`.\" Generated from the option table of ` + cmd.Name + " (internal/cmdline): do not edit.\n")
	w.macro("TH", strings.ToUpper(cmd.Name), strconv.Itoa(page.Section), page.Date, page.Source, page.Manual)
	w.heading("SH", "NAME")
	w.fill(escape(strings.Join(page.Names, ", ")) + ` \- ` + escape(page.Summary))
	w.heading("SH", "SYNOPSIS")
	w.macro("nf")
	for _, form := range cmd.Synopsis {
		w.line(`\fB` + escape(cmd.Name) + `\fR ` + synopsisForm(form))
	}
	w.macro("fi")
	w.heading("SH", "DESCRIPTION")
	w.text(page.Description, false)
	w.heading("SH", "OPTIONS")
	w.text(page.OptionsText, false)
	for _, g := range cmd.Groups {
		w.heading("SS", g.Title)
		opts := cmd.optionsOf(g)
		if g.Refused {
			w.text(strings.Join(optionNames(opts), ", ")+".", false)
			continue
		}
		for _, opt := range opts {
			w.macro("TP")
			w.line(optionHead(opt))
			w.macro("br") // a tag narrower than the indent would share its line with the text
			w.fresh = true
			w.text(opt.Man, true)
		}
	}
	for _, s := range page.Sections {
		w.heading("SH", s.Title)
		w.text(s.Text, false)
	}
	return w.b.String()
}

// roffWidth is the longest line of roff source we write, where we can.
const roffWidth = 80

// roffWriter writes roff source, one input line at a time.
type roffWriter struct {
	b strings.Builder
	// fresh is set right after a heading or a tag, where a paragraph
	// needs no macro of its own.
	fresh bool
}

// line writes a line of text; one starting with a control character
// would be read as a request, so it gets a zero-width character in front.
func (w *roffWriter) line(s string) {
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	w.b.WriteString(s + "\n")
}

// fill writes text to be filled, in lines of at most roffWidth bytes
// broken at spaces, as mandoc's style check asks.
func (w *roffWriter) fill(s string) {
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > roffWidth {
			w.line(line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	w.line(line)
}

// macro writes a request with its arguments, quoted when needed.
func (w *roffWriter) macro(name string, args ...string) {
	var b strings.Builder
	b.WriteString("." + name)
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t") {
			a = `"` + a + `"`
		}
		b.WriteString(" " + escape(a))
	}
	w.b.WriteString(b.String() + "\n")
	w.fresh = false
}

func (w *roffWriter) heading(name, title string) {
	w.macro(name, title)
	w.fresh = true
}

// text writes text in the package's markup. nested is set for the body of
// an option, which is already indented under its tag.
func (w *roffWriter) text(markup string, nested bool) {
	inList := false // inside an .RS opened for tagged paragraphs
	for _, blk := range parseBlocks(markup) {
		if inList && blk.kind != tagged {
			w.macro("RE")
			inList = false
		}
		switch blk.kind {
		case paragraph:
			w.paragraphMacro(nested)
			w.fill(inline(strings.Join(blk.lines, " ")))
		case literal:
			w.paragraphMacro(nested)
			if !nested {
				w.macro("RS", "4")
			}
			w.macro("EX")
			for _, l := range blk.lines {
				w.line(literalText(l))
			}
			w.macro("EE")
			if !nested {
				w.macro("RE")
			}
		case tagged:
			if nested && !inList {
				w.macro("RS")
				inList = true
			}
			w.macro("TP")
			w.line(tagText(blk.tag))
			w.fill(inline(strings.Join(blk.lines, " ")))
		}
		w.fresh = false
	}
	if inList {
		w.macro("RE")
	}
}

// paragraphMacro starts a paragraph, unless one just started.
func (w *roffWriter) paragraphMacro(nested bool) {
	switch {
	case w.fresh:
	case nested:
		w.macro("IP")
	default:
		w.macro("PP")
	}
}

type blockKind int

const (
	paragraph blockKind = iota
	literal
	tagged
)

// block is one block of the markup.
type block struct {
	kind  blockKind
	tag   string   // of a tagged paragraph
	lines []string // without the markup's indentation
}

// parseBlocks splits text in the markup into its blocks.
func parseBlocks(text string) []block {
	var blocks []block
	for _, chunk := range blankLine.Split(strings.Trim(text, "\n"), -1) {
		lines := strings.Split(strings.Trim(chunk, "\n"), "\n")
		switch {
		case chunk == "":
		case allIndented(lines, "    "):
			for i := range lines {
				lines[i] = strings.TrimRight(lines[i][4:], " ")
			}
			blocks = append(blocks, block{kind: literal, lines: lines})
		case len(lines) > 1 && !strings.HasPrefix(lines[0], " ") && allIndented(lines[1:], "  "):
			blocks = append(blocks, block{kind: tagged, tag: lines[0], lines: trimAll(lines[1:])})
		default:
			blocks = append(blocks, block{kind: paragraph, lines: trimAll(lines)})
		}
	}
	return blocks
}

func allIndented(lines []string, indent string) bool {
	for _, l := range lines {
		if !strings.HasPrefix(l, indent) {
			return false
		}
	}
	return true
}

func trimAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimSpace(l)
	}
	return out
}

var (
	blankLine = regexp.MustCompile(`\n[ \t]*\n`)
	// optionRef matches an option name in prose: a dash at the start of
	// a word, then a letter or digit (so "IPv4-only" or "1-65535" do not).
	// A lone "--" counts too.
	optionRef = regexp.MustCompile(`(^|[\s(\[,'"])(--?[A-Za-z0-9][A-Za-z0-9-]*|--)`)
	// manRef matches a reference to a manual page: "podman(1)".
	manRef = regexp.MustCompile(`\b([a-z][a-z0-9_.+-]*)\(([1-9])\)`)
	// metaVar matches a meta-variable: an upper-case word such as PATH.
	metaVar = regexp.MustCompile(`\b[A-Z][A-Z0-9_]+\b`)
)

// escape makes text safe for roff: a backslash is roff's escape character.
func escape(s string) string {
	return strings.ReplaceAll(s, `\`, `\e`)
}

// minus writes the dashes of s as minus signs, which roff keeps as the
// ASCII character that a user can copy, rather than a hyphen it may change.
func minus(s string) string {
	return strings.ReplaceAll(s, "-", `\-`)
}

// inline formats prose: option names and manual page names in bold.
func inline(s string) string {
	return emphasize(escape(s))
}

// emphasize sets the option names and manual page names of escaped text
// in bold.
func emphasize(s string) string {
	s = optionRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := optionRef.FindStringSubmatch(m)
		return sub[1] + `\fB` + minus(sub[2]) + `\fR`
	})
	return manRef.ReplaceAllString(s, `\fB$1\fR($2)`)
}

// literalText formats a line of a literal display.
func literalText(s string) string {
	return minus(escape(s))
}

// tagText formats a tag: literal text in bold, meta-variables in italics.
func tagText(s string) string {
	return `\fB` + metaVar.ReplaceAllString(minus(escape(s)), `\fI$0\fB`) + `\fR`
}

// synopsisForm formats a form of the command line: meta-variables in
// italics, options in bold, brackets and dots in roman.
func synopsisForm(s string) string {
	return emphasize(metaVar.ReplaceAllString(escape(s), `\fI$0\fR`))
}

// optionHead formats an option's names and argument, for its tag.
func optionHead[C any](opt *Option[C]) string {
	head := fmt.Sprintf(`\fB\-\-%s\fR`, minus(opt.Long))
	if opt.Short != 0 {
		head = fmt.Sprintf(`\fB\-%c\fR, `, opt.Short) + head
	}
	if opt.takesArg() {
		head += " " + metaVar.ReplaceAllString(minus(escape(opt.Arg)), `\fI$0\fR`)
	}
	return head
}
