package cmdline

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"gopasta/internal/cmdline/cmdlinetest"
)

// testConf is what the test command's options set.
type testConf struct {
	verbose bool
	files   []string
	port    string
}

var (
	groupMain  = &Group{Title: "Main options", Note: "A note under the main options, long enough to be wrapped over two lines of the help text."}
	groupOther = &Group{Title: "Refused", Refused: true}
)

func flag(c *testConf, _ string) error { c.verbose = true; return nil }

func addFile(c *testConf, arg string) error {
	if arg == "bad" {
		return errors.New("invalid file 'bad'")
	}
	c.files = append(c.files, arg)
	return nil
}

func refuse(*testConf, string) error { return errors.New("not here") }

// testCommand has a flag, an option with an argument, two options sharing
// a prefix, and an alias pair in a refused group.
func testCommand() *Command[testConf] {
	return &Command[testConf]{
		Name:        "tool",
		Synopsis:    []string{"[OPTION]... FILE"},
		Description: "Do things with files.",
		Groups:      []*Group{groupMain, groupOther},
		Options: []Option[testConf]{
			{Long: "verbose", Short: 'v', Group: groupMain, Set: flag, Help: "say more", Man: "Say more."},
			{Long: "file", Short: 'f', Arg: "PATH", Group: groupMain, Complete: CompleteFile, Set: addFile,
				Help: "add PATH", Man: "Add PATH."},
			{Long: "file-list-with-a-long-name", Arg: "LIST", Group: groupMain, Set: addFile,
				Help: "a long option whose description is long enough to need a second line in the help", Man: "Long."},
			{Long: "port", Short: 'p', Arg: "SPEC", Group: groupMain, Words: []string{"auto", "none"},
				Set: func(c *testConf, arg string) error { c.port = arg; return nil }, Help: "port", Man: "Port."},
			{Long: "socket", Short: 's', Arg: "PATH", Group: groupOther, Set: refuse, Help: "refused"},
			{Long: "socket-path", Short: 's', Arg: "PATH", Group: groupOther, Set: refuse, Help: "refused"},
		},
		Operands: CompleteFile,
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		args     []string
		want     testConf
		operands []string
		err      string
	}{
		{args: nil},
		{args: []string{"-v", "x"}, want: testConf{verbose: true}, operands: []string{"x"}},
		{args: []string{"--verb", "--", "-v"}, want: testConf{verbose: true}, operands: []string{"-v"}},
		{args: []string{"-vfa", "-f", "b", "--file=c", "--file", "d", "e"},
			want: testConf{verbose: true, files: []string{"a", "b", "c", "d"}}, operands: []string{"e"}},
		{args: []string{"x", "-v"}, operands: []string{"x", "-v"}},
		{args: []string{"-"}, operands: []string{"-"}},
		{args: []string{"--file"}, err: "option '--file' requires an argument"},
		{args: []string{"-f"}, err: "option requires an argument -- 'f'"},
		{args: []string{"--verbose=1"}, err: "option '--verbose' doesn't allow an argument"},
		{args: []string{"--fil", "a"}, err: "option '--fil' is ambiguous; possibilities: '--file' '--file-list-with-a-long-name'"},
		{args: []string{"--nope"}, err: "unrecognized option '--nope'"},
		{args: []string{"-x"}, err: "invalid option -- 'x'"},
		{args: []string{"-f", "bad"}, err: "--file: invalid file 'bad'"},
		// A prefix of two spellings of one option is not ambiguous.
		{args: []string{"--sock", "p"}, err: "--socket: not here"},
		{args: []string{"-s", "p"}, err: "--socket: not here"},
	}
	for _, tt := range tests {
		var c testConf
		operands, err := testCommand().Parse(&c, tt.args)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Parse(%q): error %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(c, tt.want) || !reflect.DeepEqual(operands, tt.operands) {
			t.Errorf("Parse(%q) = %+v, %q, %v; want %+v, %q", tt.args, c, operands, err, tt.want, tt.operands)
		}
	}
}

func TestUsage(t *testing.T) {
	want := `Usage: tool [OPTION]... FILE

Do things with files.

Main options:
  -v, --verbose               say more
  -f, --file PATH             add PATH
      --file-list-with-a-long-name LIST
                              a long option whose description is long enough to
                              need a second line in the help
  -p, --port SPEC             port
  A note under the main options, long enough to be wrapped over two lines of the
  help text.

Refused: -s, --socket, --socket-path.
`
	if got := testCommand().Usage(); got != want {
		t.Errorf("Usage():\n%s\nwant:\n%s", got, want)
	}
}

func TestHasOptionHelp(t *testing.T) {
	text := testCommand().Usage()
	for _, tt := range []struct {
		short rune
		long  string
		want  bool
	}{
		{'v', "verbose", true},
		{0, "file-list-with-a-long-name", true},
		{'s', "socket", true}, // in the refused list
		{0, "socket-path", true},
		{'x', "verbose", false},
		{0, "file", false}, // listed with its short name
		{0, "nope", false},
	} {
		if got := cmdlinetest.HasOptionHelp(text, tt.short, tt.long); got != tt.want {
			t.Errorf("HasOptionHelp(-%c --%s) = %v, want %v", tt.short, tt.long, got, tt.want)
		}
	}
}

func TestWrapLongWord(t *testing.T) {
	long := strings.Repeat("x", helpWidth+5)
	if got, want := wrap("a "+long+" b", "  ", "    "), "  a\n    "+long+"\n    b\n"; got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
}

func TestCheck(t *testing.T) {
	if err := testCommand().Check(); err != nil {
		t.Errorf("Check of a good table: %v", err)
	}
	stray := &Group{Title: "Stray"}
	breakages := map[string]func(cmd *Command[testConf]){
		"listed twice":              func(cmd *Command[testConf]) { cmd.Options[1].Long = "verbose" },
		"long name is not":          func(cmd *Command[testConf]) { cmd.Options[0].Long = "Verbose" },
		"-v is also --verbose":      func(cmd *Command[testConf]) { cmd.Options[1].Short = 'v' },
		"short name":                func(cmd *Command[testConf]) { cmd.Options[0].Short = '?' },
		"no handler":                func(cmd *Command[testConf]) { cmd.Options[0].Set = nil },
		"not among":                 func(cmd *Command[testConf]) { cmd.Options[0].Group = stray },
		"help is not one line":      func(cmd *Command[testConf]) { cmd.Options[0].Help = "a\nb" },
		"no man page text":          func(cmd *Command[testConf]) { cmd.Options[0].Man = "" },
		"completes an argument":     func(cmd *Command[testConf]) { cmd.Options[0].Words = []string{"x"} },
		`group "Stray" has no opti`: func(cmd *Command[testConf]) { cmd.Groups = append(cmd.Groups, stray) },
	}
	for want, breakIt := range breakages {
		cmd := testCommand()
		breakIt(cmd)
		if err := cmd.Check(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check: error %v, want one containing %q", err, want)
		}
	}
}
