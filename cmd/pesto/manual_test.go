package main

// pesto's man page and bash completion are generated from its option table
// and committed under dist/; `go test ./cmd/pesto -run
// 'TestManPage|TestBashCompletion' -update` rewrites them (the package
// before -update: go test passes what follows an unknown flag to the test).

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopasta/internal/cmdline/cmdlinetest"
)

const (
	manPagePath    = "../../dist/pesto.1"
	completionPath = "../../dist/bash-completion/pesto"
)

func TestOptionTable(t *testing.T) {
	if err := pestoCommand.Check(); err != nil {
		t.Error(err)
	}
}

func TestManPage(t *testing.T) {
	cmdlinetest.Golden(t, manPagePath, pestoCommand.Man(&pestoManual))
	cmdlinetest.LintMan(t, manPagePath)
	text := cmdlinetest.RenderMan(t, manPagePath)
	for i := range pestoOptions {
		opt := &pestoOptions[i]
		if !cmdlinetest.HasOptionTag(text, opt.Short, opt.Long, opt.Arg) {
			t.Errorf("the man page does not describe --%s", opt.Long)
		}
	}
	for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CHANGES", "PORT SPECIFICATIONS",
		"OUTPUT", "EXIT STATUS", "SEE ALSO"} {
		if !strings.Contains(text, "\n"+section+"\n") {
			t.Errorf("the man page has no section %s", section)
		}
	}
}

func TestBashCompletion(t *testing.T) {
	cmdlinetest.Golden(t, completionPath, pestoCommand.BashCompletion("gopesto", "pesto"))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pasta.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		words []string
		want  []string
	}{
		{[]string{"pesto", "--ad"}, []string{"--add"}},
		{[]string{"pesto", "-C", ""}, []string{"HOST", "SPLICE"}},
		{[]string{"pesto", "-A", "-t", "a"}, []string{"all", "auto"}},
		{[]string{"pesto", "-A", "-t", "80", "pas"}, []string{"pasta.sock"}},
	} {
		if got := cmdlinetest.Complete(t, completionPath, dir, false, tt.words...); !slices.Equal(got, tt.want) {
			t.Errorf("completing %q: got %q, want %q", tt.words, got, tt.want)
		}
	}
}
