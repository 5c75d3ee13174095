// Package cmdlinetest has the test helpers shared by the commands whose
// man page and completion internal/cmdline generates: golden files, the
// man page's lint and rendering, and running the completion in bash.
package cmdlinetest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated files under dist/ instead of checking them")

// skipOrFail skips the test, or fails it when GOPASTA_REQUIRE_ALL=1 (CI).
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("GOPASTA_REQUIRE_ALL") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// Golden checks that the file at path holds want, or with -update writes
// it there.
func Golden(t testing.TB, path, want string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test PACKAGE -run %s -update writes it)", err, t.Name())
	}
	if string(got) != want {
		t.Fatalf("%s is not what the option table gives: run go test PACKAGE -run %s -update, and commit it\n%s",
			path, t.Name(), firstDifference(string(got), want))
	}
}

// firstDifference shows the first line where two texts differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) && i < len(w); i++ {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n file:  %q\n table: %q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("the file has %d lines, the table gives %d", len(g), len(w))
}

// run runs a tool, which must be installed, and returns its standard
// output and error.
func run(t testing.TB, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		skipOrFail(t, name+" is not installed")
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String()
}

// LintMan checks that the man page at path is plain ASCII and that groff
// (every warning on) and mandoc (style checks included) find nothing to
// say about it.
func LintMan(t testing.TB, path string) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range text {
		if b >= 0x80 || (b < ' ' && b != '\n') {
			t.Errorf("%s: byte %d is %#x, not printable ASCII", path, i, b)
			break
		}
	}
	if _, stderr := run(t, "groff", "-ww", "-z", "-man", path); stderr != "" {
		t.Errorf("groff -ww -z -man %s:\n%s", path, stderr)
	}
	if stdout, stderr := run(t, "mandoc", "-T", "lint", "-W", "style", path); stdout+stderr != "" {
		t.Errorf("mandoc -T lint -W style %s:\n%s%s", path, stdout, stderr)
	}
}

// RenderMan returns the man page at path as plain text, the way man(1)
// shows it (without bold or underlining), 100 columns wide.
func RenderMan(t testing.TB, path string) string {
	t.Helper()
	stdout, _ := run(t, "groff", "-man", "-Tascii", "-rLL=100n", "-P-cbou", path)
	return stdout
}

// HasOptionHelp tells whether a --help text lists an option: a line that
// starts with "-x, --long" or "--long" after the indentation, or, for an
// option refused by name only, "--long" in a list.
func HasOptionHelp(text string, short rune, long string) bool {
	names := regexp.QuoteMeta("--" + long)
	if short != 0 {
		names = regexp.QuoteMeta("-"+string(short)+", ") + names
	}
	return regexp.MustCompile(`(?m)^\s+`+names+`(\s|$)`).MatchString(text) ||
		regexp.MustCompile(`(?m)(^|[ ,:])`+regexp.QuoteMeta("--"+long)+`[,.]`).MatchString(text)
}

// HasOptionTag tells whether the rendered man page has the tag of an
// option on a line of its own: "-l, --log-file PATH" or "--trace".
func HasOptionTag(text string, short rune, long, arg string) bool {
	tag := "--" + long
	if short != 0 {
		tag = "-" + string(short) + ", " + tag
	}
	if arg != "" {
		tag += " " + arg
	}
	return regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(tag) + `$`).MatchString(text)
}

// Complete runs the completion function that script binds to the command
// words[0], as bash does when the user presses Tab with the cursor at the
// end of the last word, in the folder dir, and returns what it offers,
// sorted. With bashCompletion, the bash-completion package is loaded
// first, as in an interactive shell of Debian.
func Complete(t testing.TB, script, dir string, bashCompletion bool, words ...string) []string {
	t.Helper()
	const driver = `
set -e
[ -z "$LOAD_BASH_COMPLETION" ] || . /usr/share/bash-completion/bash_completion
. "$SCRIPT"
set +e
spec=$(complete -p "$1")
fn=${spec#*-F }
fn=${fn%% *}
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort
`
	if bashCompletion {
		if _, err := os.Stat("/usr/share/bash-completion/bash_completion"); err != nil {
			skipOrFail(t, "the bash-completion package is not installed")
		}
	}
	abs, err := filepath.Abs(script)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{"-c", driver, "complete"}, words...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SCRIPT="+abs, "LOAD_BASH_COMPLETION=")
	if bashCompletion {
		cmd.Env[len(cmd.Env)-1] = "LOAD_BASH_COMPLETION=1"
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil || errOut.Len() > 0 {
		t.Fatalf("completing %q: %v\n%s", words, err, errOut.String())
	}
	return strings.Fields(out.String())
}
