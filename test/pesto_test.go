package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// End-to-end tests of pasta's control socket (-c) and pesto: pasta runs a
// command (servers) in its namespace with -c, and pesto, run by the same
// user in the host netns, changes the forwarding rules while clients in
// the remote netns and on the host use them. With GOPASTA_BIN and
// GOPASTA_PESTO naming the C pasta and the C pesto, the same tests check
// the reference; what it does differently is logged (knownRefBug).

const pestoTimeout = 20 * time.Second

// pestoRig is a pasta with a control socket, running nsCmd in its
// namespace.
type pestoRig struct {
	t     *testing.T
	m     mode
	sb    *sandbox.Sandbox
	ctx   context.Context
	sock  string
	pasta *sandbox.Proc
}

// startPestoRig starts pasta with -c and opts around nsCmd, and waits
// until nsCmd printed `ready` lines starting with LISTENING.
func startPestoRig(t *testing.T, m mode, sb *sandbox.Sandbox, opts []string, ready int, nsCmd ...string) *pestoRig {
	t.Helper()
	ctx := withTimeout(t, 5*time.Minute)
	sock := filepath.Join(m.fileDir(t, sb), "pasta.sock")
	args := append(append([]string{"--config-net", "-c", sock}, opts...), "--")
	args = append(args, nsCmd...)
	t.Logf("$ pasta %s &", strings.Join(args, " "))
	p := sb.Start(t, m.pasta(t, ctx, sb, args...))
	if !waitForLines(p, "LISTENING", tcpServerReadyWait, func(l []map[string]string) bool { return len(l) >= ready }) {
		if sandbox.Reference() && m.as == sandbox.Root && strings.Contains(p.Stderr(), "uid_map") {
			t.Skipf("NOTE (known bug of the reference binary): it can't run a command as root:\n%s", p.Stderr())
		}
		t.Fatalf("the namespace's servers did not start\n[stdout]\n%s[stderr]\n%s", p.Stdout(), p.Stderr())
	}
	return &pestoRig{t: t, m: m, sb: sb, ctx: ctx, sock: sock, pasta: p}
}

// pesto runs pesto as the rig's user, in the host netns.
func (r *pestoRig) pesto(args ...string) sandbox.Result {
	r.t.Helper()
	return r.pestoAs(r.m.as, args...)
}

func (r *pestoRig) pestoAs(as sandbox.As, args ...string) sandbox.Result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, pestoTimeout)
	defer cancel()
	argv := append([]string{sandbox.Pesto(r.t)}, append(args, r.sock)...)
	res := sandbox.Run(r.sb.Host(ctx, as, argv...))
	r.t.Logf("$ pesto %s\n%s", strings.Join(args, " "), res)
	return res
}

// mustPesto runs pesto and fails the test unless it exits 0.
func (r *pestoRig) mustPesto(args ...string) string {
	r.t.Helper()
	res := r.pesto(args...)
	if res.ExitCode != 0 || res.Err != nil {
		r.t.Fatalf("pesto %s: exit %d, %v\n%s", strings.Join(args, " "), res.ExitCode, res.Err, res.Stderr)
	}
	return res.Stdout
}

// rules returns the rule lines pesto shows, without trailing spaces (the C
// pesto ends them with one).
func (r *pestoRig) rules() []string {
	r.t.Helper()
	var out []string
	for _, l := range strings.Split(r.mustPesto(), "\n") {
		if l = strings.TrimRight(l, " "); strings.HasPrefix(l, "    TCP ") || strings.HasPrefix(l, "    UDP ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// expectRules checks the rules pesto shows, in order.
func (r *pestoRig) expectRules(want ...string) {
	r.t.Helper()
	if got := r.rules(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		r.t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// probe tells whether a TCP connection from the remote to the host's port
// is refused ("refused") or accepted ("connected").
func (r *pestoRig) probe(tool, port string) string {
	r.t.Helper()
	res := sandbox.Run(r.sb.Remote(r.ctx, r.m.as, tool, "probe", "-c", hostPort(sandbox.HostAddr4, port)))
	return toolLine(r.t, res.Stdout, "PROBE")["result"]
}

// reaches checks that the remote reaches the namespace's server through
// the host's port, at nsPort, keeping its address, over IPv4 and IPv6.
func (r *pestoRig) reaches(tool, port, nsPort string) {
	r.t.Helper()
	for _, tc := range []inboundCase{
		{"remote-ipv4-" + port, false, sandbox.HostAddr4, port, nsPort, netip.MustParseAddr(sandbox.RemoteAddr4)},
		{"remote-ipv6-" + port, false, sandbox.HostAddr6, port, nsPort, netip.MustParseAddr(sandbox.RemoteAddr6)},
	} {
		tc.check(r.t, r.m, r.sb, r.ctx, tool)
	}
}

// TestPestoChanges: pesto shows the rules, adds, deletes, replaces and
// clears them while pasta runs, and each change is what clients of the
// host's ports see at once: new ports reach the namespace's servers (the
// client's address kept), deleted ones are refused.
func TestPestoChanges(t *testing.T) {
	tcp, udp := tcpToolProg.binary(t), udpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		script := fmt.Sprintf("%s serve -name NS -l :8080 -l :8081 -l :9000 & %s serve -name NS -l :5353 & wait", tcp, udp)
		r := startPestoRig(t, m, sb, []string{"-t", "8080", "-u", "none", "-T", "none", "-U", "none"}, 2, "sh", "-c", script)

		r.expectRules("TCP [*]:8080  =>  8080")
		r.reaches(tcp, "8080", "8080")
		if got := r.probe(tcp, "8081"); got != "refused" {
			t.Errorf("port 8081 before its rule: %s, want refused", got)
		}

		// Add.
		if out := r.mustPesto("-A", "-t", "8081", "-u", "5353"); out != "" {
			t.Errorf("pesto -A printed %q, want nothing", out)
		}
		r.expectRules("TCP [*]:8080  =>  8080", "TCP [*]:8081  =>  8081", "UDP [*]:5353  =>  5353")
		r.reaches(tcp, "8081", "8081")
		udpWho(t, m, sb, r.ctx, udp, inboundCase{"remote-ipv4-5353", false, sandbox.HostAddr4, "5353", "5353",
			netip.MustParseAddr(sandbox.RemoteAddr4)})

		// Delete, with --show.
		out := r.mustPesto("-s", "-D", "-t", "8081")
		if !strings.Contains(out, "Previous configuration") || !strings.Contains(out, "Updated configuration") ||
			strings.Count(out, "TCP [*]:8081  =>  8081") != 1 {
			t.Errorf("pesto -s -D -t 8081 showed:\n%s", out)
		}
		if got := r.probe(tcp, "8081"); got != "refused" {
			t.Errorf("port 8081 after its rule was deleted: %s, want refused", got)
		}

		// Replace: a spec without -A or -D replaces its table (HOST).
		r.mustPesto("-t", "9001:9000")
		r.expectRules("TCP [*]:9001  =>  9000")
		r.reaches(tcp, "9001", "9000")
		if got := r.probe(tcp, "8080"); got != "refused" {
			t.Errorf("port 8080 after HOST was replaced: %s, want refused", got)
		}

		// Clear.
		r.mustPesto("-C", "HOST")
		r.expectRules()
		if got := r.probe(tcp, "9001"); got != "refused" {
			t.Errorf("port 9001 after HOST was cleared: %s, want refused", got)
		}
	})
}

// TestPestoPodmanArgs: the changes Podman 6.1 makes for a container with
// -p 8080:8000 on a rootless bridge network (rootless_port_forwarder =
// "pasta"): rules with the container's addresses as targets, on a pasta
// started as Podman starts it. The "container" is an address of the
// namespace's loopback here.
func TestPestoPodmanArgs(t *testing.T) {
	tcp := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		opts := []string{"--no-map-gw", "-t", "none", "-u", "none", "-T", "none", "-U", "none", "--quiet"}
		script := "ip addr add 10.89.0.2/32 dev lo && ip -6 addr add fd00::2/128 dev lo nodad && exec " +
			tcp + " serve -name NS -l 10.89.0.2:8000 -l [fd00::2]:8000"
		r := startPestoRig(t, m, sb, opts, 1, "sh", "-c", script)
		add := []string{"--add", "-t", "0.0.0.0/8080:10.89.0.2/8000", "-t", "[::]/8080:fd00::2/8000"}
		r.mustPesto(add...)
		r.expectRules("TCP [0.0.0.0]:8080  =>  10.89.0.2:8000", "TCP [::]:8080  =>  fd00::2:8000")
		r.reaches(tcp, "8080", "8000")
		// Adding them again is refused, as the C pasta does.
		if res := r.pesto(add...); res.ExitCode != 1 {
			t.Errorf("the same rules added twice: exit %d", res.ExitCode)
		}
		r.mustPesto(append([]string{"--delete"}, add[1:]...)...)
		r.expectRules()
		if got := r.probe(tcp, "8080"); got != "refused" {
			t.Errorf("port 8080 after Podman's deletion: %s, want refused", got)
		}
	})
}

// TestPestoCountersJSON: pesto --json gives the rules and their counters
// (a gopasta addition: the C pesto has neither).
func TestPestoCountersJSON(t *testing.T) {
	if sandbox.Reference() {
		t.Skip("counters and --json are gopasta's own")
	}
	tcp := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		r := startPestoRig(t, m, sb, []string{"-t", "8080", "-u", "none", "-T", "none", "-U", "none"}, 1,
			tcp, "serve", "-name", "NS", "-l", ":8080")
		const n, size = 3, 1 << 20
		for i := range n {
			runClient(t, sb.Remote(r.ctx, m.as, tcp, "up", "-c", hostPort(sandbox.HostAddr4, "8080"),
				"-n", fmt.Sprint(size), "-seed", fmt.Sprint(i+1)))
		}
		var out struct {
			Socket string `json:"socket"`
			Tables []struct {
				Name  string `json:"name"`
				Rules []struct {
					Proto     string `json:"proto"`
					First     int    `json:"first"`
					Listening string `json:"listening"`
					Sockets   int    `json:"sockets"`
					Counters  struct {
						Connections uint64 `json:"connections"`
						BytesIn     uint64 `json:"bytes_in"`
						BytesOut    uint64 `json:"bytes_out"`
					} `json:"counters"`
				} `json:"rules"`
			} `json:"tables"`
		}
		if err := json.Unmarshal([]byte(r.mustPesto("--json")), &out); err != nil {
			t.Fatal(err)
		}
		if out.Socket != r.sock || len(out.Tables) != 2 || out.Tables[0].Name != "HOST" || len(out.Tables[0].Rules) != 1 {
			t.Fatalf("--json: %+v", out)
		}
		rule := out.Tables[0].Rules[0]
		c := rule.Counters
		// Each client sends "UP\n" and its bytes; the server answers one
		// line "OK bytes=N sha256=...\n".
		if rule.Proto != "tcp" || rule.First != 8080 || rule.Listening != "8080" || rule.Sockets != 2 ||
			c.Connections != n || c.BytesIn != n*(size+3) || c.BytesOut < n*10 || c.BytesOut > n*100 {
			t.Errorf("rule %+v after %d uploads of %d bytes", rule, n, size)
		}
		text := r.mustPesto()
		if want := fmt.Sprintf("connections %d, bytes in %d, out %d", n, c.BytesIn, c.BytesOut); !strings.Contains(text, want) {
			t.Errorf("pesto shows\n%s\nwant a line with %q", text, want)
		}
	})
}

// TestPestoAllOrNothing: a request with a port another process holds, or
// one the user may not bind, changes nothing, and pesto names the port.
func TestPestoAllOrNothing(t *testing.T) {
	tcp := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		startServer(t, sb, sb.Host(withTimeout(t, 5*time.Minute), m.as, tcp, "serve", "-name", "HOST", "-l", ":8082"))
		r := startPestoRig(t, m, sb, []string{"-t", "8080", "-u", "none", "-T", "none", "-U", "none"}, 1,
			tcp, "serve", "-name", "NS", "-l", ":8080", "-l", ":8083")
		before := r.rules()
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"-A", "-t", "8083", "-t", "8082"}, "8082: address already in use"},
			{[]string{"-A", "-t", "8083-8084", "-t", "8080"}, "8080"},
			{[]string{"-t", "8083", "-D", "-t", "8085"}, "8085"},
			{[]string{"-A", "-t", "8083", "-t", "80"}, "80: permission denied"},
		} {
			res := r.pesto(tc.args...)
			msg := strings.TrimSpace(res.Stderr)
			switch {
			case tc.want == "80: permission denied" && m.as == sandbox.Root && sandbox.Reference():
				// The reference runs as root here (--runas 0): port 80 is
				// allowed. Take the rule out again.
				r.mustPesto("-D", "-t", "8083", "-t", "80")
				continue
			case res.ExitCode == 0 && sandbox.Reference():
				knownRefBug(t, "pesto %s succeeded: the C pasta applies what it can", strings.Join(tc.args, " "))
				r.mustPesto("-t", "8080")
				continue
			case res.ExitCode == 1 && sandbox.Reference() && strings.Contains(msg, "\n"):
				knownRefBug(t, "pesto %s: a message of more than one line: %q", strings.Join(tc.args, " "), msg)
			case res.ExitCode != 1 || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n"):
				t.Errorf("pesto %s: exit %d, %q; want 1 and one line naming %q", strings.Join(tc.args, " "), res.ExitCode, msg, tc.want)
			}
			if got := r.rules(); strings.Join(got, "\n") != strings.Join(before, "\n") {
				knownRefBug(t, "pesto %s failed but changed the rules to %q", strings.Join(tc.args, " "), got)
				r.mustPesto("-t", "8080")
			}
			if got := r.probe(tcp, "8083"); got != "refused" {
				t.Errorf("port 8083 after a failed request: %s, want refused (nothing bound)", got)
			}
		}
		r.reaches(tcp, "8080", "8080")
	})
}

// TestPestoOtherUser: only the user who started pasta may use its control
// socket. Another user can't open it (mode 0600); with the mode opened up,
// pasta refuses them by their credentials (SO_PEERCRED).
func TestPestoOtherUser(t *testing.T) {
	tcp := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		r := startPestoRig(t, m, sb, []string{"-t", "8080", "-u", "none", "-T", "none", "-U", "none"}, 1,
			tcp, "serve", "-name", "NS", "-l", ":8080")
		other := sandbox.Unprivileged
		if m.as == sandbox.Unprivileged {
			other = sandbox.Root
		}
		st, err := os.Stat(r.sock)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
			knownRefBug(t, "control socket %s has mode %v, want a socket with 0600", r.sock, st.Mode())
		}
		if m.as == sandbox.Root {
			// Let the other user reach the socket: only its credentials
			// can keep it out now.
			if err := os.Chmod(filepath.Dir(r.sock), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(r.sock, 0o666); err != nil {
				t.Fatal(err)
			}
		}
		res := r.pestoAs(other, "-A", "-t", "8081")
		switch {
		case res.ExitCode == 0 && sandbox.Reference():
			knownRefBug(t, "another user changed the rules: the C pasta does not check its clients")
			r.mustPesto("-D", "-t", "8081")
		case res.ExitCode != 1 || !strings.Contains(res.Stderr, "permission denied"):
			t.Errorf("pesto as another user: exit %d, %q; want 1 and permission denied", res.ExitCode, res.Stderr)
		}
		r.expectRules("TCP [*]:8080  =>  8080")
		if got := r.probe(tcp, "8081"); got != "refused" {
			t.Errorf("port 8081 after another user's request: %s, want refused", got)
		}
	})
}

// TestPestoHostileClients: clients of the control socket that send
// nothing, garbage, or too much are answered with an error and dropped,
// while pesto's own requests go through at once and traffic through a
// forwarded port flows on, byte-exact.
func TestPestoHostileClients(t *testing.T) {
	if sandbox.Reference() {
		t.Skip("the C pasta serves one client at a time: a silent one blocks it (see docs/control.md)")
	}
	tcp, tool := tcpToolProg.binary(t), pestoToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		r := startPestoRig(t, m, sb, []string{"-t", "8080", "-u", "none", "-T", "none", "-U", "none"}, 1,
			tcp, "serve", "-name", "NS", "-l", ":8080", "-l", ":8081")
		// Traffic: an upload and a download through the forwarded port,
		// checked by hash, while the hostile clients come and go.
		const size = 64 << 20
		up := sb.Start(t, sb.Remote(r.ctx, m.as, tcp, "up", "-c", hostPort(sandbox.HostAddr4, "8080"), "-n", fmt.Sprint(size), "-seed", "7"))
		down := sb.Start(t, sb.Remote(r.ctx, m.as, tcp, "down", "-c", hostPort(sandbox.HostAddr4, "8080"), "-n", fmt.Sprint(size), "-seed", "8"))

		client := func(send string) *sandbox.Proc {
			return sb.Start(t, sb.Host(r.ctx, m.as, tool, "ctl", "-c", r.sock, "-send", send))
		}
		silent := []*sandbox.Proc{client("nothing"), client("nothing"), client("nothing")}
		for _, p := range silent {
			waitForLine(t, p, "CONNECTED", 20*time.Second)
		}
		garbage := client("garbage")
		oversized := client("oversized")

		// pesto goes through while the silent clients hold their slots.
		start := time.Now()
		r.mustPesto("-A", "-t", "8081")
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("pesto took %v with silent clients connected", took)
		}
		r.reaches(tcp, "8081", "8081")

		for _, c := range []struct {
			p      *sandbox.Proc
			want   string
			within time.Duration // of the client's connection
		}{
			{garbage, "not a gopasta-control request", time.Second},
			{oversized, "request larger than", 2 * time.Second},
			// pasta's deadline is 2 s, checked once a second.
			{silent[0], "timed out waiting for the request", 4 * time.Second},
			{silent[1], "timed out waiting for the request", 4 * time.Second},
			{silent[2], "timed out waiting for the request", 4 * time.Second},
		} {
			if exited, err := c.p.Wait(20 * time.Second); !exited || err != nil {
				t.Errorf("%s: exited %v, %v\n%s%s", strings.Join(c.p.Cmd.Args, " "), exited, err, c.p.Stdout(), c.p.Stderr())
				continue
			}
			a := toolLine(t, c.p.Stdout(), "ANSWER")
			ms, _ := time.ParseDuration(a["ms"] + "ms")
			if !strings.Contains(c.p.Stdout(), c.want) || ms > c.within {
				t.Errorf("%s: %s, want %q within %v", strings.Join(c.p.Cmd.Args, " "), c.p.Stdout(), c.want, c.within)
			}
		}
		for name, p := range map[string]*sandbox.Proc{"up": up, "down": down} {
			if exited, err := p.Wait(2 * time.Minute); !exited || err != nil {
				t.Fatalf("%s: exited %v, %v\n%s%s", name, exited, err, p.Stdout(), p.Stderr())
			}
		}
		g := toolLine(t, up.Stdout(), "REPLY")
		if want := streamSum(t, tcp, 7, size); g["sha256"] != want || g["bytes"] != fmt.Sprint(size) {
			t.Errorf("upload during the hostile clients: the server got %v, want %d bytes with sha256 %s", g, size, want)
		}
		d := toolLine(t, down.Stdout(), "RECV")
		if want := streamSum(t, tcp, 8, size); d["sha256"] != want || d["bytes"] != fmt.Sprint(size) {
			t.Errorf("download during the hostile clients: %v, want %d bytes with sha256 %s", d, size, want)
		}
		r.expectRules("TCP [*]:8080  =>  8080", "TCP [*]:8081  =>  8081")
	})
}

// TestPestoKeepsConnections: deleting a rule stops new connections on its
// port, but connections it accepted carry on: through the tap (a remote
// client), spliced (a client on the host's loopback), and spliced the
// other way (-T: a client in the namespace of a host server); and UDP
// flows of a -u rule, through the tap and spliced.
func TestPestoKeepsConnections(t *testing.T) {
	hold := pestoToolProg.binary(t)
	tcp := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		dir := m.fileDir(t, sb)
		flag := filepath.Join(dir, "rules-deleted")
		startServer(t, sb, sb.Host(withTimeout(t, 5*time.Minute), m.as, hold, "serve", "-name", "HOST", "-l", "127.0.0.1:9100"))
		// The namespace: an echo server, and a client of -T port 9100 that
		// waits for the flag file between its two exchanges.
		script := fmt.Sprintf("%s serve -name NS -l :8080 -u :8080 & sleep 1; %s hold -c 127.0.0.1:9100 -wait %s; wait", hold, hold, flag)
		r := startPestoRig(t, m, sb, []string{"-t", "8080", "-u", "8080", "-T", "9100", "-U", "none"}, 1, "sh", "-c", script)
		clients := map[string]*sandbox.Proc{
			"tap":         sb.Start(t, sb.Remote(r.ctx, m.as, hold, "hold", "-c", hostPort(sandbox.HostAddr4, "8080"), "-wait", flag)),
			"spliced":     sb.Start(t, sb.Host(r.ctx, m.as, hold, "hold", "-c", "127.0.0.1:8080", "-wait", flag)),
			"udp-tap":     sb.Start(t, sb.Remote(r.ctx, m.as, hold, "udphold", "-c", hostPort(sandbox.HostAddr4, "8080"), "-wait", flag)),
			"udp-spliced": sb.Start(t, sb.Host(r.ctx, m.as, hold, "udphold", "-c", "127.0.0.1:8080", "-wait", flag)),
		}
		for name, c := range clients {
			waitForLine(t, c, "FIRST", 20*time.Second)
			t.Logf("%s: %s", name, c.Stdout())
		}
		if !waitForLines(r.pasta, "FIRST", 20*time.Second, func(l []map[string]string) bool { return len(l) > 0 }) {
			t.Fatalf("the namespace's client of -T 9100 did not get through:\n%s%s", r.pasta.Stdout(), r.pasta.Stderr())
		}
		r.mustPesto("-C", "HOST", "-C", "SPLICE")
		r.expectRules()
		if got := r.probe(tcp, "8080"); got != "refused" {
			t.Errorf("new connection to 8080 after its rule was deleted: %s, want refused", got)
		}
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		for name, c := range clients {
			if exited, err := c.Wait(20 * time.Second); !exited || err != nil {
				t.Errorf("%s client: exited %v, %v\n%s%s", name, exited, err, c.Stdout(), c.Stderr())
				continue
			}
			// n counts the lines (datagrams, retries included) the server got.
			s := toolLine(t, c.Stdout(), "SECOND")
			if n, err := strconv.Atoi(s["n"]); s["name"] != "NS" || err != nil || n < 2 {
				t.Errorf("%s client after the deletion: %v, want the namespace's second answer", name, s)
			}
		}
		if !waitForLines(r.pasta, "SECOND", 20*time.Second, func(l []map[string]string) bool {
			return len(l) > 0 && l[0]["name"] == "HOST" && l[0]["n"] == "2"
		}) {
			t.Errorf("the namespace's client of -T 9100 after the deletion:\n%s%s", r.pasta.Stdout(), r.pasta.Stderr())
		}
	})
}

var pestoToolProg = &testTool{name: "pestotool", source: pestoToolSource}

// pestoToolSource is a client and server for the tests of pesto. Every
// line it prints on stdout is "WORD key=value ...".
//
//	serve -name N -l ADDR...   answer each line of each connection with
//	                           "name=N n=COUNT" (lines so far on it)
//	        -u ADDR...         and answer each datagram with "name=N n=COUNT"
//	                           (datagrams so far from its sender)
//	hold -c DST -wait FILE     connect, exchange a line (print FIRST ...),
//	                           wait for FILE to exist, exchange another
//	                           (print SECOND ...) on the same connection
//	udphold -c DST -wait FILE  the same with datagrams, from one socket
//	ctl -c SOCKET -send WHAT   connect to a control socket (print
//	                           CONNECTED), send nothing, garbage or an
//	                           oversized request, and print pasta's answer
//	                           with the time since connecting (ANSWER ms=
//	                           text=)
const pestoToolSource = `package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func fatal(format string, a ...any) {
	fmt.Printf("ERROR err=%q\n", fmt.Sprintf(format, a...))
	os.Exit(1)
}

func main() {
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var listen multi
	fs.Var(&listen, "l", "address to listen on")
	var udpListen multi
	fs.Var(&udpListen, "u", "UDP address to answer on")
	name := fs.String("name", "", "server name")
	dst := fs.String("c", "", "address (or socket) to connect to")
	wait := fs.String("wait", "", "file to wait for")
	send := fs.String("send", "nothing", "what to send: nothing, garbage, oversized")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "serve":
		serveUDP(*name, udpListen)
		serve(*name, listen)
	case "hold":
		hold(*dst, *wait)
	case "udphold":
		udphold(*dst, *wait)
	case "ctl":
		ctl(*dst, *send)
	}
}

func serve(name string, addrs []string) {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			fatal("listen %s: %v", a, err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					fatal("accept: %v", err)
				}
				go func() {
					defer c.Close()
					r := bufio.NewReader(c)
					for n := 1; ; n++ {
						if _, err := r.ReadString('\n'); err != nil {
							return
						}
						fmt.Fprintf(c, "name=%s n=%d\n", name, n)
					}
				}()
			}
		}()
	}
	fmt.Printf("LISTENING name=%s addrs=%s\n", name, strings.Join(addrs, ","))
	select {}
}

func serveUDP(name string, addrs []string) {
	for _, a := range addrs {
		c, err := net.ListenPacket("udp", a)
		if err != nil {
			fatal("listen %s: %v", a, err)
		}
		go func() {
			counts := map[string]int{}
			buf := make([]byte, 1500)
			for {
				_, from, err := c.ReadFrom(buf)
				if err != nil {
					fatal("read: %v", err)
				}
				counts[from.String()]++
				c.WriteTo([]byte(fmt.Sprintf("name=%s n=%d", name, counts[from.String()])), from)
			}
		}()
	}
}

// waitFile waits up to a minute for path to exist.
func waitFile(path string) {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			fatal("no %s within a minute", path)
		}
	}
}

func udphold(dst, wait string) {
	c, err := net.Dial("udp", dst)
	if err != nil {
		fatal("dial %s: %v", dst, err)
	}
	exchange := func(word string) {
		buf := make([]byte, 1500)
		for try := 0; try < 20; try++ {
			c.Write([]byte(word))
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				fmt.Printf("%s %s\n", word, buf[:n])
				return
			}
		}
		fatal("%s: no answer", word)
	}
	exchange("FIRST")
	waitFile(wait)
	exchange("SECOND")
}

func hold(dst, wait string) {
	c, err := net.DialTimeout("tcp", dst, 10*time.Second)
	if err != nil {
		fatal("connect %s: %v", dst, err)
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	exchange := func(word string) {
		fmt.Fprintf(c, "%s\n", word)
		line, err := r.ReadString('\n')
		if err != nil {
			fatal("%s: %v", word, err)
		}
		fmt.Printf("%s %s\n", word, strings.TrimSpace(line))
	}
	exchange("FIRST")
	waitFile(wait)
	exchange("SECOND")
}

func ctl(path, send string) {
	c, err := net.Dial("unix", path)
	if err != nil {
		fatal("connect %s: %v", path, err)
	}
	start := time.Now()
	fmt.Printf("CONNECTED\n")
	c.SetDeadline(start.Add(time.Minute))
	switch send {
	case "garbage":
		io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	case "oversized":
		go c.Write(bytes.Repeat([]byte("x"), 1<<20))
	}
	answer, _ := io.ReadAll(c)
	fmt.Printf("ANSWER ms=%d text=%q\n", time.Since(start).Milliseconds(), strings.TrimSpace(string(answer)))
}
`
