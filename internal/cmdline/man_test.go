package cmdline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopasta/internal/cmdline/cmdlinetest"
)

func TestInline(t *testing.T) {
	tests := map[string]string{
		`use -t or --tcp-ports`:        `use \fB\-t\fR or \fB\-\-tcp\-ports\fR`,
		`(--netns-o) "-D none"`:        `(\fB\-\-netns\-o\fR) "\fB\-D\fR none"`,
		`end at "--" here`:             `end at "\fB\-\-\fR" here`,
		`IPv4-only 1-65535 ~3000-3010`: `IPv4-only 1-65535 ~3000-3010`,
		`see ip-netns(8) and a\b`:      `see \fBip-netns\fR(8) and a\eb`,
	}
	for in, want := range tests {
		if got := inline(in); got != want {
			t.Errorf("inline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMarkup(t *testing.T) {
	markup := `First paragraph,
on two lines.

    $ literal -x \n
      indented

tag-one PORT
  Description of
  the first tag.

~PORT
  Second tag.

.Last paragraph, starting with a dot.`
	top := `.PP
First paragraph, on two lines.
.PP
.RS 4
.EX
$ literal \-x \en
  indented
.EE
.RE
.TP
\fBtag\-one \fIPORT\fB\fR
Description of the first tag.
.TP
\fB~\fIPORT\fB\fR
Second tag.
.PP
\&.Last paragraph, starting with a dot.
`
	nested := `First paragraph, on two lines.
.IP
.EX
$ literal \-x \en
  indented
.EE
.RS
.TP
\fBtag\-one \fIPORT\fB\fR
Description of the first tag.
.TP
\fB~\fIPORT\fB\fR
Second tag.
.RE
.IP
\&.Last paragraph, starting with a dot.
`
	w := &roffWriter{}
	w.text(markup, false)
	if got := w.b.String(); got != top {
		t.Errorf("at the top level:\n%s\nwant:\n%s", got, top)
	}
	w = &roffWriter{fresh: true}
	w.text(markup, true)
	if got := w.b.String(); got != nested {
		t.Errorf("in an option:\n%s\nwant:\n%s", got, nested)
	}
}

// TestManLint renders the test command's page, with every kind of block,
// and lints it.
func TestManLint(t *testing.T) {
	cmd := testCommand()
	cmd.Options[1].Man = "Add PATH.\n\n    tool -f /x\n\nsingle\n  A tag in an option.\n\nAfter the tag."
	page := cmd.Man(&ManPage{
		Section: 1, Date: "2026-11-30", Source: "tool 1.0", Manual: "User Commands",
		Names: []string{"tool"}, Summary: "do things with files",
		Description: "The tool.\n\n    tool -v FILE",
		OptionsText: "Options first.",
		Sections:    []Section{{Title: "EXIT STATUS", Text: "0\n  Success."}, {Title: "SEE ALSO", Text: "ls(1)"}},
	})
	path := filepath.Join(t.TempDir(), "tool.1")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	cmdlinetest.LintMan(t, path)
	text := cmdlinetest.RenderMan(t, path)
	for _, want := range []string{"tool [OPTION]... FILE", "-f, --file PATH", "-s, --socket, --socket-path."} {
		if !strings.Contains(text, want) {
			t.Errorf("the rendered page lacks %q:\n%s", want, text)
		}
	}
}
