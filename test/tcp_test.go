package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// End-to-end TCP through pasta: bulk transfers both ways (byte-exact, IPv4
// and IPv6), many concurrent connections, half-closes both ways, refused
// connections, inbound forwarding (-t) with ranges and target ports and
// the client's real address, -t auto, --map-gw / --no-map-gw and
// --map-guest-addr. Clients and servers are one small Go program, tcptool
// (its source is tcpToolSource below), built once for the test process.

const (
	tcpBulkSize        = 256 << 20 // bytes per bulk transfer
	tcpManyConns       = 500
	tcpManySize        = 64 << 10 // bytes each way per connection
	tcpManyTimeout     = 90 * time.Second
	tcpHalfCloseSize   = 1 << 20 // bytes sent after the other side's FIN
	tcpServerPort      = "5001"  // tcptool servers in the remote netns
	tcpRefusedPort     = "5999"  // nothing listens there
	tcpHostPort        = "5002"  // tcptool servers in the host netns (--map-gw, --map-guest-addr)
	tcpAutoPort        = "6123"  // the server started late inside the namespace (-t auto)
	tcpRefusedMax      = time.Second
	tcpAutoMax         = 3 * time.Second
	tcpServerReadyWait = 10 * time.Second
	tcpMapGuestAddr    = "169.254.1.2" // what Podman passes as --map-guest-addr
)

// tcpBulkTimeout bounds one 256 MiB transfer, pasta's start included. Ours
// takes 1-8 s here. The C pasta uploads (namespace to remote) at only
// 20-200 Mbit/s on these machines (iperf3 agrees: about 160 Mbit/s, with
// retransmissions), 10-94 s for 256 MiB on a busy 2-core machine, so the
// reference gets more time.
func tcpBulkTimeout() time.Duration {
	if sandbox.Reference() {
		return 3 * time.Minute
	}
	return time.Minute
}

// --- tcptool: building it --------------------------------------------------

// tcpToolProg is the helper program of these tests.
var tcpToolProg = &testTool{name: "tcptool", source: tcpToolSource}

// streamSums caches the sha256 of tcptool's deterministic streams.
var streamSums struct {
	mu sync.Mutex
	m  map[[2]uint64]string
}

// streamSum is the sha256 (hex) of the first n bytes of tcptool's stream
// for seed, as tcptool itself computes it outside any namespace.
func streamSum(t *testing.T, tool string, seed, n uint64) string {
	t.Helper()
	s := &streamSums
	s.mu.Lock()
	defer s.mu.Unlock()
	if sum, ok := s.m[[2]uint64{seed, n}]; ok {
		return sum
	}
	ctx := withTimeout(t, time.Minute)
	out, err := exec.CommandContext(ctx, tool, "sum", "-seed", fmt.Sprint(seed), "-n", fmt.Sprint(n)).Output()
	if err != nil {
		t.Fatalf("tcptool sum: %v", err)
	}
	kv := toolLine(t, string(out), "SUM")
	if s.m == nil {
		s.m = map[[2]uint64]string{}
	}
	s.m[[2]uint64{seed, n}] = kv["sha256"]
	return kv["sha256"]
}

// --- tcptool: running it ---------------------------------------------------

// toolLines returns the key=value fields of each line of out that starts
// with word (tcptool prints "WORD key=value ...").
func toolLines(out, word string) []map[string]string {
	var res []map[string]string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != word {
			continue
		}
		kv := map[string]string{}
		for _, x := range f[1:] {
			k, v, _ := strings.Cut(x, "=")
			kv[k] = v
		}
		res = append(res, kv)
	}
	return res
}

// toolLine returns the fields of the only line starting with word.
func toolLine(t *testing.T, out, word string) map[string]string {
	t.Helper()
	l := toolLines(out, word)
	if len(l) != 1 {
		t.Fatalf("%d lines %q in the output, want 1:\n%s", len(l), word, out)
	}
	return l[0]
}

// runInNs runs pasta (with the mode's options, --config-net and opts)
// with a tcptool command inside the namespace, bounded by timeout, and
// returns the command's output. pasta (hence the command) must exit 0.
func runInNs(t *testing.T, m mode, sb *sandbox.Sandbox, timeout time.Duration, opts []string, tool string, toolArgs ...string) sandbox.Result {
	t.Helper()
	ctx := withTimeout(t, timeout)
	args := append(append([]string{"--config-net"}, opts...), "--", tool)
	args = append(args, toolArgs...)
	cmd := m.pasta(t, ctx, sb, args...)
	res := sandbox.Run(cmd)
	t.Logf("$ pasta %s\n%s", strings.Join(args, " "), res)
	mustExit(t, res, 0)
	return res
}

// startServer starts a tcptool server (cmd: "tcptool serve ...", directly
// or under pasta) and waits until it prints LISTENING.
func startServer(t *testing.T, sb *sandbox.Sandbox, cmd *exec.Cmd) *sandbox.Proc {
	t.Helper()
	p := sb.Start(t, cmd)
	waitForLine(t, p, "LISTENING", tcpServerReadyWait)
	return p
}

// waitForLine polls the output of p until a line starts with word, at most
// timeout. It fails the test if p exits first or time runs out.
func waitForLine(t *testing.T, p *sandbox.Proc, word string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if len(toolLines(p.Stdout(), word)) > 0 {
			return
		}
		select {
		case <-p.Done():
			if len(toolLines(p.Stdout(), word)) > 0 {
				return
			}
			t.Fatalf("%s exited before printing %s\n[stdout]\n%s[stderr]\n%s",
				strings.Join(p.Cmd.Args, " "), word, p.Stdout(), p.Stderr())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed no %s line within %v\n[stdout]\n%s[stderr]\n%s",
				strings.Join(p.Cmd.Args, " "), word, timeout, p.Stdout(), p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForLines polls the output of p until f (called with all lines
// starting with word) reports true, at most timeout. It returns whether
// that happened.
func waitForLines(p *sandbox.Proc, word string, timeout time.Duration, f func([]map[string]string) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if f(toolLines(p.Stdout(), word)) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRemoteServer starts a tcptool server in the remote netns on port,
// all addresses (192.0.2.2, 192.0.2.254, 2001:db8::2, fe80::fe).
func startRemoteServer(t *testing.T, sb *sandbox.Sandbox, tool, name, port string) *sandbox.Proc {
	t.Helper()
	ctx := withTimeout(t, 5*time.Minute)
	return startServer(t, sb, sb.Remote(ctx, sandbox.Root, tool, "serve", "-name", name, "-l", ":"+port))
}

// hostPort joins an address and a port, with brackets for IPv6.
func hostPort(addr, port string) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + port
	}
	return addr + ":" + port
}

// peerAddr parses the address part of an "addr:port" field printed by
// tcptool, dropping any zone.
func peerAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatalf("bad address %q: %v", s, err)
	}
	return ap.Addr().WithZone("").Unmap()
}

var tcpFamilies = []struct{ name, remote, host string }{
	{"ipv4", sandbox.RemoteAddr4, sandbox.HostAddr4},
	{"ipv6", sandbox.RemoteAddr6, sandbox.HostAddr6},
}

// --- the cases -------------------------------------------------------------

// 1. 256 MiB each way, over IPv4 and IPv6, byte-exact: the sender streams
// deterministic pseudo-random bytes and reports their sha256, the receiver
// reports the sha256 of what it got, and both must equal the stream's sum
// computed outside any namespace.
func TestTCPBulk(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		srv := startRemoteServer(t, sb, tool, "REMOTE", tcpServerPort)
		n := uint64(tcpBulkSize)
		for i, fam := range tcpFamilies {
			dst := hostPort(fam.remote, tcpServerPort)
			t.Run(fam.name+"/upload", func(t *testing.T) {
				seed := uint64(100 + i)
				want := streamSum(t, tool, seed, n)
				res := runInNs(t, m, sb, tcpBulkTimeout(), nil, tool, "up", "-c", dst, "-n", fmt.Sprint(n), "-seed", fmt.Sprint(seed))
				sent := toolLine(t, res.Stdout, "SENT")
				reply := toolLine(t, res.Stdout, "REPLY")
				if sent["bytes"] != fmt.Sprint(n) || sent["sha256"] != want {
					t.Errorf("client sent %s bytes with sha256 %s, want %d bytes with %s", sent["bytes"], sent["sha256"], n, want)
				}
				if reply["bytes"] != fmt.Sprint(n) || reply["sha256"] != want {
					t.Errorf("server received %s bytes with sha256 %s, want %d bytes with %s", reply["bytes"], reply["sha256"], n, want)
				}
				// The server's own log agrees, and names the host as peer.
				var got map[string]string
				if !waitForLines(srv, "UP", 5*time.Second, func(l []map[string]string) bool {
					for _, x := range l {
						if x["sha256"] == want {
							got = x
							return true
						}
					}
					return false
				}) {
					t.Fatalf("the server logged no upload with sha256 %s:\n%s", want, srv.Stdout())
				}
				if got["bytes"] != fmt.Sprint(n) || peerAddr(t, got["peer"]) != netip.MustParseAddr(fam.host) {
					t.Errorf("server log: %v, want %d bytes from %s", got, n, fam.host)
				}
				t.Logf("upload %s: %d MiB in %v (%.0f Mbit/s including pasta's start)", fam.name, n>>20,
					res.Duration.Round(time.Millisecond), float64(n)*8/res.Duration.Seconds()/1e6)
			})
			t.Run(fam.name+"/download", func(t *testing.T) {
				seed := uint64(200 + i)
				want := streamSum(t, tool, seed, n)
				res := runInNs(t, m, sb, tcpBulkTimeout(), nil, tool, "down", "-c", dst, "-n", fmt.Sprint(n), "-seed", fmt.Sprint(seed))
				recv := toolLine(t, res.Stdout, "RECV")
				if recv["bytes"] != fmt.Sprint(n) || recv["sha256"] != want {
					t.Errorf("client received %s bytes with sha256 %s, want %d bytes with %s", recv["bytes"], recv["sha256"], n, want)
				}
				if !waitForLines(srv, "DOWN", 5*time.Second, func(l []map[string]string) bool {
					for _, x := range l {
						if x["sha256"] == want && x["bytes"] == fmt.Sprint(n) && x["err"] == "" {
							return true
						}
					}
					return false
				}) {
					t.Errorf("the server logged no complete download with sha256 %s:\n%s", want, srv.Stdout())
				}
				t.Logf("download %s: %d MiB in %v (%.0f Mbit/s including pasta's start)", fam.name, n>>20,
					res.Duration.Round(time.Millisecond), float64(n)*8/res.Duration.Seconds()/1e6)
			})
		}
	})
}

// 2. 500 connections at once from the namespace to the remote, each moving
// 64 KiB each way: the client opens them all before any data moves, then
// every connection sends its own stream and checks the server's, and the
// server checks what it got (and says so on the connection).
func TestTCPManyConnections(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		srv := startRemoteServer(t, sb, tool, "REMOTE", tcpServerPort)
		res := runInNs(t, m, sb, tcpManyTimeout, nil, tool, "many", "-c", hostPort(sandbox.RemoteAddr4, tcpServerPort),
			"-conns", fmt.Sprint(tcpManyConns), "-size", fmt.Sprint(tcpManySize), "-seed", "1000")
		sum := toolLine(t, res.Stdout, "MANY")
		want := fmt.Sprint(tcpManyConns)
		if sum["connected"] != want || sum["ok"] != want {
			t.Errorf("%s of %s connections open at once, %s verified both ways; failures:\n%s",
				sum["connected"], want, sum["ok"], strings.Join(grepLines(res.Stdout, "FAIL"), "\n"))
		}
		// Every connection's data reached the server intact.
		okSeeds := map[string]bool{}
		waitForLines(srv, "XCHG", 10*time.Second, func(l []map[string]string) bool {
			for _, x := range l {
				if x["verdict"] == "OK" {
					okSeeds[x["seed"]] = true
				}
			}
			return len(okSeeds) >= tcpManyConns
		})
		if len(okSeeds) != tcpManyConns {
			t.Errorf("the server verified %d connections, want %d; its complaints:\n%s", len(okSeeds), tcpManyConns,
				strings.Join(grepLines(srv.Stdout(), "XCHG", "verdict=BAD"), "\n"))
		}
		t.Logf("%d connections x %d KiB each way in %v", tcpManyConns, tcpManySize>>10, res.Duration.Round(time.Millisecond))
	})
}

// grepLines returns the lines of s that start with prefix and contain all
// of subs.
func grepLines(s, prefix string, subs ...string) []string {
	var res []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		ok := true
		for _, x := range subs {
			ok = ok && strings.Contains(l, x)
		}
		if ok {
			res = append(res, l)
		}
	}
	if len(res) > 20 {
		res = append(res[:20], fmt.Sprintf("... and %d more", len(res)-20))
	}
	return res
}

// 3. Half-closes. "server": the remote server reads the request, answers
// and shuts down its write side; the client in the namespace reads the
// answer and EOF, then sends 1 MiB more, which the server must receive
// whole (the client asks for the server's verdict on a second connection).
// "client": the client sends its request and shuts down its write side;
// the server reads to EOF and only then sends 1 MiB, in pieces, which the
// client must receive whole.
func TestTCPHalfClose(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		srv := startRemoteServer(t, sb, tool, "REMOTE", tcpServerPort)
		n := uint64(tcpHalfCloseSize)
		for i, fam := range tcpFamilies {
			dst := hostPort(fam.remote, tcpServerPort)
			t.Run(fam.name+"/server", func(t *testing.T) {
				seed := uint64(300 + i)
				want := streamSum(t, tool, seed, n)
				id := fam.name + "-" + m.name
				res := runInNs(t, m, sb, pastaTimeout, nil, tool, "hcs", "-c", dst, "-id", id, "-n", fmt.Sprint(n), "-seed", fmt.Sprint(seed))
				resp := toolLine(t, res.Stdout, "HCS-RESP")
				if resp["resp"] != "RESP-hello" || resp["eof"] != "1" {
					t.Errorf("client got response %q, EOF %s; want RESP-hello then EOF", resp["resp"], resp["eof"])
				}
				sent := toolLine(t, res.Stdout, "HCS-SENT")
				if sent["bytes"] != fmt.Sprint(n) || sent["sha256"] != want {
					t.Errorf("client sent %v after EOF, want %d bytes with sha256 %s", sent, n, want)
				}
				status := toolLine(t, res.Stdout, "HCS-STATUS")
				if status["bytes"] != fmt.Sprint(n) || status["sha256"] != want {
					t.Errorf("after its half-close the server received %s bytes with sha256 %s, want %d with %s (client: %v)",
						status["bytes"], status["sha256"], n, want, status)
				}
				var got map[string]string
				for _, x := range toolLines(srv.Stdout(), "HCS") {
					if x["id"] == id {
						got = x
					}
				}
				if got == nil || got["bytes"] != fmt.Sprint(n) || got["sha256"] != want || got["req"] != "hello" {
					t.Errorf("server log for %s: %v, want request hello, then %d bytes with sha256 %s:\n%s", id, got, n, want, srv.Stdout())
				}
			})
			t.Run(fam.name+"/client", func(t *testing.T) {
				seed := uint64(400 + i)
				want := streamSum(t, tool, seed, n)
				res := runInNs(t, m, sb, pastaTimeout, nil, tool, "hcc", "-c", dst, "-n", fmt.Sprint(n), "-seed", fmt.Sprint(seed))
				recv := toolLine(t, res.Stdout, "HCC-RECV")
				if recv["bytes"] != fmt.Sprint(n) || recv["sha256"] != want {
					t.Errorf("after its half-close the client received %s bytes with sha256 %s, want %d with %s",
						recv["bytes"], recv["sha256"], n, want)
				}
				var got map[string]string
				if !waitForLines(srv, "HCC", 5*time.Second, func(l []map[string]string) bool {
					for _, x := range l {
						if x["seed"] == fmt.Sprint(seed) {
							got = x
							return true
						}
					}
					return false
				}) || got["req"] != "please" || got["sent"] != fmt.Sprint(n) || got["err"] != "" {
					t.Errorf("server log for seed %d: %v, want request please before EOF, then %d bytes sent:\n%s", seed, got, n, srv.Stdout())
				}
			})
		}
	})
}

// 4. A connection to a closed port of the remote is refused at once: pasta
// answers the guest's SYN with a RST as soon as its own connect() fails.
func TestTCPRefused(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		for _, fam := range tcpFamilies {
			t.Run(fam.name, func(t *testing.T) {
				res := runInNs(t, m, sb, pastaTimeout, nil, tool, "probe", "-c", hostPort(fam.remote, tcpRefusedPort))
				r := toolLine(t, res.Stdout, "PROBE")
				if r["result"] != "refused" {
					t.Fatalf("connect to %s: %v, want ECONNREFUSED", hostPort(fam.remote, tcpRefusedPort), r)
				}
				ms, _ := strconv.Atoi(r["ms"])
				if d := time.Duration(ms) * time.Millisecond; d >= tcpRefusedMax {
					t.Errorf("ECONNREFUSED after %v, want < %v", d, tcpRefusedMax)
				}
				t.Logf("refused after %s ms", r["ms"])
			})
		}
	})
}

// hello runs cmd, a "tcptool hello" client, and returns the server's
// greeting fields (name, local, peer: addresses as the server sees them)
// and the client's own (local address, attempts, elapsed ms, time of success).
func hello(t *testing.T, cmd *exec.Cmd) (greeting, client map[string]string) {
	t.Helper()
	res := sandbox.Run(cmd)
	if res.Err != nil {
		t.Fatalf("%s: %s", strings.Join(cmd.Args, " "), res)
	}
	return toolLine(t, res.Stdout, "HELLO"), toolLine(t, res.Stdout, "CLIENT")
}

// nsServer starts pasta in the background with opts and a tcptool server
// in the namespace listening on ports (all addresses), and waits until it
// listens.
func nsServer(t *testing.T, m mode, sb *sandbox.Sandbox, tool string, opts []string, ports ...string) *sandbox.Proc {
	t.Helper()
	ctx := withTimeout(t, 5*time.Minute)
	args := append(append([]string{"--config-net"}, opts...), "--", tool, "serve", "-name", "NS")
	for _, p := range ports {
		args = append(args, "-l", ":"+p)
	}
	t.Logf("$ pasta %s &", strings.Join(args, " "))
	return startServer(t, sb, m.pasta(t, ctx, sb, args...))
}

// 5. Inbound forwarding: -t 8080,9000-9001:7000-7001 (without -u, which
// then forwards the same UDP ports, as users run it). Clients in the remote
// netns reach the server in the namespace through the host's address, on
// the forwarded ports and at the target ports, and the server sees their
// real address. Port 7001 of the host is not forwarded. Local clients
// can't keep their address (loopback can't cross the tap, and the host's
// own address is the guest's too): one on the host's loopback is spliced
// to the guest's own address over the namespace's loopback, so the kernel
// there makes it the source; one on the host's address, and with
// --no-splice one on the loopback too, go through the tap and appear as
// the gateway (pasta's own address, and --map-gw's; hostaddr_test.go has
// the other options). The C pasta does the same.
func TestTCPInboundForward(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ctx := withTimeout(t, 2*time.Minute)
		remote4, remote6 := netip.MustParseAddr(sandbox.RemoteAddr4), netip.MustParseAddr(sandbox.RemoteAddr6)
		host4, gw4 := netip.MustParseAddr(sandbox.HostAddr4), netip.MustParseAddr(sandbox.Gateway4)
		for _, run := range []struct {
			name  string
			opts  []string
			cases []inboundCase
		}{
			{"splice", nil, []inboundCase{
				{"remote-ipv4-8080", false, sandbox.HostAddr4, "8080", "8080", remote4},
				{"remote-ipv4-9000", false, sandbox.HostAddr4, "9000", "7000", remote4},
				{"remote-ipv4-9001", false, sandbox.HostAddr4, "9001", "7001", remote4},
				{"remote-ipv6-8080", false, sandbox.HostAddr6, "8080", "8080", remote6},
				{"remote-ipv6-9001", false, sandbox.HostAddr6, "9001", "7001", remote6},
				{"loopback-ipv4-8080", true, "127.0.0.1", "8080", "8080", host4},
				{"loopback-ipv4-9001", true, "127.0.0.1", "9001", "7001", host4},
				{"hostaddr-ipv4-8080", true, sandbox.HostAddr4, "8080", "8080", gw4},
			}},
			{"no-splice", []string{"--no-splice"}, []inboundCase{
				{"remote-ipv4-9001", false, sandbox.HostAddr4, "9001", "7001", remote4},
				{"loopback-ipv4-8080", true, "127.0.0.1", "8080", "8080", gw4},
				{"loopback-ipv4-9001", true, "127.0.0.1", "9001", "7001", gw4},
			}},
		} {
			t.Run(run.name, func(t *testing.T) {
				opts := append([]string{"-t", "8080,9000-9001:7000-7001"}, run.opts...)
				srv := nsServer(t, m, sb, tool, opts, "8080", "7000", "7001")
				defer srv.Kill()
				for _, tc := range run.cases {
					t.Run(tc.name, func(t *testing.T) { tc.check(t, m, sb, ctx, tool) })
				}
				t.Run("not-forwarded-7001", func(t *testing.T) {
					res := sandbox.Run(sb.Remote(ctx, m.as, tool, "probe", "-c", hostPort(sandbox.HostAddr4, "7001")))
					if r := toolLine(t, res.Stdout, "PROBE"); r["result"] != "refused" {
						t.Errorf("connect to the host's port 7001 (only a target port): %v, want refused", r)
					}
				})
				// One accepted connection per client, no more. The server's
				// lines come through a pipe that the test reads in its own
				// goroutine, which may lag behind the clients' answers on
				// a loaded machine: wait for them, a bounded time.
				waitForLines(srv, "ACCEPT", 10*time.Second, func(l []map[string]string) bool { return len(l) >= len(run.cases) })
				if n := len(toolLines(srv.Stdout(), "ACCEPT")); n != len(run.cases) {
					t.Errorf("the server in the namespace accepted %d connections, want %d:\n%s", n, len(run.cases), srv.Stdout())
				}
			})
		}
	})
}

// inboundCase is a client of a forwarded port.
type inboundCase struct {
	name      string
	fromHost  bool // the client runs in the host netns, else in the remote
	dst, port string
	nsPort    string     // port the server in the namespace is reached on
	peer      netip.Addr // the client's address as the server must see it
}

func (tc inboundCase) check(t *testing.T, m mode, sb *sandbox.Sandbox, ctx context.Context, tool string) {
	t.Helper()
	where := sb.Remote
	if tc.fromHost {
		where = sb.Host
	}
	dst := hostPort(tc.dst, tc.port)
	g, c := hello(t, where(ctx, m.as, tool, "hello", "-c", dst))
	if g["name"] != "NS" {
		t.Fatalf("%s answered by %q, want the server in the namespace", dst, g["name"])
	}
	local, err := netip.ParseAddrPort(g["local"])
	if err != nil || strconv.Itoa(int(local.Port())) != tc.nsPort {
		t.Errorf("%s reached the namespace's server on %s, want port %s", dst, g["local"], tc.nsPort)
	}
	if got := peerAddr(t, g["peer"]); got != tc.peer {
		t.Errorf("connection to %s from %s: the server in the namespace sees the client as %s, want %s",
			dst, c["local"], g["peer"], tc.peer)
	}
	t.Logf("%s: client %s, namespace sees %s -> %s", dst, c["local"], g["peer"], g["local"])
}

// 6. --map-gw (the default): the gateway address, from the namespace, is
// the host's loopback; with --no-map-gw it is the gateway itself (here: a
// server in the remote netns on the gateway's address).
func TestTCPMapGateway(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		hctx := withTimeout(t, 5*time.Minute)
		startServer(t, sb, sb.Host(hctx, sandbox.Root, tool, "serve", "-name", "HOSTLO",
			"-l", hostPort("127.0.0.1", tcpHostPort), "-l", hostPort("::1", tcpHostPort)))
		startRemoteServer(t, sb, tool, "REMOTE", tcpHostPort)
		for _, tc := range []struct {
			name     string
			opts     []string
			dst      string // the gateway, as the namespace addresses it
			wantName string
			wantPeer string // the client's address as the server sees it
		}{
			{"map-gw/ipv4", nil, sandbox.Gateway4, "HOSTLO", "127.0.0.1"},
			{"map-gw/ipv6", nil, sandbox.Gateway6 + "%" + sandbox.HostIf, "HOSTLO", "::1"},
			{"no-map-gw/ipv4", []string{"--no-map-gw"}, sandbox.Gateway4, "REMOTE", sandbox.HostAddr4},
			{"no-map-gw/ipv6", []string{"--no-map-gw"}, sandbox.Gateway6 + "%" + sandbox.HostIf, "REMOTE", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := runInNs(t, m, sb, pastaTimeout, tc.opts, tool, "hello", "-c", hostPort(tc.dst, tcpHostPort))
				g := toolLine(t, res.Stdout, "HELLO")
				if g["name"] != tc.wantName {
					t.Errorf("%s:%s answered by %q (%v), want %q", tc.dst, tcpHostPort, g["name"], g, tc.wantName)
				}
				peer := peerAddr(t, g["peer"])
				switch {
				case tc.wantPeer != "" && peer != netip.MustParseAddr(tc.wantPeer):
					t.Errorf("the server sees the client as %s, want %s", g["peer"], tc.wantPeer)
				case tc.wantPeer == "" && !peer.IsLinkLocalUnicast():
					// Towards fe80::fe the host uses its own link-local address.
					t.Errorf("the server sees the client as %s, want the host's link-local address", g["peer"])
				}
				t.Logf("%s: %v", tc.name, g)
			})
		}
	})
}

// 7. -t auto (also the default without -t): a server started in the
// namespace after pasta becomes reachable from the remote through the
// host's address within tcpAutoMax (pasta rescans once a second).
func TestTCPAutoForward(t *testing.T) {
	tool := tcpToolProg.binary(t)
	checkAutoForward(t, autoForwardCase{
		tool: tool, port: tcpAutoPort, option: "-t", max: tcpAutoMax,
		probe:  func(dst string) []string { return []string{tool, "probe", "-c", dst} },
		probed: "PROBE", closed: []string{"refused"},
		client: func(dst string) []string { return []string{tool, "hello", "-retry", "10s", "-c", dst} },
		answer: "HELLO",
	})
}

// unixMilli parses a time printed by tcptool (milliseconds since the epoch).
func unixMilli(t *testing.T, s string) time.Time {
	t.Helper()
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("bad time %q", s)
	}
	return time.UnixMilli(ms)
}

// 8. --map-guest-addr: from the namespace, that address is the host's own
// address (Podman's host.containers.internal).
func TestTCPMapGuestAddr(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		hctx := withTimeout(t, 5*time.Minute)
		startServer(t, sb, sb.Host(hctx, sandbox.Root, tool, "serve", "-name", "HOSTADDR",
			"-l", hostPort(sandbox.HostAddr4, tcpHostPort)))
		res := runInNs(t, m, sb, pastaTimeout, []string{"--map-guest-addr", tcpMapGuestAddr}, tool,
			"hello", "-c", hostPort(tcpMapGuestAddr, tcpHostPort))
		g := toolLine(t, res.Stdout, "HELLO")
		if g["name"] != "HOSTADDR" {
			t.Fatalf("%s answered by %q (%v), want the server on the host's %s", tcpMapGuestAddr, g["name"], g, sandbox.HostAddr4)
		}
		if peer := peerAddr(t, g["peer"]); peer != netip.MustParseAddr(sandbox.HostAddr4) {
			t.Errorf("the host's server sees the client as %s, want %s (the host itself)", g["peer"], sandbox.HostAddr4)
		}
	})
}

// --- tcptool's source --------------------------------------------------------

// tcpToolSource is a client and server for these tests. Every line it
// prints on stdout is "WORD key=value ...". The server reads a request line
// on each connection:
//
//	HELLO            answer "HELLO name= local= peer=" (addresses as it sees them)
//	UP               read to EOF, answer "OK bytes= sha256="
//	DOWN N SEED      send N bytes of the stream SEED, close
//	XCHG N SEED      send N bytes of stream SEED^xchgMask while checking that
//	                 N bytes of stream SEED then EOF arrive, then answer OK or BAD
//	HCS ID           read "REQ word", answer "RESP-word", shut down writing, read
//	                 to EOF; "STATUS ID" on another connection gets the result
//	HCC N SEED       read the request to EOF, then send N bytes of stream SEED
//	                 in pieces, close
const tcpToolSource = `// tcptool: client and server for gopasta's end-to-end TCP tests.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	ioTimeout = 5 * time.Minute // a safety net: the tests bound every command themselves
	xchgMask  = 0x5a5a5a5a5a5a5a5a
)

var outMu sync.Mutex

func out(format string, a ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", a...)
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "tcptool: "+format+"\n", a...)
	os.Exit(2)
}

// stream is a deterministic pseudo-random byte stream (splitmix64, little
// endian), independent of how it is read.
type stream struct {
	state uint64
	left  [8]byte
	nleft int
}

func newStream(seed uint64) *stream { return &stream{state: seed} }

func (s *stream) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (s *stream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && s.nleft > 0 {
		p[n] = s.left[8-s.nleft]
		s.nleft--
		n++
	}
	for len(p)-n >= 8 {
		binary.LittleEndian.PutUint64(p[n:], s.next())
		n += 8
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(s.left[:], s.next())
		s.nleft = 8
		for n < len(p) {
			p[n] = s.left[8-s.nleft]
			s.nleft--
			n++
		}
	}
	return n, nil
}

// sendStream writes n bytes of stream seed to w in pieces of at most
// piece bytes (pausing between pieces if pause > 0), and returns how many
// it wrote and their sha256.
func sendStream(w io.Writer, seed, n uint64, piece int, pause time.Duration) (uint64, string, error) {
	s := newStream(seed)
	h := sha256.New()
	buf := make([]byte, piece)
	var sent uint64
	for sent < n {
		b := buf[:min(uint64(len(buf)), n-sent)]
		s.Read(b)
		h.Write(b)
		m, err := w.Write(b)
		sent += uint64(m)
		if err != nil {
			return sent, hex.EncodeToString(h.Sum(nil)), err
		}
		if pause > 0 && sent < n {
			time.Sleep(pause)
		}
	}
	return sent, hex.EncodeToString(h.Sum(nil)), nil
}

// drain reads r to EOF and returns the byte count and sha256.
func drain(r io.Reader) (uint64, string, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 256<<10))
	return uint64(n), hex.EncodeToString(h.Sum(nil)), err
}

// verify reads r to EOF and checks it is exactly n bytes of stream seed.
func verify(r io.Reader, seed, n uint64) error {
	s := newStream(seed)
	buf := make([]byte, 64<<10)
	want := make([]byte, 64<<10)
	var got uint64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if got+uint64(m) > n {
				return fmt.Errorf("more than %d bytes", n)
			}
			s.Read(want[:m])
			if i := firstDiff(buf[:m], want[:m]); i >= 0 {
				return fmt.Errorf("byte %d is %#x, want %#x", got+uint64(i), buf[i], want[i])
			}
			got += uint64(m)
		}
		if err == io.EOF {
			if got != n {
				return fmt.Errorf("EOF after %d bytes, want %d", got, n)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %v", got, err)
		}
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func q(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

func main() {
	if len(os.Args) < 2 {
		fatal("usage: tcptool serve|up|down|many|hcs|hcc|probe|hello|await|hold|sum ...")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var listen multi
	fs.Var(&listen, "l", "listen address (repeatable)")
	name := fs.String("name", "server", "server name, in greetings")
	dst := fs.String("c", "", "address to connect to")
	n := fs.Uint64("n", 0, "bytes")
	seed := fs.Uint64("seed", 1, "stream seed")
	conns := fs.Int("conns", 1, "connections")
	size := fs.Uint64("size", 0, "bytes each way per connection")
	id := fs.String("id", "", "half-close case id")
	retry := fs.Duration("retry", 0, "keep trying that long")
	wait := fs.Duration("wait", 5*time.Second, "time to wait for an answer")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "serve":
		serve(*name, listen)
	case "sum":
		_, sum, _ := sendStream(io.Discard, *seed, *n, 256<<10, 0)
		out("SUM bytes=%d sha256=%s", *n, sum)
	case "up":
		up(*dst, *n, *seed)
	case "down":
		down(*dst, *n, *seed)
	case "many":
		many(*dst, *conns, *size, *seed)
	case "hcs":
		hcs(*dst, *id, *n, *seed)
	case "hcc":
		hcc(*dst, *n, *seed)
	case "probe":
		probe(*dst)
	case "hello":
		hello(*dst, *retry)
	case "await":
		await(*dst, *wait)
	case "hold":
		hold(*dst, *conns, *wait)
	default:
		fatal("unknown command %q", os.Args[1])
	}
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

// --- server ---

var results = struct {
	sync.Mutex
	m map[string]chan string
}{m: map[string]chan string{}}

func result(id string) chan string {
	results.Lock()
	defer results.Unlock()
	c, ok := results.m[id]
	if !ok {
		c = make(chan string, 1)
		results.m[id] = c
	}
	return c
}

func serve(name string, addrs []string) {
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			fatal("listen %s: %v", a, err)
		}
		lns = append(lns, ln)
	}
	out("LISTENING name=%s addrs=%s t=%d", name, strings.Join(addrs, ","), time.Now().UnixMilli())
	for _, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					fatal("accept: %v", err)
				}
				go handle(name, c.(*net.TCPConn))
			}
		}()
	}
	select {}
}

func handle(name string, c *net.TCPConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	peer, local := c.RemoteAddr().String(), c.LocalAddr().String()
	r := bufio.NewReaderSize(c, 64<<10)
	line, err := r.ReadString('\n')
	if err != nil {
		out("ERROR peer=%s err=%s", peer, q(err))
		return
	}
	f := strings.Fields(line)
	num := func(i int) uint64 {
		if i >= len(f) {
			return 0
		}
		v, _ := strconv.ParseUint(f[i], 10, 64)
		return v
	}
	if len(f) == 0 {
		out("ERROR peer=%s err=empty_request", peer)
		return
	}
	switch f[0] {
	case "HELLO":
		out("ACCEPT name=%s local=%s peer=%s", name, local, peer)
		fmt.Fprintf(c, "HELLO name=%s local=%s peer=%s\n", name, local, peer)
	case "UP":
		got, sum, err := drain(r)
		out("UP name=%s peer=%s bytes=%d sha256=%s err=%s", name, peer, got, sum, q(err))
		fmt.Fprintf(c, "OK bytes=%d sha256=%s\n", got, sum)
	case "DOWN":
		sent, sum, err := sendStream(c, num(2), num(1), 256<<10, 0)
		out("DOWN name=%s peer=%s bytes=%d sha256=%s err=%s", name, peer, sent, sum, q(err))
	case "XCHG":
		n, seed := num(1), num(2)
		werr := make(chan error, 1)
		go func() {
			_, _, err := sendStream(c, seed^xchgMask, n, 16<<10, 0)
			werr <- err
		}()
		verdict := "OK"
		if err := verify(r, seed, n); err != nil {
			verdict = "BAD:" + q(err)
		}
		if err := <-werr; err != nil && verdict == "OK" {
			verdict = "BAD:send:" + q(err)
		}
		out("XCHG peer=%s seed=%d verdict=%s", peer, seed, verdict)
		fmt.Fprintf(c, "%s\n", verdict)
	case "HCS":
		id := ""
		if len(f) > 1 {
			id = f[1]
		}
		req, err := r.ReadString('\n')
		word := strings.TrimPrefix(strings.TrimSpace(req), "REQ ")
		if err != nil {
			out("HCS id=%s peer=%s err=request:%s", id, peer, q(err))
			return
		}
		fmt.Fprintf(c, "RESP-%s\n", word)
		if err := c.CloseWrite(); err != nil {
			out("HCS id=%s peer=%s err=shutdown:%s", id, peer, q(err))
			return
		}
		got, sum, err := drain(r)
		res := fmt.Sprintf("req=%s bytes=%d sha256=%s err=%s", word, got, sum, q(err))
		out("HCS id=%s peer=%s %s", id, peer, res)
		result(id) <- res
	case "STATUS":
		id := ""
		if len(f) > 1 {
			id = f[1]
		}
		select {
		case res := <-result(id):
			fmt.Fprintf(c, "%s\n", res)
		case <-time.After(30 * time.Second):
			fmt.Fprintf(c, "timeout=1\n")
		}
	case "HCC":
		n, seed := num(1), num(2)
		req, err := io.ReadAll(r)
		if err != nil {
			out("HCC peer=%s seed=%d err=request:%s", peer, seed, q(err))
			return
		}
		sent, sum, err := sendStream(c, seed, n, int(max(n/8, 1)), 50*time.Millisecond)
		out("HCC peer=%s seed=%d req=%s sent=%d sha256=%s err=%s", peer, seed, strings.TrimSpace(string(req)), sent, sum, q(err))
	default:
		out("ERROR peer=%s err=unknown_request_%s", peer, f[0])
	}
}

// --- clients ---

func dial(dst string) *net.TCPConn {
	c, err := net.DialTimeout("tcp", dst, 10*time.Second)
	if err != nil {
		fatal("connect %s: %v", dst, err)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c.(*net.TCPConn)
}

func up(dst string, n, seed uint64) {
	c := dial(dst)
	defer c.Close()
	if _, err := io.WriteString(c, "UP\n"); err != nil {
		fatal("send: %v", err)
	}
	sent, sum, err := sendStream(c, seed, n, 256<<10, 0)
	out("SENT bytes=%d sha256=%s err=%s", sent, sum, q(err))
	if err != nil {
		os.Exit(1)
	}
	if err := c.CloseWrite(); err != nil {
		fatal("shutdown: %v", err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		fatal("reading the reply: %v", err)
	}
	out("REPLY %s", strings.TrimPrefix(strings.TrimSpace(string(reply)), "OK "))
}

func down(dst string, n, seed uint64) {
	c := dial(dst)
	defer c.Close()
	fmt.Fprintf(c, "DOWN %d %d\n", n, seed)
	got, sum, err := drain(c)
	out("RECV bytes=%d sha256=%s err=%s", got, sum, q(err))
}

func many(dst string, conns int, size, seed uint64) {
	cs := make([]*net.TCPConn, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", dst, 30*time.Second)
			if err != nil {
				errs[i] = fmt.Errorf("connect: %v", err)
				return
			}
			cs[i] = c.(*net.TCPConn)
			cs[i].SetDeadline(time.Now().Add(ioTimeout))
		}()
	}
	wg.Wait()
	connected := 0
	for _, c := range cs {
		if c != nil {
			connected++
		}
	}
	// All connections are open now: move the data.
	for i, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			s := seed + uint64(i)
			werr := make(chan error, 1)
			go func() {
				if _, err := fmt.Fprintf(c, "XCHG %d %d\n", size, s); err != nil {
					werr <- err
					return
				}
				_, _, err := sendStream(c, s, size, 16<<10, 0)
				if err == nil {
					err = c.CloseWrite()
				}
				werr <- err
			}()
			r := bufio.NewReader(c)
			if err := verify(io.LimitReader(r, int64(size)), s^xchgMask, size); err != nil {
				errs[i] = fmt.Errorf("receive: %v", err)
				return
			}
			verdict, err := io.ReadAll(r)
			if err != nil {
				errs[i] = fmt.Errorf("verdict: %v", err)
				return
			}
			if err := <-werr; err != nil {
				errs[i] = fmt.Errorf("send: %v", err)
				return
			}
			if v := strings.TrimSpace(string(verdict)); v != "OK" {
				errs[i] = fmt.Errorf("server: %q", v)
			}
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		if err == nil {
			ok++
		} else {
			out("FAIL conn=%d seed=%d err=%s", i, seed+uint64(i), q(err))
		}
	}
	out("MANY conns=%d connected=%d ok=%d", conns, connected, ok)
}

func hcs(dst, id string, n, seed uint64) {
	c := dial(dst)
	defer c.Close()
	if _, err := fmt.Fprintf(c, "HCS %s\nREQ hello\n", id); err != nil {
		fatal("send: %v", err)
	}
	resp, err := io.ReadAll(c) // the response, then the server's FIN
	if err != nil {
		fatal("reading the response: %v (got %q)", err, resp)
	}
	out("HCS-RESP resp=%s eof=1", strings.TrimSpace(string(resp)))
	time.Sleep(100 * time.Millisecond)
	sent, sum, err := sendStream(c, seed, n, 64<<10, 0)
	out("HCS-SENT bytes=%d sha256=%s err=%s", sent, sum, q(err))
	if err := c.CloseWrite(); err != nil {
		fatal("shutdown: %v", err)
	}
	// The server's verdict, on another connection.
	s := dial(dst)
	defer s.Close()
	fmt.Fprintf(s, "STATUS %s\n", id)
	status, err := io.ReadAll(s)
	if err != nil {
		fatal("reading the status: %v", err)
	}
	out("HCS-STATUS %s", strings.TrimSpace(string(status)))
}

func hcc(dst string, n, seed uint64) {
	c := dial(dst)
	defer c.Close()
	if _, err := fmt.Fprintf(c, "HCC %d %d\nplease\n", n, seed); err != nil {
		fatal("send: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		fatal("shutdown: %v", err)
	}
	got, sum, err := drain(c)
	out("HCC-RECV bytes=%d sha256=%s err=%s", got, sum, q(err))
}

func probe(dst string) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", dst, 5*time.Second)
	ms := time.Since(start).Milliseconds()
	switch {
	case err == nil:
		c.Close()
		out("PROBE result=connected ms=%d", ms)
	case errors.Is(err, syscall.ECONNREFUSED):
		out("PROBE result=refused ms=%d", ms)
	default:
		out("PROBE result=error ms=%d err=%s", ms, q(err))
	}
}

func hello(dst string, retry time.Duration) {
	start := time.Now()
	deadline := start.Add(retry)
	attempts := 0
	for {
		attempts++
		line, local, err := hello1(dst)
		if err == nil {
			out("%s", strings.TrimSpace(line))
			out("CLIENT local=%s attempts=%d ms=%d t=%d", local, attempts, time.Since(start).Milliseconds(), time.Now().UnixMilli())
			return
		}
		if time.Now().After(deadline) {
			fatal("hello %s: %v (%d attempts in %v)", dst, err, attempts, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// greet sends HELLO on c and reads the answer until wait passes: "reply"
// (the greeting line), "reset", "eof" (closed without a word), "timeout"
// or "error".
func greet(c net.Conn, wait time.Duration) (result, line string) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, "HELLO\n"); err != nil {
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return "reset", "" // the reset came before the request went out
		}
		return "error", q(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	var ne net.Error
	switch {
	case err == nil:
		return "reply", strings.TrimSpace(line)
	case errors.Is(err, syscall.ECONNRESET):
		return "reset", ""
	case errors.Is(err, io.EOF):
		return "eof", ""
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout", ""
	}
	return "error", q(err)
}

// dialResult classifies a connect error: a reset can come before the
// client saw its handshake complete ("reset"), anything else is a
// "connect-error".
func dialResult(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	}
	return "connect-error"
}

// await connects, greets, and says how the connection ended and when.
func await(dst string, wait time.Duration) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", dst, 10*time.Second)
	result := dialResult(err)
	if err == nil {
		defer c.Close()
		result, _ = greet(c, wait)
	}
	out("AWAIT result=%s ms=%d", result, time.Since(start).Milliseconds())
}

// hold opens conns connections one after the other, greets on each and
// keeps those answered open until the end, and counts how they went.
func hold(dst string, conns int, wait time.Duration) {
	start := time.Now()
	count := map[string]int{}
	var open []net.Conn
	for range conns {
		c, err := net.DialTimeout("tcp", dst, 10*time.Second)
		if err != nil {
			count[dialResult(err)]++
			continue
		}
		result, _ := greet(c, wait)
		count[result]++
		if result == "reply" {
			open = append(open, c)
		} else {
			c.Close()
		}
	}
	out("HOLD conns=%d reply=%d reset=%d eof=%d timeout=%d error=%d connect-error=%d ms=%d", conns,
		count["reply"], count["reset"], count["eof"], count["timeout"], count["error"], count["connect-error"],
		time.Since(start).Milliseconds())
	for _, c := range open {
		c.Close()
	}
}

func hello1(dst string) (string, string, error) {
	c, err := net.DialTimeout("tcp", dst, 5*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "HELLO\n"); err != nil {
		return "", "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("reading the greeting: %v", err)
	}
	return line, c.LocalAddr().String(), nil
}
`
