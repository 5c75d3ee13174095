package main

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"gopasta/internal/control"
)

// Tests of the control socket and the forwarding rules it changes. The
// "namespace" is the test's own network namespace, with --host-lo-to-ns-lo
// (see splice_test.go): a client of a -t port on 127.0.0.1 is spliced to
// a server of the test on 127.0.0.1, and nothing crosses the socketpair.

// ctlPasta is a test pasta with a control socket.
type ctlPasta struct {
	*testPasta
	path string
}

func newCtlPasta(t *testing.T, mutate func(*config)) *ctlPasta {
	t.Helper()
	tp := newTestPasta(t, func(c *config) {
		c.hostLoToNsLo = true
		if mutate != nil {
			mutate(c)
		}
	})
	ns, err := startNsThread(func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	tp.c.ns = ns
	path := filepath.Join(t.TempDir(), "pasta.sock")
	tp.c.cfg.confPath = path
	if err := tp.c.setupAutoForward(); err != nil {
		t.Fatal(err)
	}
	if err := tp.c.setupControl(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := range tp.c.listeners {
			tp.c.closeListener(i)
		}
		for slot := range tp.c.ctl.clients {
			tp.c.ctlClose(slot)
		}
		unix.Close(tp.c.ctl.fd)
	})
	return &ctlPasta{tp, path}
}

// await runs fn on a goroutine of its own and drives the loop until it
// returns (at most timeout), then returns what it returned.
func await[T any](tp *testPasta, timeout time.Duration, fn func() T) T {
	tp.t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	var v T
	tp.runUntil(timeout, func() bool {
		select {
		case v = <-done:
			return true
		default:
			return false
		}
	})
	return v
}

// result is a value or an error, as await passes them.
type result[T any] struct {
	v   T
	err error
}

// request sends ops through the control socket, driving the loop until
// the answer comes.
func (cp *ctlPasta) request(before bool, ops ...control.Op) *control.Response {
	cp.t.Helper()
	res := await(cp.testPasta, 12*time.Second, func() result[*control.Response] {
		resp, err := control.Do(cp.path, &control.Request{Ops: ops, Before: before}, 10*time.Second)
		return result[*control.Response]{resp, err}
	})
	if res.err != nil {
		cp.t.Fatalf("request %+v: %v", ops, res.err)
	}
	return res.v
}

// mustApply sends ops and fails the test if pasta refuses them.
func (cp *ctlPasta) mustApply(ops ...control.Op) []control.Table {
	cp.t.Helper()
	resp := cp.request(false, ops...)
	if resp.Error != "" {
		cp.t.Fatalf("request %+v refused: %s", ops, resp.Error)
	}
	return resp.After
}

// mustFail sends ops and checks that pasta refuses them with an error
// containing want, and that the tables did not change.
func (cp *ctlPasta) mustFail(want string, ops ...control.Op) {
	cp.t.Helper()
	before := cp.show()
	resp := cp.request(false, ops...)
	if resp.Error == "" || !strings.Contains(resp.Error, want) {
		cp.t.Fatalf("request %+v: error %q, want one containing %q", ops, resp.Error, want)
	}
	if after := cp.show(); tablesText(after) != tablesText(before) {
		cp.t.Fatalf("a refused request changed the tables:\n%s\nto\n%s", tablesText(before), tablesText(after))
	}
}

func (cp *ctlPasta) show() []control.Table {
	cp.t.Helper()
	return cp.mustApply()
}

func tablesText(tables []control.Table) string {
	var b bytes.Buffer
	control.FormatTables(&b, "tables", tables)
	return b.String()
}

func add(option, spec string) control.Op {
	return control.Op{Op: control.OpAdd, Option: option, Spec: spec}
}

func del(option, spec string) control.Op {
	return control.Op{Op: control.OpDelete, Option: option, Spec: spec}
}

func clearTable(name string) control.Op { return control.Op{Op: control.OpClear, Table: name} }

// ruleHeads lists the rules of the tables as text, table by table.
func ruleHeads(tables []control.Table) []string {
	var out []string
	for _, t := range tables {
		for i := range t.Rules {
			out = append(out, t.Name+": "+control.RuleText(t.Name, &t.Rules[i]))
		}
	}
	return out
}

// findRule returns the rule of table whose head is head.
func findRule(t *testing.T, tables []control.Table, table, head string) *control.Rule {
	t.Helper()
	for _, tb := range tables {
		for i := range tb.Rules {
			if tb.Name == table && control.RuleText(tb.Name, &tb.Rules[i]) == head {
				return &tb.Rules[i]
			}
		}
	}
	t.Fatalf("no rule %q in %s:\n%s", head, table, tablesText(tables))
	return nil
}

// freePorts returns n ports free for TCP and UDP on 127.0.0.1 when asked.
func freePorts(t *testing.T, n int) []uint16 {
	t.Helper()
	var ports []uint16
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		p := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			continue
		}
		held = append(held, u)
		ports = append(ports, uint16(p))
	}
	return ports
}

// dialAndEcho connects to 127.0.0.1:port while driving the loop and
// returns the connection, or the error.
func (cp *ctlPasta) dial(port uint16) (*net.TCPConn, error) {
	res := await(cp.testPasta, 6*time.Second, func() result[*net.TCPConn] {
		c, err := net.DialTimeout("tcp4", net.JoinHostPort("127.0.0.1", itoa(port)), 5*time.Second)
		if err != nil {
			return result[*net.TCPConn]{nil, err}
		}
		return result[*net.TCPConn]{c.(*net.TCPConn), nil}
	})
	return res.v, res.err
}

// exchange writes msg on conn and reads the echo server's answer, driving
// the loop meanwhile.
func (cp *ctlPasta) exchange(conn *net.TCPConn, msg string) string {
	cp.t.Helper()
	return await(cp.testPasta, 6*time.Second, func() string {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			return "write: " + err.Error()
		}
		buf := make([]byte, len(msg)+len("echo:"))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return "read: " + err.Error()
		}
		return string(buf)
	})
}

// tcpEchoServer answers "echo:" and what it reads, on every connection.
func tcpEchoServer(t *testing.T) uint16 {
	t.Helper()
	l, port := listenLoopback(t)
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1<<16)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(append([]byte("echo:"), buf[:n]...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return port
}

func TestControlAddShowDelete(t *testing.T) {
	cp := newCtlPasta(t, nil)
	server := tcpEchoServer(t)
	p := freePorts(t, 1)[0]
	spec := "127.0.0.1/" + itoa(p) + ":" + itoa(server)

	if heads := ruleHeads(cp.show()); len(heads) != 0 {
		t.Fatalf("rules before any were added: %q", heads)
	}
	if _, err := cp.dial(p); err == nil {
		t.Fatalf("port %d answered before its rule was added", p)
	}
	tables := cp.mustApply(add("tcp-ports", spec))
	head := "TCP [127.0.0.1]:" + itoa(p) + "  =>  " + itoa(server)
	r := findRule(t, tables, control.TableHost, head)
	if r.Listening != itoa(p) || r.Sockets != 1 {
		t.Errorf("rule %s: listening %q with %d sockets, want %d with 1", head, r.Listening, r.Sockets, p)
	}
	conn, err := cp.dial(p)
	if err != nil {
		t.Fatalf("port %d after its rule was added: %v", p, err)
	}
	if got := cp.exchange(conn, "hello"); got != "echo:hello" {
		t.Fatalf("through the new rule: got %q", got)
	}
	conn.Close()

	if heads := ruleHeads(cp.mustApply(del("tcp-ports", spec))); len(heads) != 0 {
		t.Fatalf("rules after the deletion: %q", heads)
	}
	if c, err := cp.dial(p); err == nil {
		c.Close()
		t.Fatalf("port %d still answers after its rule was deleted", p)
	}
}

func TestControlTablesAndOrder(t *testing.T) {
	cp := newCtlPasta(t, nil)
	// The namespace is the test's own: rules of both tables need ports
	// of their own.
	ps := freePorts(t, 5)
	tables := cp.mustApply(
		add("tcp-ports", "127.0.0.1/"+itoa(ps[0])),
		add("udp-ports", "127.0.0.1/"+itoa(ps[1])),
		add("tcp-ns", "127.0.0.1/"+itoa(ps[4])+":"+itoa(ps[3])),
		add("tcp-ports", "127.0.0.1/"+itoa(ps[3])+","+itoa(ps[2])),
	)
	want := []string{
		"HOST: TCP [127.0.0.1]:" + itoa(ps[0]) + "  =>  " + itoa(ps[0]),
		"HOST: UDP [127.0.0.1]:" + itoa(ps[1]) + "  =>  " + itoa(ps[1]),
		"HOST: TCP [127.0.0.1]:" + itoa(ps[3]) + "  =>  " + itoa(ps[3]),
		"HOST: TCP [127.0.0.1]:" + itoa(ps[2]) + "  =>  " + itoa(ps[2]),
		"SPLICE: TCP [127.0.0.1]:" + itoa(ps[4]) + "  =>  " + itoa(ps[3]),
	}
	if got := ruleHeads(tables); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tables:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A port list is a rule per item: one of them can go alone.
	tables = cp.mustApply(del("tcp-ports", "127.0.0.1/"+itoa(ps[3])))
	if got := ruleHeads(tables); len(got) != 4 || strings.Contains(strings.Join(got, "\n"), "HOST: TCP [127.0.0.1]:"+itoa(ps[3])+" ") {
		t.Errorf("after deleting one item of a list:\n%s", strings.Join(got, "\n"))
	}
}

func TestControlReplaceAndClear(t *testing.T) {
	cp := newCtlPasta(t, nil)
	server := tcpEchoServer(t)
	ps := freePorts(t, 3)
	cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(ps[0])+":"+itoa(server)),
		add("tcp-ns", "127.0.0.1/"+itoa(ps[2])))
	// What pesto sends for "pesto -t SPEC": clear the table, then add.
	tables := cp.mustApply(clearTable(control.TableHost), add("tcp-ports", "127.0.0.1/"+itoa(ps[1])+":"+itoa(server)))
	want := []string{
		"HOST: TCP [127.0.0.1]:" + itoa(ps[1]) + "  =>  " + itoa(server),
		"SPLICE: TCP [127.0.0.1]:" + itoa(ps[2]) + "  =>  " + itoa(ps[2]),
	}
	if got := ruleHeads(tables); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after replacing HOST:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c, err := cp.dial(ps[0]); err == nil {
		c.Close()
		t.Errorf("the replaced rule's port %d still answers", ps[0])
	}
	conn, err := cp.dial(ps[1])
	if err != nil {
		t.Fatalf("the new rule's port %d: %v", ps[1], err)
	}
	if got := cp.exchange(conn, "x"); got != "echo:x" {
		t.Errorf("through the new rule: %q", got)
	}
	conn.Close()
	if got := ruleHeads(cp.mustApply(clearTable(control.TableSplice), clearTable(control.TableHost))); len(got) != 0 {
		t.Errorf("after clearing both tables: %q", got)
	}
}

func TestControlAllOrNothing(t *testing.T) {
	cp := newCtlPasta(t, nil)
	ps := freePorts(t, 3)
	// Another process holds ps[1].
	busy, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(ps[1])})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(ps[2])))
	spec := "127.0.0.1/" + itoa(ps[0]) + "," + itoa(ps[1])
	cp.mustFail("127.0.0.1:"+itoa(ps[1])+": address already in use", add("tcp-ports", spec))
	cp.mustFail("127.0.0.1:"+itoa(ps[1])+": address already in use",
		clearTable(control.TableHost), add("tcp-ports", "127.0.0.1/"+itoa(ps[0])), add("tcp-ports", "127.0.0.1/"+itoa(ps[1])))
	if c, err := cp.dial(ps[0]); err == nil {
		c.Close()
		t.Errorf("port %d was left bound by a request that failed", ps[0])
	}
	if c, err := cp.dial(ps[2]); err != nil {
		t.Errorf("the rule in force before a failed request lost its port %d: %v", ps[2], err)
	} else {
		c.Close()
	}
}

func TestControlRefusedRequests(t *testing.T) {
	cp := newCtlPasta(t, func(c *config) { c.noUDP = true })
	ps := freePorts(t, 2)
	p, q := itoa(ps[0]), itoa(ps[1])
	cp.mustApply(add("tcp-ports", "127.0.0.1/"+p))
	rule := "rule TCP [127.0.0.1]:" + p + "  =>  " + p
	tests := []struct {
		want string
		ops  []control.Op
	}{
		{"rule TCP [127.0.0.1]:" + p + "  =>  " + q + " conflicts with " + rule, []control.Op{add("tcp-ports", "127.0.0.1/"+p+":"+q)}},
		{"conflicts with " + rule, []control.Op{add("tcp-ports", "127.0.0.1/"+p)}},
		{"conflicts with " + rule, []control.Op{add("tcp-ports", p)}},
		{"conflicts with " + rule, []control.Op{add("tcp-ports", "0.0.0.0/"+p)}},
		{"no rule TCP [127.0.0.1]:" + q + "  =>  " + q + " to delete", []control.Op{del("tcp-ports", "127.0.0.1/"+q)}},
		{"no rule TCP [*]:" + p + "  =>  " + p + " to delete", []control.Op{del("tcp-ports", p)}},
		{"no rule TCP [127.0.0.1]:" + p + "  =>  " + q, []control.Op{del("tcp-ports", "127.0.0.1/"+p+":"+q)}},
		{"no " + rule, []control.Op{clearTable(control.TableHost), del("tcp-ports", "127.0.0.1/"+p)}},
		{"no " + rule, []control.Op{del("tcp-ports", "127.0.0.1/"+p), del("tcp-ports", "127.0.0.1/"+p)}},
		{"--udp-ports: UDP is disabled", []control.Op{add("udp-ports", "127.0.0.1/"+p)}},
		{"--tcp-ports: invalid port spec 'x': invalid port 'x'", []control.Op{add("tcp-ports", "x")}},
		{"unknown option 'tcp'", []control.Op{add("tcp", "22")}},
		{"unknown table 'host' (HOST or SPLICE)", []control.Op{clearTable("host")}},
		{"unknown operation 'replace'", []control.Op{{Op: "replace", Option: "tcp-ports", Spec: "22"}}},
	}
	for _, tt := range tests {
		cp.mustFail(tt.want, tt.ops...)
	}
}

func TestControlDeleteKeepsConnections(t *testing.T) {
	cp := newCtlPasta(t, nil)
	server := tcpEchoServer(t)
	p := freePorts(t, 1)[0]
	spec := "127.0.0.1/" + itoa(p) + ":" + itoa(server)
	cp.mustApply(add("tcp-ports", spec))
	conn, err := cp.dial(p)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := cp.exchange(conn, "before"); got != "echo:before" {
		t.Fatalf("before the deletion: %q", got)
	}
	cp.mustApply(del("tcp-ports", spec))
	if got := cp.exchange(conn, "after"); got != "echo:after" {
		t.Fatalf("a connection of the deleted rule broke: %q", got)
	}
	if c, err := cp.dial(p); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted after the deletion")
	}
	// Adding the rule again gives it new, zero counters.
	r := findRule(t, cp.mustApply(add("tcp-ports", spec)), control.TableHost, "TCP [127.0.0.1]:"+itoa(p)+"  =>  "+itoa(server))
	if r.Counters != (control.Counters{}) {
		t.Errorf("counters of a rule added again: %+v", r.Counters)
	}
	if got := cp.exchange(conn, "again"); got != "echo:again" {
		t.Fatalf("the old connection after the rule came back: %q", got)
	}
}

func TestControlCountersTCP(t *testing.T) {
	cp := newCtlPasta(t, nil)
	server := tcpEchoServer(t)
	p := freePorts(t, 1)[0]
	cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(p)+":"+itoa(server)))
	for range 2 {
		conn, err := cp.dial(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := cp.exchange(conn, "0123456789"); got != "echo:0123456789" {
			t.Fatalf("got %q", got)
		}
		conn.Close()
	}
	r := findRule(t, cp.show(), control.TableHost, "TCP [127.0.0.1]:"+itoa(p)+"  =>  "+itoa(server))
	want := control.Counters{Connections: 2, BytesIn: 20, BytesOut: 30}
	if r.Counters != want {
		t.Errorf("counters %+v, want %+v", r.Counters, want)
	}
}

func TestControlCountersUDP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noSplice bool
	}{{"spliced", false}, {"tap", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cp := newCtlPasta(t, func(c *config) { c.noSplice = tc.noSplice })
			_, server := udpEchoServer(t)
			p := freePorts(t, 1)[0]
			cp.mustApply(add("udp-ports", "127.0.0.1/"+itoa(p)+":"+itoa(server)))
			client, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p)})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			for range 3 {
				if _, err := client.Write([]byte("hello")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.noSplice {
				// Play the guest: answer each datagram the way the echo
				// server would.
				for range 3 {
					ip, u := expectUDP(t, cp.testPasta)
					udpFromGuest(cp.testPasta, uint16(u.DstPort), addrFrom4(ip.SrcIP), uint16(u.SrcPort), []byte("echo:hello"))
				}
			}
			got := 0
			buf := make([]byte, 64)
			cp.runUntil(5*time.Second, func() bool {
				_ = client.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				if n, err := client.Read(buf); err == nil && string(buf[:n]) == "echo:hello" {
					got++
				}
				return got == 3
			})
			r := findRule(t, cp.show(), control.TableHost, "UDP [127.0.0.1]:"+itoa(p)+"  =>  "+itoa(server))
			want := control.Counters{Flows: 1, DatagramsIn: 3, BytesIn: 15, DatagramsOut: 3, BytesOut: 30}
			if r.Counters != want {
				t.Errorf("counters %+v, want %+v", r.Counters, want)
			}
		})
	}
}

func TestControlReplacementKeepsSocket(t *testing.T) {
	cp := newCtlPasta(t, nil)
	s1, s2 := tcpEchoServer(t), tcpEchoServer(t)
	p := freePorts(t, 1)[0]
	cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(p)+":"+itoa(s1)))
	fd := cp.c.listeners[0].fd
	cp.mustApply(clearTable(control.TableHost), add("tcp-ports", "127.0.0.1/"+itoa(p)+":"+itoa(s2)))
	if cp.c.listeners[0].fd != fd || cp.c.listeners[0].target != s2 {
		t.Errorf("listener %+v after the replacement, want the same socket %d aimed at %d", cp.c.listeners[0], fd, s2)
	}
	conn, err := cp.dial(p)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := cp.exchange(conn, "x"); got != "echo:x" {
		t.Errorf("through the replaced rule: %q", got)
	}
	// Clearing and adding the very same rule keeps it, counters and all.
	spec := "127.0.0.1/" + itoa(p) + ":" + itoa(s2)
	r := findRule(t, cp.mustApply(clearTable(control.TableHost), add("tcp-ports", spec)),
		control.TableHost, "TCP [127.0.0.1]:"+itoa(p)+"  =>  "+itoa(s2))
	if r.Counters.Connections != 1 {
		t.Errorf("counters after the same rule was given again: %+v", r.Counters)
	}
}

func TestControlAutoRule(t *testing.T) {
	cp := newCtlPasta(t, nil)
	ps := freePorts(t, 2)
	p, target := ps[0], ps[1]
	cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(p)+":"+itoa(target)+",auto"))
	head := "TCP [127.0.0.1]:" + itoa(p) + "  =>  " + itoa(target) + "  (auto-scan)"
	if r := findRule(t, cp.show(), control.TableHost, head); r.Listening != "" {
		t.Fatalf("auto rule listening on %q before its target was bound", r.Listening)
	}
	// The target port gets a server: the next scan opens the rule's port.
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(target)})
	if err != nil {
		t.Fatal(err)
	}
	cp.c.scanAutoForward()
	if r := findRule(t, cp.show(), control.TableHost, head); r.Listening != itoa(p) {
		t.Fatalf("auto rule listening on %q once its target was bound, want %d", r.Listening, p)
	}
	l.Close()
	cp.c.scanAutoForward()
	if r := findRule(t, cp.show(), control.TableHost, head); r.Listening != "" {
		t.Fatalf("auto rule still listening on %q after its target went", r.Listening)
	}
	if got := control.CountersText(findRule(t, cp.show(), control.TableHost, head)); !strings.HasSuffix(got, "; listening: none") {
		t.Errorf("counters text %q doesn't say the auto rule listens nowhere", got)
	}
}

func TestControlSocketFile(t *testing.T) {
	cp := newCtlPasta(t, nil)
	var st unix.Stat_t
	if err := unix.Stat(cp.path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o777 != 0o600 || st.Uid != uint32(os.Getuid()) {
		t.Errorf("control socket mode %o, owner %d; want a socket, 0600, %d", st.Mode, st.Uid, os.Getuid())
	}
	// Another pasta at the same path is refused while this one listens.
	if _, err := listenUnix(cp.path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second control socket at a path in use: %v", err)
	}
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUnix(regular); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a control socket over a regular file: %v", err)
	}
	// A socket left by a pasta that is gone is replaced.
	stale := filepath.Join(dir, "stale.sock")
	fd, err := listenUnix(stale)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	fd, err = listenUnix(stale)
	if err != nil {
		t.Fatalf("replacing a stale socket: %v", err)
	}
	unix.Close(fd)
}

// rawClient connects to the control socket without the protocol.
func rawClient(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// answerOf reads what pasta sends a raw client until it hangs up, driving
// the loop.
func (cp *ctlPasta) answerOf(c *net.UnixConn, within time.Duration) string {
	cp.t.Helper()
	return await(cp.testPasta, within+time.Second, func() string {
		_ = c.SetReadDeadline(time.Now().Add(within))
		b, _ := io.ReadAll(c)
		return string(b)
	})
}

func TestControlHostileClients(t *testing.T) {
	cp := newCtlPasta(t, nil)
	t.Run("garbage", func(t *testing.T) {
		c := rawClient(t, cp.path)
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		if got := cp.answerOf(c, 2*time.Second); !strings.Contains(got, `"error":"not a gopasta-control request"`) {
			t.Errorf("answer to garbage: %q", got)
		}
	})
	t.Run("unknown version", func(t *testing.T) {
		c := rawClient(t, cp.path)
		_, _ = c.Write([]byte(`{"protocol":"gopasta-control","version":99}` + "\n"))
		if got := cp.answerOf(c, 2*time.Second); !strings.Contains(got, "unsupported protocol version 99") {
			t.Errorf("answer to version 99: %q", got)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		c := rawClient(t, cp.path)
		go func() { _, _ = c.Write(bytes.Repeat([]byte("x"), 2*control.MaxRequest)) }()
		if got := cp.answerOf(c, 3*time.Second); !strings.Contains(got, "request larger than") {
			t.Errorf("answer to an oversized request: %q", got)
		}
	})
	t.Run("silent", func(t *testing.T) {
		// Silent clients fill every slot but one; a real request still
		// goes through at once, and the silent ones are dropped after
		// the deadline with an error.
		var silent []*net.UnixConn
		for range ctlMaxClients - 1 {
			silent = append(silent, rawClient(t, cp.path))
		}
		start := time.Now()
		cp.show()
		if took := time.Since(start); took > time.Second {
			t.Errorf("a request took %v while silent clients were connected", took)
		}
		for _, c := range silent {
			got := cp.answerOf(c, 5*time.Second)
			if !strings.Contains(got, "timed out waiting for the request") {
				t.Errorf("answer to a silent client: %q", got)
			}
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("silent clients were dropped after %v, want about %v", took, time.Duration(ctlTimeoutNS))
		}
	})
	t.Run("more clients than slots", func(t *testing.T) {
		for range ctlMaxClients + 2 {
			rawClient(t, cp.path)
		}
		// The request waits in the backlog until slots free up.
		start := time.Now()
		cp.show()
		if took := time.Since(start); took > 6*time.Second {
			t.Errorf("a request behind silent clients took %v", took)
		}
	})
}

// TestControlHelperClient is not a test: run as another user by
// TestControlRefusesOtherUsers, it connects to the socket named by the
// environment and prints pasta's answer.
func TestControlHelperClient(t *testing.T) {
	path := os.Getenv("GOPASTA_CTL_HELPER")
	if path == "" {
		t.Skip("helper process for TestControlRefusesOtherUsers")
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		os.Stdout.WriteString("dial: " + err.Error() + "\n")
		os.Exit(0)
	}
	_, _ = c.Write(control.Encode(&control.Request{Protocol: control.Protocol, Version: control.Version,
		Ops: []control.Op{{Op: control.OpClear, Table: control.TableHost}}}))
	b, _ := io.ReadAll(c)
	os.Stdout.Write(b)
	os.Exit(0)
}

func TestControlRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to run a client as another user")
	}
	cp := newCtlPasta(t, nil)
	p := freePorts(t, 1)[0]
	cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(p)))
	helper := executableCopy(t)
	for _, mode := range []uint32{0o600, 0o666} {
		// 0600 keeps others out; opened up, the peer's credentials do.
		if err := os.Chmod(cp.path, os.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
		for dir := filepath.Dir(cp.path); dir != "/tmp" && dir != "/"; dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(helper, "-test.run=^TestControlHelperClient$")
		cmd.Env = append(os.Environ(), "GOPASTA_CTL_HELPER="+cp.path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if err := await(cp.testPasta, 20*time.Second, cmd.Wait); err != nil {
			t.Fatalf("helper: %v\n%s", err, out.String())
		}
		want := "permission denied: user 65534 is not the owner of this pasta"
		if mode == 0o600 {
			want = "dial: dial unix " + cp.path + ": connect: permission denied"
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("socket mode %o: another user got %q, want %q", mode, out.String(), want)
		}
		if len(ruleHeads(cp.show())) != 1 {
			t.Errorf("socket mode %o: another user's request changed the tables", mode)
		}
	}
}

// executableCopy copies the test binary where any user may run it.
func executableCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "gopasta-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "helper.test")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestControlHandleRequest checks the requests pasta refuses before any
// rule is looked at.
func TestControlHandleRequest(t *testing.T) {
	tp := newTestPasta(t, nil)
	for _, tt := range []struct{ line, want string }{
		{``, "not a gopasta-control request"},
		{`{}`, "not a gopasta-control request"},
		{`[1,2]`, "not a gopasta-control request"},
		{`{"protocol":"gopasta-control"}`, "unsupported protocol version 0 (this pasta speaks version 1)"},
		{`{"protocol":"gopasta-control","version":1,"ops":[{"op":"add","option":"tcp-ports","spec":"~"}]}`,
			"--tcp-ports: invalid port spec '~': invalid port ''"},
	} {
		if got := tp.c.ctlHandle([]byte(tt.line)); got.Error != tt.want {
			t.Errorf("%s: error %q, want %q", tt.line, got.Error, tt.want)
		}
	}
	resp := tp.c.ctlHandle([]byte(`{"protocol":"gopasta-control","version":1,"before":true}`))
	if resp.Error != "" || len(resp.Before) != 2 || len(resp.After) != 2 {
		t.Errorf("a request without operations: %+v", resp)
	}
}

// FuzzControlRequest feeds arbitrary requests to pasta. TCP and UDP are
// disabled, so additions are refused before anything is bound; clears and
// the parsing of everything run.
func FuzzControlRequest(f *testing.F) {
	for _, seed := range []string{
		`{"protocol":"gopasta-control","version":1,"before":true,"ops":[{"op":"clear","table":"HOST"}]}`,
		`{"protocol":"gopasta-control","version":1,"ops":[{"op":"add","option":"tcp-ports","spec":"0.0.0.0/8080"},{"op":"delete","option":"udp-ns","spec":"53"}]}`,
		`{"protocol":"gopasta-control","version":2}`,
		`garbage`,
	} {
		f.Add([]byte(seed))
	}
	tp := newTestPasta(f, func(c *config) { c.noTCP, c.noUDP = true, true })
	f.Fuzz(func(t *testing.T, line []byte) {
		resp := tp.c.ctlHandle(line)
		if resp.Protocol != control.Protocol || resp.Version != control.Version {
			t.Fatalf("answer without the protocol's name and version: %+v", resp)
		}
		if resp.Error == "" && resp.After == nil {
			t.Fatalf("answer with neither an error nor tables: %+v", resp)
		}
		if len(tp.c.listeners) != 0 {
			t.Fatal("a request bound a socket with TCP and UDP disabled")
		}
	})
}

// TestControlTargetAddress: a rule with a target address (pasta(1):
// "toaddr"; Podman 6 gives the container's) sends its connections and
// datagrams there, spliced and through the tap, instead of to the
// namespace's own address.
func TestControlTargetAddress(t *testing.T) {
	target := netip.MustParseAddr("10.0.2.99")
	t.Run("spliced", func(t *testing.T) {
		cp := newCtlPasta(t, nil)
		// The server listens on 127.0.0.2 only: the rule's target address.
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.AcceptTCP()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("echo:x"))
				c.Close()
			}
		}()
		s := uint16(l.Addr().(*net.TCPAddr).Port)
		p := freePorts(t, 1)[0]
		tables := cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(p)+":127.0.0.2/"+itoa(s)))
		findRule(t, tables, control.TableHost, "TCP [127.0.0.1]:"+itoa(p)+"  =>  127.0.0.2:"+itoa(s))
		conn, err := cp.dial(p)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		got := await(cp.testPasta, 6*time.Second, func() string {
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(conn)
			return string(b)
		})
		if got != "echo:x" {
			t.Errorf("through the rule to 127.0.0.2: got %q", got)
		}
	})
	t.Run("tcp-tap", func(t *testing.T) {
		cp := newCtlPasta(t, func(c *config) { c.noSplice = true })
		p := freePorts(t, 1)[0]
		cp.mustApply(add("tcp-ports", "127.0.0.1/"+itoa(p)+":10.0.2.99/80"))
		conn, err := cp.dial(p)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ip, syn := expectTCPFrame(t, cp.testPasta)
		if dst := addrFrom4(ip.DstIP); dst != target || syn.DstPort != 80 || !syn.SYN {
			t.Fatalf("pasta sent %s:%d %s, want a SYN to %s:80", dst, syn.DstPort, tcpFlagString(syn), target)
		}
		// Answer as 10.0.2.99, and take a line of data.
		reply := func(flags string, seq, ack uint32, payload []byte) {
			tcp := &layers.TCP{SrcPort: syn.DstPort, DstPort: syn.SrcPort, Seq: seq, Ack: ack, Window: 65535,
				SYN: flags == "SA", ACK: true}
			rip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip.DstIP, DstIP: ip.SrcIP}
			_ = tcp.SetNetworkLayerForChecksum(rip)
			cp.inject(ethToUs(layers.EthernetTypeIPv4), rip, tcp, gopacket.Payload(payload))
		}
		reply("SA", 5000, syn.Seq+1, nil)
		await(cp.testPasta, 3*time.Second, func() error { _, err := conn.Write([]byte("ping")); return err })
		for {
			_, seg := expectTCPFrame(t, cp.testPasta)
			if len(seg.Payload) > 0 {
				if string(seg.Payload) != "ping" {
					t.Errorf("data to the target address: %q", seg.Payload)
				}
				break
			}
		}
	})
	t.Run("udp-tap", func(t *testing.T) {
		cp := newCtlPasta(t, func(c *config) { c.noSplice = true })
		p := freePorts(t, 1)[0]
		cp.mustApply(add("udp-ports", "127.0.0.1/"+itoa(p)+":10.0.2.99/7000"))
		client, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p)})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		if _, err := client.Write([]byte("query")); err != nil {
			t.Fatal(err)
		}
		ip, u := expectUDP(t, cp.testPasta)
		if dst := addrFrom4(ip.DstIP); dst != target || u.DstPort != 7000 || string(u.Payload) != "query" {
			t.Fatalf("pasta sent %q to %s:%d, want \"query\" to %s:7000", u.Payload, dst, u.DstPort, target)
		}
		// The answer from the target address reaches the client.
		uu := &layers.UDP{SrcPort: 7000, DstPort: u.SrcPort}
		rip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip.DstIP, DstIP: ip.SrcIP}
		_ = uu.SetNetworkLayerForChecksum(rip)
		cp.inject(ethToUs(layers.EthernetTypeIPv4), rip, uu, gopacket.Payload("answer"))
		got := await(cp.testPasta, 3*time.Second, func() string {
			buf := make([]byte, 64)
			_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _ := client.Read(buf)
			return string(buf[:n])
		})
		if got != "answer" {
			t.Errorf("the client got %q, want the target's answer", got)
		}
	})
}

// expectTCPFrame reads the next TCP segment pasta sends the guest.
func expectTCPFrame(t *testing.T, tp *testPasta) (*layers.IPv4, *layers.TCP) {
	t.Helper()
	for {
		pkt := tp.expectPacket()
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip != nil && tcp != nil {
			return ip, tcp
		}
	}
}

// udpAsk sends msg from client and returns the answer, "" if none comes
// within wait, driving the loop meanwhile.
func (cp *ctlPasta) udpAsk(client *net.UDPConn, msg string, wait time.Duration) string {
	cp.t.Helper()
	if _, err := client.Write([]byte(msg)); err != nil {
		cp.t.Fatal(err)
	}
	return await(cp.testPasta, wait+time.Second, func() string {
		buf := make([]byte, 64)
		_ = client.SetReadDeadline(time.Now().Add(wait))
		n, _ := client.Read(buf)
		return string(buf[:n])
	})
}

// TestControlDeleteKeepsUDPFlows: deleting a UDP rule keeps the flows it
// made (their replies go through its socket, which stays, retired) but
// takes no new senders; the socket closes once its flows are gone, and
// adding the rule again takes it back.
func TestControlDeleteKeepsUDPFlows(t *testing.T) {
	cp := newCtlPasta(t, nil)
	_, server := udpEchoServer(t)
	p := freePorts(t, 1)[0]
	spec := "127.0.0.1/" + itoa(p) + ":" + itoa(server)
	cp.mustApply(add("udp-ports", spec))
	fd := cp.c.listeners[0].fd
	dial := func() *net.UDPConn {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	old := dial()
	if got := cp.udpAsk(old, "a", 2*time.Second); got != "echo:a" {
		t.Fatalf("before the deletion: %q", got)
	}
	cp.mustApply(del("udp-ports", spec))
	if got := cp.udpAsk(old, "b", 2*time.Second); got != "echo:b" {
		t.Errorf("a flow of the deleted rule: %q, want its answer", got)
	}
	if got := cp.udpAsk(dial(), "c", 300*time.Millisecond); got != "" {
		t.Errorf("a new sender after the deletion got %q", got)
	}
	// Added again, the rule takes the retired socket back.
	cp.mustApply(add("udp-ports", spec))
	if l := cp.c.listeners[0]; l.fd != fd || l.retired || l.rule == 0 {
		t.Errorf("listener %+v after the rule came back, want socket %d in force", l, fd)
	}
	if got := cp.udpAsk(dial(), "d", 2*time.Second); got != "echo:d" {
		t.Errorf("a new sender after the rule came back: %q", got)
	}
	// Deleted again, and its flows gone: the port is free.
	cp.mustApply(del("udp-ports", spec))
	for fi := cp.c.flows.nextUsed(0); fi >= 0; fi = cp.c.flows.nextUsed(fi + 1) {
		cp.c.flows.kill(cp.c, fi)
	}
	cp.c.flows.sweep(cp.c)
	cp.c.closeIdleRetired()
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(p)})
	if err != nil {
		t.Fatalf("port %d once the deleted rule's flows are gone: %v", p, err)
	}
	u.Close()
}

// TestBestEffortRequest: the rules of all (and of lists of exclusions
// only) are best effort: a request of them succeeds if any of their ports
// could be bound (pasta(1)), and fails, changing nothing, if none could.
func TestBestEffortRequest(t *testing.T) {
	cp := newCtlPasta(t, nil)
	ps := freePorts(t, 2)
	busy, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(ps[1])})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	rule := func(p uint16) ruleOp {
		return ruleOp{kind: opAdd, dir: dirTCP, r: fwdRange{bindAddr: loopback4, first: p, last: p, target: p, bestEffort: true}}
	}
	if err := cp.c.applyRuleOps([]ruleOp{rule(ps[1])}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("best effort rules that bound nothing: %v, want the bind error", err)
	}
	if heads := ruleHeads(cp.show()); len(heads) != 0 {
		t.Fatalf("a failed request left rules: %q", heads)
	}
	if err := cp.c.applyRuleOps([]ruleOp{rule(ps[0]), rule(ps[1])}); err != nil {
		t.Fatalf("best effort rules of which one bound its port: %v", err)
	}
	tables := cp.show()
	if r := findRule(t, tables, control.TableHost, "TCP [127.0.0.1]:"+itoa(ps[0])+"  =>  "+itoa(ps[0])+"  (best effort)"); r.Listening != itoa(ps[0]) {
		t.Errorf("the rule that could bind listens on %q", r.Listening)
	}
	r := findRule(t, tables, control.TableHost, "TCP [127.0.0.1]:"+itoa(ps[1])+"  =>  "+itoa(ps[1])+"  (best effort)")
	if got := control.CountersText(r); r.Listening != "" || !strings.HasSuffix(got, "; listening: none") {
		t.Errorf("the rule whose port is taken: listening %q, shown as %q", r.Listening, got)
	}
}
