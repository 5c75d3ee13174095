// Command pesto shows and changes the port forwarding rules of a running
// pasta through its control socket (pasta -c PATH), with the command line
// of pesto(1) from the passt project. It is a program of its own, rather
// than pasta acting as pesto when called by that name: it needs nothing of
// pasta's (no namespaces, cgo or seccomp filter), so it is a small static
// binary that starts at once, which Podman finds next to pasta in its
// helper_binaries_dir. The protocol is internal/control's.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopasta/internal/control"
	"gopasta/internal/version"
)

// timeout bounds the wait for pasta's answer: it serves a few clients at
// a time and drops those that stall within seconds.
const timeout = 10 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is pesto: it returns the exit status, 0 only if the request was
// applied (or the rules shown).
func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	operands, err := pestoCommand.Parse(&cfg, args)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "pesto: %v\n", err)
		return 1
	case cfg.help:
		fmt.Fprint(stdout, helpText())
		return 0
	case cfg.version:
		fmt.Fprintf(stdout, "pesto (%s)\n", version.String)
		return 0
	case len(operands) != 1:
		fmt.Fprintln(stderr, "pesto: give one PATH: the control socket of pasta (its -c option)")
		return 1
	}
	path := operands[0]
	req := &control.Request{Protocol: control.Protocol, Version: control.Version, Ops: cfg.ops,
		Before: cfg.show && len(cfg.ops) > 0}
	if cfg.debug {
		fmt.Fprintf(stderr, "pesto: to %s: %s", path, control.Encode(req))
	}
	resp, err := control.Do(path, req, timeout)
	if err != nil {
		fmt.Fprintf(stderr, "pesto: %s: %v\n", path, err)
		return 1
	}
	if cfg.debug {
		fmt.Fprintf(stderr, "pesto: from %s: %s", path, control.Encode(resp))
	}
	if resp.Error != "" {
		if resp.Before != nil && !cfg.json {
			control.FormatTables(stdout, "Previous configuration ("+path+")", resp.Before)
		}
		fmt.Fprintf(stderr, "pesto: %s\n", resp.Error)
		return 1
	}
	show(stdout, &cfg, path, resp)
	return 0
}

// jsonOutput is what --json prints.
type jsonOutput struct {
	Socket string          `json:"socket"`
	Before []control.Table `json:"before,omitempty"` // with --show and changes
	Tables []control.Table `json:"tables"`           // as they are now
}

// show prints what the user asked to see: the rules when there were no
// changes, before and after them with --show, or as JSON.
func show(w io.Writer, cfg *config, path string, resp *control.Response) {
	switch {
	case cfg.json:
		out, _ := json.MarshalIndent(jsonOutput{Socket: path, Before: resp.Before, Tables: resp.After}, "", "  ")
		fmt.Fprintf(w, "%s\n", out)
	case len(cfg.ops) == 0:
		control.FormatTables(w, "pasta configuration ("+path+")", resp.After)
	case cfg.show:
		control.FormatTables(w, "Previous configuration ("+path+")", resp.Before)
		control.FormatTables(w, "Updated configuration ("+path+")", resp.After)
	}
}

// helpText is --help: the options, then what the man page says about how
// changes combine, what is shown, and the exit status.
func helpText() string {
	var b strings.Builder
	b.WriteString(pestoCommand.Usage())
	for _, s := range pestoSections {
		if s.inHelp {
			fmt.Fprintf(&b, "\n%s\n\n%s\n", s.Title, indent(s.Text))
		}
	}
	return b.String()
}

// indent shifts text by two spaces, as the sections of --help are.
func indent(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}
