package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopasta/internal/cmdline/cmdlinetest"
	"gopasta/internal/control"
)

func clearOp(table string) control.Op { return control.Op{Op: control.OpClear, Table: table} }
func addOp(option, spec string) control.Op {
	return control.Op{Op: control.OpAdd, Option: option, Spec: spec}
}
func delOp(option, spec string) control.Op {
	return control.Op{Op: control.OpDelete, Option: option, Spec: spec}
}

// TestCommandLineOps checks the operations each command line sends, the
// examples of pesto(1)'s NOTES and Podman's among them.
func TestCommandLineOps(t *testing.T) {
	const host, splice = control.TableHost, control.TableSplice
	tests := []struct {
		args []string
		want []control.Op
	}{
		{nil, nil},
		{[]string{"-s"}, nil},
		{[]string{"-t", "1024", "-U", "1025"},
			[]control.Op{clearOp(host), addOp("tcp-ports", "1024"), clearOp(splice), addOp("udp-ns", "1025")}},
		{[]string{"-C", "HOST", "-t", "1024", "-C", "SPLICE", "-U", "1025"},
			[]control.Op{clearOp(host), clearOp(host), addOp("tcp-ports", "1024"), clearOp(splice), clearOp(splice), addOp("udp-ns", "1025")}},
		{[]string{"-t", "5000", "-u", "5000", "-t", "5001"},
			[]control.Op{clearOp(host), addOp("tcp-ports", "5000"), addOp("udp-ports", "5000"), addOp("tcp-ports", "5001")}},
		{[]string{"-A", "-t", "2000", "-D", "-t", "3000", "-U", "5000"},
			[]control.Op{addOp("tcp-ports", "2000"), delOp("tcp-ports", "3000"), delOp("udp-ns", "5000")}},
		{[]string{"-A", "-t", "2000", "-C", "HOST", "-A", "-T", "3000", "-t", "2001", "-D", "-u", "5000"},
			[]control.Op{addOp("tcp-ports", "2000"), clearOp(host), addOp("tcp-ns", "3000"), addOp("tcp-ports", "2001"), delOp("udp-ports", "5000")}},
		{[]string{"-t", "3000", "-A", "-t", "3001"},
			[]control.Op{clearOp(host), addOp("tcp-ports", "3000"), addOp("tcp-ports", "3001")}},
		{[]string{"--add", "-t", "0.0.0.0/8080", "-t", "[::]/8080", "-u", "0.0.0.0/8080-8081"},
			[]control.Op{addOp("tcp-ports", "0.0.0.0/8080"), addOp("tcp-ports", "[::]/8080"), addOp("udp-ports", "0.0.0.0/8080-8081")}},
		{[]string{"--delete", "--tcp-ports=0.0.0.0/8080", "--tcp-p", "[::]/8080"},
			[]control.Op{delOp("tcp-ports", "0.0.0.0/8080"), delOp("tcp-ports", "[::]/8080")}},
		{[]string{"-Dt", "80", "-AT80"}, []control.Op{delOp("tcp-ports", "80"), addOp("tcp-ns", "80")}},
		{[]string{"-t", "none"}, []control.Op{clearOp(host), addOp("tcp-ports", "none")}},
	}
	for _, tt := range tests {
		var c config
		rest, err := pestoCommand.Parse(&c, append(tt.args, "PATH"))
		if err != nil || !reflect.DeepEqual(rest, []string{"PATH"}) {
			t.Errorf("%q: operands %q, error %v", tt.args, rest, err)
			continue
		}
		if !reflect.DeepEqual(c.ops, tt.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.args, c.ops, tt.want)
		}
	}
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "pesto: give one PATH: the control socket of pasta (its -c option)\n"},
		{[]string{"a", "b"}, "pesto: give one PATH: the control socket of pasta (its -c option)\n"},
		{[]string{"--bogus", "P"}, "pesto: unrecognized option '--bogus'\n"},
		{[]string{"-x", "P"}, "pesto: invalid option -- 'x'\n"},
		{[]string{"-C", "host", "P"}, "pesto: --clear: unknown table 'host' (HOST or SPLICE)\n"},
		{[]string{"-t"}, "pesto: option requires an argument -- 't'\n"},
		{[]string{"-t", "", "P"}, "pesto: --tcp-ports: invalid port spec ''\n"},
		{[]string{"--show=1", "P"}, "pesto: option '--show' doesn't allow an argument\n"},
		{[]string{"/nonexistent/pasta.sock"}, "pesto: /nonexistent/pasta.sock: connect: no such file or directory\n"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if rc := run(tt.args, &stdout, &stderr); rc != 1 || stderr.String() != tt.want || stdout.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1, nothing, %q", tt.args, rc, stdout.String(), stderr.String(), tt.want)
		}
	}
}

// TestNoCLibrary checks that pesto links no C code (package net would pull
// in the C library): it is a static binary that runs anywhere, in
// Podman's helper_binaries_dir of any distribution.
func TestNoCLibrary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "runtime/cgo" || pkg == "net" {
			t.Errorf("pesto depends on %s", pkg)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"--help"}, &stdout, &stderr); rc != 0 || stderr.Len() != 0 {
		t.Fatalf("--help: exit %d, stderr %q", rc, stderr.String())
	}
	help := stdout.String()
	for _, want := range []string{"Usage: pesto [OPTION]... PATH", "-A, --add", "-C, --clear TABLE", "-U, --udp-ns SPEC",
		"--json", "\nCHANGES\n", "\nPORT SPECIFICATIONS\n", "\nOUTPUT\n", "\nEXIT STATUS\n", "pesto -A -t 2000 -D -t 3000 -u 5000 PATH"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for i := range pestoOptions {
		if opt := &pestoOptions[i]; !cmdlinetest.HasOptionHelp(help, opt.Short, opt.Long) {
			t.Errorf("--help lacks --%s", opt.Long)
		}
	}
	stdout.Reset()
	if rc := run([]string{"--version"}, &stdout, &stderr); rc != 0 || !strings.HasPrefix(stdout.String(), "pesto (gopasta ") {
		t.Errorf("--version: exit %d, %q", rc, stdout.String())
	}
}

// fakePasta answers one request on a control socket with resp, and hands
// the request to the test.
func fakePasta(t *testing.T, resp *control.Response) (string, <-chan *control.Request) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pasta.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan *control.Request, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadBytes('\n')
		if err != nil {
			got <- nil
			return
		}
		req, err := control.DecodeRequest(line[:len(line)-1])
		if err != nil {
			got <- nil
			return
		}
		got <- req
		resp.Protocol, resp.Version = control.Protocol, control.Version
		_, _ = c.Write(control.Encode(resp))
	}()
	return path, got
}

var (
	tablesBefore = []control.Table{
		{Name: control.TableHost, Rules: []control.Rule{{Proto: "tcp", First: 8080, Last: 8080, Target: 80, Listening: "8080", Sockets: 2,
			Counters: control.Counters{Connections: 3, BytesIn: 1534, BytesOut: 80}}}},
		{Name: control.TableSplice, Rules: []control.Rule{}},
	}
	tablesAfter = []control.Table{
		{Name: control.TableHost, Rules: []control.Rule{
			tablesBefore[0].Rules[0],
			{Proto: "udp", Address: "127.0.0.1", First: 5353, Last: 5353, Target: 53, Listening: "5353", Sockets: 1,
				Counters: control.Counters{Flows: 1, DatagramsIn: 4, BytesIn: 240, DatagramsOut: 4, BytesOut: 512}},
		}},
		{Name: control.TableSplice, Rules: []control.Rule{{Proto: "tcp", First: 1, Last: 1000, Target: 1, Auto: true, BestEffort: true,
			Listening: "22,631", Sockets: 4}}},
	}
)

// The text of tablesBefore and tablesAfter, as pesto shows them.
const (
	beforeText = `  HOST
    TCP [*]:8080  =>  80
      connections 3, bytes in 1534, out 80
  SPLICE
`
	afterText = `  HOST
    TCP [*]:8080  =>  80
      connections 3, bytes in 1534, out 80
    UDP [127.0.0.1]:5353  =>  53
      flows 1, datagrams in 4 (240 bytes), out 4 (512 bytes)
  SPLICE
    TCP [*]%lo:1-1000  =>  1-1000  (best effort) (auto-scan)
      connections 0, bytes in 0, out 0; listening: 22,631
`
)

func TestShowAndChange(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		resp       control.Response
		wantBefore bool
		wantOps    int
		rc         int
		stdout     string
		stderr     string
	}{
		{"show", nil, control.Response{After: tablesAfter}, false, 0, 0, "pasta configuration (PATH)\n" + afterText, ""},
		{"change", []string{"-A", "-u", "127.0.0.1/5353:53"}, control.Response{After: tablesAfter}, false, 1, 0, "", ""},
		{"change and show", []string{"-s", "-A", "-u", "127.0.0.1/5353:53"}, control.Response{Before: tablesBefore, After: tablesAfter}, true, 1, 0,
			"Previous configuration (PATH)\n" + beforeText + "Updated configuration (PATH)\n" + afterText, ""},
		{"refused", []string{"-D", "-t", "9"}, control.Response{Error: "--tcp-ports: no rule TCP [*]:9  =>  9 to delete"}, false, 1, 1, "",
			"pesto: --tcp-ports: no rule TCP [*]:9  =>  9 to delete\n"},
		{"refused with show", []string{"-s", "-D", "-t", "9"}, control.Response{Before: tablesBefore, Error: "--tcp-ports: no rule"}, true, 1, 1,
			"Previous configuration (PATH)\n" + beforeText, "pesto: --tcp-ports: no rule\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, got := fakePasta(t, &tt.resp)
			var stdout, stderr bytes.Buffer
			rc := run(append(tt.args, path), &stdout, &stderr)
			req := <-got
			if req == nil || req.Before != tt.wantBefore || len(req.Ops) != tt.wantOps {
				t.Errorf("request %+v, want before %v and %d operations", req, tt.wantBefore, tt.wantOps)
			}
			out := strings.ReplaceAll(stdout.String(), path, "PATH")
			if rc != tt.rc || out != tt.stdout || stderr.String() != tt.stderr {
				t.Errorf("exit %d, stdout:\n%s\nstderr: %q\nwant exit %d, stdout:\n%s\nstderr: %q", rc, out, stderr.String(), tt.rc, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	path, got := fakePasta(t, &control.Response{Before: tablesBefore, After: tablesAfter})
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"--json", "-s", "-A", "-u", "127.0.0.1/5353:53", path}, &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	<-got
	var out struct {
		Socket string          `json:"socket"`
		Before []control.Table `json:"before"`
		Tables []control.Table `json:"tables"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("--json printed %q: %v", stdout.String(), err)
	}
	if out.Socket != path || !reflect.DeepEqual(out.Before, tablesBefore) || !reflect.DeepEqual(out.Tables, tablesAfter) {
		t.Errorf("--json printed %+v", out)
	}
	// The documented names of the fields.
	for _, name := range []string{`"socket"`, `"before"`, `"tables"`, `"name": "HOST"`, `"rules"`, `"proto": "udp"`, `"address": "127.0.0.1"`,
		`"first": 5353`, `"last": 5353`, `"target": 53`, `"auto": true`, `"best_effort": true`, `"listening": "22,631"`, `"sockets": 4`,
		`"counters"`, `"connections": 3`, `"flows": 1`, `"bytes_in": 240`, `"bytes_out": 512`, `"datagrams_in": 4`, `"datagrams_out": 4`} {
		if !strings.Contains(stdout.String(), name) {
			t.Errorf("--json output lacks %s", name)
		}
	}
}

func TestDebug(t *testing.T) {
	path, got := fakePasta(t, &control.Response{After: tablesAfter})
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"-d", "-A", "-t", "80", path}, &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	<-got
	for _, want := range []string{`pesto: to ` + path + `: {"protocol":"gopasta-control","version":1,"ops":[{"op":"add","option":"tcp-ports","spec":"80"}]}`,
		`pesto: from ` + path + `: {"protocol":"gopasta-control","version":1,"after":`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-d printed %q, want %q in it", stderr.String(), want)
		}
	}
}

// TestBadAnswers checks what pesto makes of a pasta that answers wrong.
func TestBadAnswers(t *testing.T) {
	for _, tt := range []struct{ answer, want string }{
		{"", "pasta closed the connection without a complete answer"},
		{`{"protocol":"gopasta-control","version":1}`, "pasta closed the connection without a complete answer"},
		{"hello\n", "not a gopasta-control response"},
		{`{"protocol":"gopasta-control","version":7}` + "\n", "unsupported protocol version 7 (this pesto speaks version 1)"},
	} {
		path := filepath.Join(t.TempDir(), "pasta.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = bufio.NewReader(c).ReadBytes('\n')
			_, _ = c.Write([]byte(tt.answer))
			c.Close()
		}()
		var stdout, stderr bytes.Buffer
		if rc := run([]string{path}, &stdout, &stderr); rc != 1 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("answer %q: exit %d, stderr %q, want 1 and %q", tt.answer, rc, stderr.String(), tt.want)
		}
		l.Close()
	}
}
