package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// End-to-end UDP through pasta: echoes of 1 to 65000 bytes both ways
// (byte-exact, IPv4 and IPv6), 200 concurrent flows, a closed port
// reported to the namespace as ECONNREFUSED, DNS through --dns-forward to
// a resolver on the host's loopback (UDP and TCP, A and AAAA), inbound
// forwarding (-u) with ranges and target ports and the sender's real
// address, and -u auto. Clients and servers are one small Go program,
// udptool (its source is udpToolSource below), built once for the test
// process like tcp_test.go's tcptool, whose output helpers (toolLine,
// waitForLine, nsServer, ...) these tests share.

const (
	udpEchoPort     = "5001" // udptool echo server in the remote netns
	udpClosedPort   = "5999" // nothing listens there
	udpInboundEcho  = "5300" // echo server in the namespace, forwarded with -u
	udpAutoPort     = "6123" // server started late inside the namespace (-u auto)
	udpManyFlows    = 200
	udpManyCount    = 5   // datagrams each way per flow
	udpManySize     = 600 // bytes per datagram
	udpRefusedMax   = time.Second
	udpAutoMax      = 3 * time.Second
	udpClientWait   = 2 * time.Second // a client waits that long for a reply before sending again
	udpClientTries  = 3
	udpDNSName      = "remote.test" // the name the test resolver answers for
	udpDNSMissing   = "missing.test"
	udpDNSForward4  = "169.254.1.1"  // --dns-forward, as Podman passes it
	udpDNSForward6  = "2001:db8::53" // --dns-forward for IPv6: in the guest's prefix, assigned to nobody
	udpEchoTimeout  = 60 * time.Second
	udpClientBudget = 30 * time.Second // one client command in a remote or host netns
)

// udpEchoSizes are the payload sizes of the echo case: one byte, the
// largest that fits a 1500-byte IPv4 packet, one that the veth pair must
// fragment, and nearly the largest datagram.
var udpEchoSizes = []int{1, 1472, 8000, 65000}

// --- udptool: building it --------------------------------------------------

// udpToolProg is the helper program of these tests.
var udpToolProg = &testTool{name: "udptool", source: udpToolSource}

// --- helpers -----------------------------------------------------------------

// startUDPRemoteServer starts a udptool server in the remote netns on port
// of the remote's own addresses, 192.0.2.2 and 2001:db8::2 (bound one by
// one, so that replies leave from the address the client sent to).
func startUDPRemoteServer(t *testing.T, sb *sandbox.Sandbox, tool, port string) *sandbox.Proc {
	t.Helper()
	ctx := withTimeout(t, 5*time.Minute)
	return startServer(t, sb, sb.Remote(ctx, sandbox.Root, tool, "serve", "-name", "REMOTE",
		"-l", hostPort(sandbox.RemoteAddr4, port), "-l", hostPort(sandbox.RemoteAddr6, port)))
}

// runClient runs a udptool client (in any netns, not under pasta) bounded
// by udpClientBudget, and returns its output; it must exit 0.
func runClient(t *testing.T, cmd *exec.Cmd) sandbox.Result {
	t.Helper()
	res := sandbox.Run(cmd)
	t.Logf("$ %s\n%s", strings.Join(cmd.Args[indexOfTool(cmd.Args):], " "), res)
	mustExit(t, res, 0)
	return res
}

// indexOfTool finds the udptool argument in a command line (after nsenter
// and setpriv).
func indexOfTool(args []string) int {
	for i, a := range args {
		if strings.HasSuffix(a, "/udptool") {
			return i
		}
	}
	return 0
}

// checkEcho asserts a udptool echo client's output: one ECHO line per
// size, in order, each verified byte for byte.
func checkEcho(t *testing.T, out string) {
	t.Helper()
	lines := toolLines(out, "ECHO")
	if len(lines) != len(udpEchoSizes) {
		t.Fatalf("%d ECHO lines, want %d:\n%s", len(lines), len(udpEchoSizes), out)
	}
	for i, l := range lines {
		if l["size"] != strconv.Itoa(udpEchoSizes[i]) {
			t.Errorf("echo %d: size %s, want %d", i, l["size"], udpEchoSizes[i])
		}
		if l["ok"] != "1" {
			t.Errorf("echo of %s bytes: no byte-exact reply after %s attempts: %s", l["size"], l["attempts"], l["err"])
		} else if l["attempts"] != "1" {
			t.Logf("NOTE: echo of %s bytes needed %s attempts (%s)", l["size"], l["attempts"], l["err"])
		}
	}
}

// bindableNsPort is port, unless the command under pasta cannot bind a
// privileged port: the reference C pasta as root runs it as uid 65534
// without capabilities (see README). Then it is alt.
func bindableNsPort(t *testing.T, m mode, sb *sandbox.Sandbox, port, alt string) string {
	t.Helper()
	if n, _ := strconv.Atoi(port); n >= 1024 || m.as != sandbox.Root || !sandbox.Reference() {
		return port
	}
	if uid, _ := m.commandIdentity(t, sb); uid != "0" {
		t.Logf("NOTE (known bug of the reference binary): as root it runs the command as uid %s without capabilities, "+
			"which cannot bind port %s: the server in the namespace uses port %s instead", uid, port, alt)
		return alt
	}
	return port
}

// --- the cases ---------------------------------------------------------------

// 1. Echoes of 1, 1472, 8000 and 65000 bytes, IPv4 and IPv6, checked byte
// for byte by the client. "outbound": the client in the namespace, the
// echo server in the remote netns. "inbound": the client in the remote
// netns, the echo server in the namespace behind -u (the datagrams cross
// the veth pair in fragments, the tap whole).
func TestUDPEcho(t *testing.T) {
	tool := udpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		startUDPRemoteServer(t, sb, tool, udpEchoPort)
		var sizeList []string
		for _, n := range udpEchoSizes {
			sizeList = append(sizeList, strconv.Itoa(n))
		}
		sizes := strings.Join(sizeList, ",")
		echoArgs := func(seed int) []string {
			return []string{"-sizes", sizes, "-seed", strconv.Itoa(seed),
				"-tries", strconv.Itoa(udpClientTries), "-wait", udpClientWait.String()}
		}
		for i, fam := range tcpFamilies {
			t.Run("outbound/"+fam.name, func(t *testing.T) {
				args := append([]string{"echo", "-c", hostPort(fam.remote, udpEchoPort)}, echoArgs(100+i)...)
				res := runInNs(t, m, sb, udpEchoTimeout, nil, tool, args...)
				checkEcho(t, res.Stdout)
			})
		}
		t.Run("inbound", func(t *testing.T) {
			srv := nsServer(t, m, sb, tool, []string{"-u", udpInboundEcho}, udpInboundEcho)
			defer srv.Kill()
			for i, fam := range tcpFamilies {
				t.Run(fam.name, func(t *testing.T) {
					ctx := withTimeout(t, udpClientBudget)
					args := append([]string{tool, "echo", "-c", hostPort(fam.host, udpInboundEcho)}, echoArgs(200+i)...)
					res := runClient(t, sb.Remote(ctx, m.as, args...))
					checkEcho(t, res.Stdout)
				})
			}
		})
	})
}

// 2. 200 flows at once: the client in the namespace opens 200 connected
// sockets before any data moves, then every socket exchanges 5 datagrams
// with the remote echo server, each reply checked. The server must have
// seen 200 distinct senders (one host socket per flow).
func TestUDPManyFlows(t *testing.T) {
	tool := udpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		startUDPRemoteServer(t, sb, tool, udpEchoPort)
		dst := hostPort(sandbox.RemoteAddr4, udpEchoPort)
		res := runInNs(t, m, sb, udpEchoTimeout, nil, tool, "many", "-c", dst,
			"-socks", strconv.Itoa(udpManyFlows), "-count", strconv.Itoa(udpManyCount), "-size", strconv.Itoa(udpManySize),
			"-seed", "1000", "-tries", strconv.Itoa(udpClientTries), "-wait", udpClientWait.String())
		sum := toolLine(t, res.Stdout, "MANY")
		want := strconv.Itoa(udpManyFlows)
		if sum["open"] != want || sum["ok"] != want {
			t.Errorf("%s of %s sockets open at once, %s completed %d verified exchanges; failures:\n%s",
				sum["open"], want, sum["ok"], udpManyCount, strings.Join(grepLines(res.Stdout, "FAIL"), "\n"))
		}
		if sum["retries"] != "0" {
			t.Logf("NOTE: %s datagrams were sent again after %v without a reply", sum["retries"], udpClientWait)
		}
		ctx := withTimeout(t, udpClientBudget)
		peers := toolLine(t, runClient(t, sb.Remote(ctx, m.as, tool, "peers", "-c", dst)).Stdout, "PEERS")
		if peers["n"] != want {
			t.Errorf("the echo server saw %s distinct senders, want %s (one per flow)", peers["n"], want)
		}
		t.Logf("%d flows x %d datagrams of %d bytes each way in %v", udpManyFlows, udpManyCount, udpManySize,
			res.Duration.Round(time.Millisecond))
	})
}

// 3. A datagram to a closed port of the remote: the remote's ICMP port
// unreachable reaches the namespace, whose connected socket gets
// ECONNREFUSED on the next receive, within a second.
func TestUDPRefused(t *testing.T) {
	tool := udpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		for _, fam := range tcpFamilies {
			t.Run(fam.name, func(t *testing.T) {
				dst := hostPort(fam.remote, udpClosedPort)
				res := runInNs(t, m, sb, pastaTimeout, nil, tool, "refused", "-c", dst, "-wait", "3s")
				r := toolLine(t, res.Stdout, "REFUSED")
				if r["result"] != "refused" {
					t.Fatalf("datagram to %s: %v, want ECONNREFUSED on the next recv", dst, r)
				}
				ms, _ := strconv.Atoi(r["ms"])
				if d := time.Duration(ms) * time.Millisecond; d >= udpRefusedMax {
					t.Errorf("ECONNREFUSED after %v, want < %v", d, udpRefusedMax)
				}
				t.Logf("refused after %s ms", r["ms"])
			})
		}
	})
}

// 4. --dns-forward: DNS sent to the forward address (169.254.1.1, or
// 2001:db8::53, which nobody has) goes to --dns-host, here a resolver the
// test runs on the host netns's loopback (127.0.0.1:53 and [::1]:53, UDP
// and TCP) that knows remote.test. The namespace asks for A and AAAA over
// UDP and TCP and for a name the resolver doesn't know (NXDOMAIN), and
// the answers must come from the forward address (the client's sockets
// are connected to it).
func TestUDPDNSForward(t *testing.T) {
	tool := udpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ctx := withTimeout(t, 5*time.Minute)
		srv := startServer(t, sb, sb.Host(ctx, sandbox.Root, tool, "dnsserve", "-name", udpDNSName,
			"-a", sandbox.RemoteAddr4, "-a", sandbox.RemoteAddr6, "-l", "127.0.0.1:53", "-l", "[::1]:53"))
		for _, tc := range []struct {
			name, forward, host string
		}{
			{"ipv4", udpDNSForward4, "127.0.0.1"},
			{"ipv6", udpDNSForward6, "::1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(toolLines(srv.Stdout(), "QUERY"))
				res := runInNs(t, m, sb, pastaTimeout, []string{"--dns-forward", tc.forward, "--dns-host", tc.host}, tool,
					"dns", "-s", hostPort(tc.forward, "53"), "-name", udpDNSName, "-missing", udpDNSMissing)
				got := map[string]map[string]string{}
				for _, l := range toolLines(res.Stdout, "DNS") {
					got[l["proto"]+"/"+l["name"]+"/"+l["type"]] = l
				}
				for _, proto := range []string{"udp", "tcp"} {
					for _, want := range []struct{ typ, rcode, addrs string }{
						{"A", "0", sandbox.RemoteAddr4},
						{"AAAA", "0", sandbox.RemoteAddr6},
					} {
						k := proto + "/" + udpDNSName + "/" + want.typ
						l := got[k]
						if l == nil || l["rcode"] != want.rcode || l["addrs"] != want.addrs {
							t.Errorf("%s %s %s over %s: %v, want rcode %s with %s", tc.forward, udpDNSName, want.typ, proto,
								l, want.rcode, want.addrs)
						}
					}
					k := proto + "/" + udpDNSMissing + "/A"
					if l := got[k]; l == nil || l["rcode"] != "3" {
						t.Errorf("%s %s A over %s: %v, want NXDOMAIN (rcode 3)", tc.forward, udpDNSMissing, proto, got[k])
					}
				}
				// The resolver got the queries, over both protocols, from
				// the host's loopback.
				var qs []map[string]string
				if !waitForLines(srv, "QUERY", 2*time.Second, func(l []map[string]string) bool {
					qs = l[before:]
					return len(qs) >= 6
				}) {
					t.Errorf("the resolver logged %d queries, want 6:\n%s", len(qs), srv.Stdout())
				}
				protos := map[string]int{}
				for _, q := range qs {
					protos[q["proto"]]++
					if p := peerAddr(t, q["peer"]); p != netip.MustParseAddr(tc.host) {
						t.Errorf("the resolver got a query from %s, want from %s", q["peer"], tc.host)
					}
				}
				if protos["udp"] < 3 || protos["tcp"] < 3 {
					t.Errorf("the resolver got %d queries over UDP and %d over TCP, want 3 each", protos["udp"], protos["tcp"])
				}
			})
		}
	})
}

// 5. Inbound forwarding: -u 5353:53,6000-6001:7000-7001. Senders in the
// remote netns reach the server in the namespace through the host's
// address, on the forwarded ports and at the target ports, and the server
// sees their real address. Port 7001 of the host is not forwarded. A
// sender on the host's loopback takes the spliced path and appears as the
// namespace's own address (its loopback can't cross the tap); one on the
// host's own address, and with --no-splice one on the loopback too, goes
// through the tap and appears as the gateway. The C pasta does the same.
func TestUDPInboundForward(t *testing.T) {
	tool := udpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ctx := withTimeout(t, 2*time.Minute)
		p53 := bindableNsPort(t, m, sb, "53", "5300")
		remote4, remote6 := netip.MustParseAddr(sandbox.RemoteAddr4), netip.MustParseAddr(sandbox.RemoteAddr6)
		host4, host6 := netip.MustParseAddr(sandbox.HostAddr4), netip.MustParseAddr(sandbox.HostAddr6)
		gw4 := netip.MustParseAddr(sandbox.Gateway4)
		for _, run := range []struct {
			name  string
			opts  []string
			cases []inboundCase
		}{
			{"splice", nil, []inboundCase{
				{"remote-ipv4-5353", false, sandbox.HostAddr4, "5353", p53, remote4},
				{"remote-ipv4-6000", false, sandbox.HostAddr4, "6000", "7000", remote4},
				{"remote-ipv4-6001", false, sandbox.HostAddr4, "6001", "7001", remote4},
				{"remote-ipv6-5353", false, sandbox.HostAddr6, "5353", p53, remote6},
				{"remote-ipv6-6001", false, sandbox.HostAddr6, "6001", "7001", remote6},
				{"loopback-ipv4-5353", true, "127.0.0.1", "5353", p53, host4},
				{"loopback-ipv4-6001", true, "127.0.0.1", "6001", "7001", host4},
				{"loopback-ipv6-5353", true, "::1", "5353", p53, host6},
				{"hostaddr-ipv4-5353", true, sandbox.HostAddr4, "5353", p53, gw4},
			}},
			{"no-splice", []string{"--no-splice"}, []inboundCase{
				{"remote-ipv4-6001", false, sandbox.HostAddr4, "6001", "7001", remote4},
				{"loopback-ipv4-5353", true, "127.0.0.1", "5353", p53, gw4},
				{"loopback-ipv4-6001", true, "127.0.0.1", "6001", "7001", gw4},
			}},
		} {
			t.Run(run.name, func(t *testing.T) {
				opts := append([]string{"-u", "5353:" + p53 + ",6000-6001:7000-7001"}, run.opts...)
				srv := nsServer(t, m, sb, tool, opts, p53, "7000", "7001")
				defer srv.Kill()
				for _, tc := range run.cases {
					t.Run(tc.name, func(t *testing.T) { udpWho(t, m, sb, ctx, tool, tc) })
				}
				t.Run("not-forwarded-7001", func(t *testing.T) {
					dst := hostPort(sandbox.HostAddr4, "7001")
					res := runClient(t, sb.Remote(ctx, m.as, tool, "refused", "-c", dst, "-wait", "2s"))
					// No answer: ECONNREFUSED, or silence if the host
					// rate-limits its ICMP errors.
					switch r := toolLine(t, res.Stdout, "REFUSED"); r["result"] {
					case "refused":
					case "timeout":
						t.Logf("no ICMP port unreachable from the host (rate-limited?), and no answer")
					default:
						t.Errorf("datagram to the host's port 7001 (only a target port): %v, want refused", r)
					}
				})
				// Every client was seen by the namespace's server, no
				// datagram by another one. Its SEEN lines may reach us
				// after the answers did: wait for them, boundedly.
				waitForLines(srv, "SEEN", 5*time.Second, func(l []map[string]string) bool { return len(l) >= len(run.cases) })
				if n := len(toolLines(srv.Stdout(), "SEEN")); n < len(run.cases) {
					t.Errorf("the server in the namespace answered %d requests, want at least %d:\n%s", n, len(run.cases), srv.Stdout())
				}
			})
		}
	})
}

// udpWho sends "who are you" datagrams from tc's client (in the remote or
// the host netns) to tc.dst:tc.port until the server in the namespace
// answers with the port it got the datagram on and the sender's address
// as it saw it.
func udpWho(t *testing.T, m mode, sb *sandbox.Sandbox, ctx context.Context, tool string, tc inboundCase) {
	t.Helper()
	where := sb.Remote
	if tc.fromHost {
		where = sb.Host
	}
	dst := hostPort(tc.dst, tc.port)
	res := runClient(t, where(ctx, m.as, tool, "who", "-c", dst, "-retry", "3s"))
	g, c := toolLine(t, res.Stdout, "WHO"), toolLine(t, res.Stdout, "CLIENT")
	if g["name"] != "NS" {
		t.Fatalf("%s answered by %q, want the server in the namespace", dst, g["name"])
	}
	if g["port"] != tc.nsPort {
		t.Errorf("%s reached the namespace's server on port %s, want %s", dst, g["port"], tc.nsPort)
	}
	if got := peerAddr(t, g["peer"]); got != tc.peer {
		t.Errorf("datagram to %s from %s: the server in the namespace sees the sender as %s, want %s",
			dst, c["local"], g["peer"], tc.peer)
	}
	// A remote sender keeps its port too: replies must find it.
	if seen, err := netip.ParseAddrPort(g["peer"]); !tc.fromHost && (err != nil || strconv.Itoa(int(seen.Port())) != portOf(c["local"])) {
		t.Errorf("datagram to %s from %s: the server in the namespace sees port %s", dst, c["local"], g["peer"])
	}
	t.Logf("%s: client %s, namespace sees %s on port %s (%s attempts)", dst, c["local"], g["peer"], g["port"], c["attempts"])
}

// portOf is the port of an "addr:port" string ("" if it has none).
func portOf(s string) string {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ""
	}
	return strconv.Itoa(int(ap.Port()))
}

// 6. -u auto (also the default without -u): a UDP server bound in the
// namespace after pasta started is reachable from the remote through the
// host's address within udpAutoMax (pasta rescans once a second), and sees
// the sender's real address. (The host's ICMP port unreachable may be
// rate-limited after the previous subtest's clients: silence counts as
// closed; clients ask every 50 ms after a refusal or 300 ms of silence.)
func TestUDPAutoForward(t *testing.T) {
	tool := udpToolProg.binary(t)
	checkAutoForward(t, autoForwardCase{
		tool: tool, port: udpAutoPort, option: "-u", max: udpAutoMax,
		probe:  func(dst string) []string { return []string{tool, "refused", "-c", dst, "-wait", "500ms"} },
		probed: "REFUSED", closed: []string{"refused", "timeout"},
		client: func(dst string) []string { return []string{tool, "who", "-retry", "10s", "-wait", "300ms", "-c", dst} },
		answer: "WHO",
	})
}

// 7. UDP segmentation offload, both ways: the client in the namespace
// sends 40 datagrams (39 of 1400 bytes, one of 700) with one UDP_SEGMENT
// send, which the namespace's kernel hands the tap as a UDP super-frame;
// the remote echo server receives 40 datagrams and sends them back in a
// burst, which pasta may pass on as super-frames. Every datagram must come
// back byte-exact, in 5 rounds, over IPv4 and IPv6. With --debug, pasta
// counts the super-frames it took and sent: both must be there.
func TestUDPSegmentationOffload(t *testing.T) {
	tool := udpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		startUDPRemoteServer(t, sb, tool, udpEchoPort)
		for i, fam := range tcpFamilies {
			t.Run(fam.name, func(t *testing.T) {
				res := runInNs(t, m, sb, udpEchoTimeout, []string{"--debug"}, tool, "gso", "-c", hostPort(fam.remote, udpEchoPort),
					"-count", "40", "-size", "1400", "-rounds", "5", "-seed", strconv.Itoa(3000+1000*i), "-wait", udpClientWait.String())
				rounds := toolLines(res.Stdout, "GSO")
				if len(rounds) != 5 {
					t.Fatalf("%d GSO lines, want 5", len(rounds))
				}
				for _, r := range rounds {
					if r["ok"] != "1" {
						t.Errorf("round %s: %s of %s datagrams echoed, %s unexpected ones: %s", r["round"], r["got"], r["count"], r["bad"], r["err"])
					}
				}
				if sandbox.Reference() {
					return
				}
				var in, out int
				if _, err := fmt.Sscanf(grepAfter(res.Stderr, "UDP super-frames: "), "%d in, %d out", &in, &out); err != nil {
					t.Fatalf("no super-frame counters in pasta's debug output: %v", err)
				}
				if in < 5 || out == 0 {
					t.Errorf("pasta took %d UDP super-frames from the namespace (want 5 or more) and sent it %d (want some)", in, out)
				}
			})
		}
	})
}

// grepAfter returns what follows the first occurrence of marker in text.
func grepAfter(text, marker string) string {
	if _, after, ok := strings.Cut(text, marker); ok {
		return after
	}
	return ""
}

// --- udptool's source --------------------------------------------------------

// udpToolSource is a client and server for these tests. Every line it
// prints on stdout is "WORD key=value ...".
//
//	serve -name N -l ADDR...   echo every datagram back to its sender, except
//	                           "\x00WHO" (answer "WHO name= port= peer=", the
//	                           port it came in on and the sender as seen) and
//	                           "\x00PEERS" (answer "PEERS n=", the distinct
//	                           senders of echoed datagrams)
//	echo -c DST -sizes A,B     one datagram of each size, the reply checked
//	many -c DST -socks N       N connected sockets at once, -count datagrams each
//	refused -c DST             one datagram, then: ECONNREFUSED, a reply, or silence
//	who -c DST -retry D        ask "\x00WHO" until answered
//	peers -c DST               ask "\x00PEERS"
//	dnsserve -name N -a ADDR -l ADDR...   a DNS server on UDP and TCP: A and
//	                           AAAA records of N, NXDOMAIN for other names
//	dns -s DST -name N -missing M   A and AAAA of N, A of M, over UDP and TCP
//	gso -c DST -count N -size S -rounds R   R times: N datagrams (the last one
//	                           S/2 bytes, the others S) in one UDP_SEGMENT send,
//	                           every echo checked
const udpToolSource = `// udptool: client and server for gopasta's end-to-end UDP tests.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	ctlWho   = "\x00WHO"
	ctlPeers = "\x00PEERS"
	maxDgram = 70000
)

var outMu sync.Mutex

func out(format string, a ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", a...)
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "udptool: "+format+"\n", a...)
	os.Exit(2)
}

func q(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// payload is n deterministic pseudo-random bytes (splitmix64) for seed.
func payload(seed uint64, n int) []byte {
	b := make([]byte, n+8)
	s := seed
	for i := 0; i < n; i += 8 {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(b[i:], z^(z>>31))
	}
	return b[:n]
}

// describe says how got differs from want.
func describe(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("length_%d_want_%d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("byte_%d_is_%#x_want_%#x", i, got[i], want[i])
		}
	}
	return "equal"
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	if len(os.Args) < 2 {
		fatal("usage: udptool serve|echo|many|refused|who|peers|dnsserve|dns ...")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	var listen, servers, addrs multi
	fs.Var(&listen, "l", "listen address (repeatable)")
	fs.Var(&servers, "s", "DNS server (repeatable)")
	fs.Var(&addrs, "a", "address the DNS server answers with (repeatable)")
	name := fs.String("name", "server", "server name; the DNS name")
	missing := fs.String("missing", "missing.test", "a name the DNS server doesn't know")
	dst := fs.String("c", "", "address to send to")
	sizes := fs.String("sizes", "1", "payload sizes")
	seed := fs.Uint64("seed", 1, "payload seed")
	socks := fs.Int("socks", 1, "sockets")
	count := fs.Int("count", 1, "datagrams per socket")
	size := fs.Int("size", 100, "bytes per datagram")
	tries := fs.Int("tries", 3, "attempts per datagram")
	wait := fs.Duration("wait", 2*time.Second, "time to wait for a reply")
	retry := fs.Duration("retry", 0, "keep trying that long")
	rounds := fs.Int("rounds", 1, "rounds")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "serve":
		serve(*name, listen)
	case "echo":
		var ns []int
		for _, f := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				fatal("bad size %q", f)
			}
			ns = append(ns, n)
		}
		echo(*dst, ns, *seed, *tries, *wait)
	case "many":
		many(*dst, *socks, *count, *size, *seed, *tries, *wait)
	case "refused":
		refused(*dst, *wait)
	case "who":
		who(*dst, *retry, *wait)
	case "peers":
		peers(*dst)
	case "dnsserve":
		dnsServe(*name, addrs, listen)
	case "dns":
		for _, s := range servers {
			dnsClient(s, *name, *missing)
		}
	case "gso":
		gso(*dst, *count, *size, *rounds, *seed, *wait)
	default:
		fatal("unknown command %q", os.Args[1])
	}
}

// --- echo server ---

var peerSet = struct {
	sync.Mutex
	m map[netip.AddrPort]bool
}{m: map[netip.AddrPort]bool{}}

func serve(name string, addrs []string) {
	var conns []*net.UDPConn
	for _, a := range addrs {
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			fatal("%s: %v", a, err)
		}
		c, err := net.ListenUDP("udp", ua)
		if err != nil {
			fatal("listen %s: %v", a, err)
		}
		c.SetReadBuffer(4 << 20)
		c.SetWriteBuffer(4 << 20)
		conns = append(conns, c)
	}
	out("LISTENING name=%s addrs=%s t=%d", name, strings.Join(addrs, ","), time.Now().UnixMilli())
	for _, c := range conns {
		go serveLoop(name, c)
	}
	select {}
}

func serveLoop(name string, c *net.UDPConn) {
	port := c.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, maxDgram)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			fatal("read: %v", err)
		}
		msg := buf[:n]
		var reply []byte
		switch string(msg) {
		case ctlWho:
			out("SEEN name=%s port=%d peer=%s", name, port, from)
			reply = []byte(fmt.Sprintf("WHO name=%s port=%d peer=%s", name, port, from))
		case ctlPeers:
			peerSet.Lock()
			reply = []byte(fmt.Sprintf("PEERS n=%d", len(peerSet.m)))
			peerSet.Unlock()
		default:
			peerSet.Lock()
			peerSet.m[from] = true
			peerSet.Unlock()
			reply = msg
		}
		if _, err := c.WriteToUDPAddrPort(reply, from); err != nil {
			out("ERROR port=%d peer=%s bytes=%d err=%s", port, from, len(reply), q(err))
		}
	}
}

// --- clients ---

func dial(dst string) *net.UDPConn {
	ua, err := net.ResolveUDPAddr("udp", dst)
	if err != nil {
		fatal("%s: %v", dst, err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		fatal("connect %s: %v", dst, err)
	}
	c.SetReadBuffer(1 << 20)
	c.SetWriteBuffer(1 << 20)
	return c
}

// exchange sends msg on c and waits for a reply equal to it, sending
// again after wait without one, at most tries times. Replies equal to one
// of stale (earlier messages) are skipped; any other reply is an error.
func exchange(c *net.UDPConn, msg []byte, stale [][]byte, tries int, wait time.Duration, buf []byte) (attempts int, err error) {
	for attempts < tries {
		attempts++
		n, werr := c.Write(msg)
		if werr != nil {
			err = fmt.Errorf("send: %v", werr)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if n != len(msg) {
			return attempts, fmt.Errorf("sent %d bytes of %d", n, len(msg))
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			m, rerr := c.Read(buf)
			if rerr != nil {
				err = rerr
				var ne net.Error
				if !errors.As(rerr, &ne) || !ne.Timeout() {
					time.Sleep(100 * time.Millisecond) // e.g. ECONNREFUSED: don't spend the tries at once
				}
				break
			}
			if bytes.Equal(buf[:m], msg) {
				return attempts, nil
			}
			old := false
			for _, s := range stale {
				old = old || bytes.Equal(buf[:m], s)
			}
			if !old {
				return attempts, fmt.Errorf("bad reply: %s", describe(buf[:m], msg))
			}
		}
	}
	return attempts, err
}

func echo(dst string, sizes []int, seed uint64, tries int, wait time.Duration) {
	c := dial(dst)
	defer c.Close()
	buf := make([]byte, maxDgram)
	var sent [][]byte
	for i, size := range sizes {
		msg := payload(seed+uint64(i), size)
		start := time.Now()
		attempts, err := exchange(c, msg, sent, tries, wait, buf)
		ok := 0
		if err == nil {
			ok = 1
		}
		out("ECHO size=%d ok=%d attempts=%d ms=%d err=%s", size, ok, attempts, time.Since(start).Milliseconds(), q(err))
		sent = append(sent, msg)
	}
}

// gsoCmsg is a UDP_SEGMENT control message (udp(7)) for segments of size
// bytes: a 64-bit cmsghdr (len, level SOL_UDP, type UDP_SEGMENT), the value.
func gsoCmsg(size int) []byte {
	b := make([]byte, syscall.CmsgSpace(2))
	binary.NativeEndian.PutUint64(b[0:], uint64(syscall.CmsgLen(2)))
	binary.NativeEndian.PutUint32(b[8:], 17)
	binary.NativeEndian.PutUint32(b[12:], 103)
	binary.NativeEndian.PutUint16(b[16:], uint16(size))
	return b
}

func gso(dst string, count, size, rounds int, seed uint64, wait time.Duration) {
	c := dial(dst)
	defer c.Close()
	buf := make([]byte, maxDgram)
	for r := 0; r < rounds; r++ {
		want := map[string]bool{}
		var all []byte
		for i := 0; i < count; i++ {
			n := size
			if i == count-1 {
				n = size / 2
			}
			p := payload(seed+uint64(r*count+i), n)
			want[string(p)] = true
			all = append(all, p...)
		}
		got, bad := 0, 0
		_, _, err := c.WriteMsgUDP(all, gsoCmsg(size), nil)
		c.SetReadDeadline(time.Now().Add(wait))
		for err == nil && got < count {
			n, rerr := c.Read(buf)
			if rerr != nil {
				err = rerr
				break
			}
			if want[string(buf[:n])] {
				delete(want, string(buf[:n]))
				got++
			} else {
				bad++
			}
		}
		ok := 0
		if got == count && bad == 0 {
			ok = 1
		}
		out("GSO round=%d count=%d got=%d bad=%d ok=%d err=%s", r, count, got, bad, ok, q(err))
	}
}

func many(dst string, socks, count, size int, seed uint64, tries int, wait time.Duration) {
	cs := make([]*net.UDPConn, socks)
	for i := range cs {
		ua, err := net.ResolveUDPAddr("udp", dst)
		if err != nil {
			fatal("%s: %v", dst, err)
		}
		c, err := net.DialUDP("udp", nil, ua)
		if err != nil {
			out("FAIL sock=%d err=open:%s", i, q(err))
			continue
		}
		cs[i] = c
	}
	open := 0
	for _, c := range cs {
		if c != nil {
			open++
		}
	}
	errs := make([]error, socks)
	retries := make([]int, socks)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i, c := range cs {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			<-gate
			buf := make([]byte, maxDgram)
			var sent [][]byte
			for k := 0; k < count; k++ {
				msg := payload(seed+uint64(i*count+k), size)
				binary.BigEndian.PutUint32(msg, uint32(i))
				binary.BigEndian.PutUint32(msg[4:], uint32(k))
				attempts, err := exchange(c, msg, sent, tries, wait, buf)
				retries[i] += attempts - 1
				if err != nil {
					errs[i] = fmt.Errorf("datagram %d: %v", k, err)
					return
				}
				sent = append(sent, msg)
			}
		}()
	}
	close(gate) // every socket is open: all start at once
	wg.Wait()
	ok, re := 0, 0
	for i, c := range cs {
		re += retries[i]
		switch {
		case c == nil:
		case errs[i] != nil:
			out("FAIL sock=%d err=%s", i, q(errs[i]))
		default:
			ok++
		}
	}
	out("MANY socks=%d open=%d ok=%d retries=%d", socks, open, ok, re)
}

func refused(dst string, wait time.Duration) {
	c := dial(dst)
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("anybody there?")); err != nil {
		out("REFUSED result=send-error ms=%d err=%s", time.Since(start).Milliseconds(), q(err))
		return
	}
	c.SetReadDeadline(start.Add(wait))
	buf := make([]byte, maxDgram)
	_, err := c.Read(buf)
	ms := time.Since(start).Milliseconds()
	var ne net.Error
	switch {
	case err == nil:
		out("REFUSED result=reply ms=%d", ms)
	case errors.Is(err, syscall.ECONNREFUSED):
		out("REFUSED result=refused ms=%d", ms)
	case errors.As(err, &ne) && ne.Timeout():
		out("REFUSED result=timeout ms=%d", ms)
	default:
		out("REFUSED result=error ms=%d err=%s", ms, q(err))
	}
}

func who(dst string, retry, wait time.Duration) {
	c := dial(dst)
	defer c.Close()
	start := time.Now()
	deadline := start.Add(retry)
	buf := make([]byte, maxDgram)
	attempts := 0
	for {
		attempts++
		_, err := c.Write([]byte(ctlWho))
		if err == nil {
			c.SetReadDeadline(time.Now().Add(wait))
			var n int
			n, err = c.Read(buf)
			if err == nil && strings.HasPrefix(string(buf[:n]), "WHO ") {
				out("%s", buf[:n])
				out("CLIENT local=%s attempts=%d ms=%d t=%d", c.LocalAddr(), attempts, time.Since(start).Milliseconds(), time.Now().UnixMilli())
				return
			}
			if err == nil {
				err = fmt.Errorf("unexpected reply %q", buf[:n])
			}
		}
		if time.Now().After(deadline) {
			fatal("who %s: %v (%d attempts in %v)", dst, err, attempts, time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func peers(dst string) {
	c := dial(dst)
	defer c.Close()
	buf := make([]byte, maxDgram)
	for range 3 {
		c.Write([]byte(ctlPeers))
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(buf)
		if err == nil && strings.HasPrefix(string(buf[:n]), "PEERS ") {
			out("%s", buf[:n])
			return
		}
	}
	fatal("no answer from %s", dst)
}

// --- DNS ---

const (
	typeA    = 1
	typeAAAA = 28
)

var typeNames = map[uint16]string{typeA: "A", typeAAAA: "AAAA"}

// readName reads a (possibly compressed) name at off; it returns the name
// and the offset after it in the message.
func readName(msg []byte, off int) (string, int, error) {
	var labels []string
	end := -1
	for hops := 0; hops < 64; hops++ {
		if off >= len(msg) {
			return "", 0, errors.New("name past the end")
		}
		l := int(msg[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			return strings.Join(labels, "."), end, nil
		case l&0xc0 == 0xc0:
			if off+1 >= len(msg) {
				return "", 0, errors.New("pointer past the end")
			}
			if end < 0 {
				end = off + 2
			}
			off = int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
		default:
			if off+1+l > len(msg) {
				return "", 0, errors.New("label past the end")
			}
			labels = append(labels, strings.ToLower(string(msg[off+1:off+1+l])))
			off += 1 + l
		}
	}
	return "", 0, errors.New("compression loop")
}

func appendName(b []byte, name string) []byte {
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func query(id uint16, name string, qtype uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	b = appendName(b, name)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1)
}

// answer builds the response to a query, or nil if it isn't one.
func answer(msg []byte, name string, addrs []netip.Addr) (resp []byte, qname string, qtype uint16) {
	if len(msg) < 12 || msg[2]&0x80 != 0 || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return nil, "", 0
	}
	qname, off, err := readName(msg, 12)
	if err != nil || off+4 > len(msg) {
		return nil, "", 0
	}
	qtype = binary.BigEndian.Uint16(msg[off:])
	question := msg[12 : off+4]
	var rrs [][]byte
	rcode := byte(0)
	if qname != name {
		rcode = 3
	} else {
		for _, a := range addrs {
			var t uint16 = typeA
			if a.Is6() {
				t = typeAAAA
			}
			if t != qtype {
				continue
			}
			rr := []byte{0xc0, 12}
			rr = binary.BigEndian.AppendUint16(rr, t)
			rr = append(rr, 0, 1, 0, 0, 0, 60) // IN, TTL 60
			rr = binary.BigEndian.AppendUint16(rr, uint16(a.BitLen()/8))
			rr = append(rr, a.AsSlice()...)
			rrs = append(rrs, rr)
		}
	}
	resp = append([]byte{}, msg[:2]...)
	resp = append(resp, 0x84|msg[2]&0x01, 0x80|rcode) // QR, AA, RD as asked; RA
	resp = append(resp, 0, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(rrs)))
	resp = append(resp, 0, 0, 0, 0)
	resp = append(resp, question...)
	for _, rr := range rrs {
		resp = append(resp, rr...)
	}
	return resp, qname, qtype
}

func dnsServe(name string, addrList, listen []string) {
	var addrs []netip.Addr
	for _, a := range addrList {
		addrs = append(addrs, netip.MustParseAddr(a))
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	var ucs []*net.UDPConn
	var lns []net.Listener
	for _, l := range listen {
		ua, err := net.ResolveUDPAddr("udp", l)
		if err != nil {
			fatal("%s: %v", l, err)
		}
		uc, err := net.ListenUDP("udp", ua)
		if err != nil {
			fatal("listen udp %s: %v", l, err)
		}
		ln, err := net.Listen("tcp", l)
		if err != nil {
			fatal("listen tcp %s: %v", l, err)
		}
		ucs = append(ucs, uc)
		lns = append(lns, ln)
	}
	out("LISTENING name=%s addrs=%s t=%d", name, strings.Join(listen, ","), time.Now().UnixMilli())
	for _, uc := range ucs {
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := uc.ReadFromUDPAddrPort(buf)
				if err != nil {
					fatal("read: %v", err)
				}
				resp, qname, qtype := answer(buf[:n], name, addrs)
				if resp == nil {
					out("ERROR proto=udp peer=%s err=not_a_query", from)
					continue
				}
				out("QUERY proto=udp peer=%s name=%s type=%d", from, qname, qtype)
				uc.WriteToUDPAddrPort(resp, from)
			}
		}()
	}
	for _, ln := range lns {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					fatal("accept: %v", err)
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(30 * time.Second))
					for {
						var l [2]byte
						if _, err := io.ReadFull(c, l[:]); err != nil {
							return
						}
						msg := make([]byte, binary.BigEndian.Uint16(l[:]))
						if _, err := io.ReadFull(c, msg); err != nil {
							out("ERROR proto=tcp peer=%s err=%s", c.RemoteAddr(), q(err))
							return
						}
						resp, qname, qtype := answer(msg, name, addrs)
						if resp == nil {
							out("ERROR proto=tcp peer=%s err=not_a_query", c.RemoteAddr())
							return
						}
						out("QUERY proto=tcp peer=%s name=%s type=%d", c.RemoteAddr(), qname, qtype)
						c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...))
					}
				}()
			}
		}()
	}
	select {}
}

// parseResponse checks a response to query id for name and qtype, and
// returns its rcode and the addresses of its answers of that type.
func parseResponse(msg []byte, id uint16, name string, qtype uint16) (int, []string, error) {
	if len(msg) < 12 {
		return 0, nil, fmt.Errorf("short response (%d bytes)", len(msg))
	}
	if binary.BigEndian.Uint16(msg) != id {
		return 0, nil, fmt.Errorf("id %d, want %d", binary.BigEndian.Uint16(msg), id)
	}
	if msg[2]&0x80 == 0 {
		return 0, nil, errors.New("not a response")
	}
	rcode := int(msg[3] & 0x0f)
	qd, an := binary.BigEndian.Uint16(msg[4:]), binary.BigEndian.Uint16(msg[6:])
	off := 12
	for i := 0; i < int(qd); i++ {
		qn, o, err := readName(msg, off)
		if err != nil || o+4 > len(msg) {
			return 0, nil, fmt.Errorf("bad question: %v", err)
		}
		if qn != name || binary.BigEndian.Uint16(msg[o:]) != qtype {
			return 0, nil, fmt.Errorf("question %s type %d, want %s type %d", qn, binary.BigEndian.Uint16(msg[o:]), name, qtype)
		}
		off = o + 4
	}
	var addrs []string
	for i := 0; i < int(an); i++ {
		_, o, err := readName(msg, off)
		if err != nil || o+10 > len(msg) {
			return 0, nil, fmt.Errorf("bad answer %d: %v", i, err)
		}
		t := binary.BigEndian.Uint16(msg[o:])
		rdlen := int(binary.BigEndian.Uint16(msg[o+8:]))
		rdata := msg[o+10:]
		if len(rdata) < rdlen {
			return 0, nil, fmt.Errorf("answer %d past the end", i)
		}
		rdata = rdata[:rdlen]
		if t == qtype && (t == typeA && rdlen == 4 || t == typeAAAA && rdlen == 16) {
			a, _ := netip.AddrFromSlice(rdata)
			addrs = append(addrs, a.String())
		}
		off = o + 10 + rdlen
	}
	return rcode, addrs, nil
}

func dnsUDP(server string, msg []byte) ([]byte, error) {
	c := dial(server)
	defer c.Close()
	buf := make([]byte, 65536)
	var err error
	for range 3 {
		if _, err = c.Write(msg); err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var n int
		n, err = c.Read(buf)
		if err == nil {
			return buf[:n], nil
		}
	}
	return nil, err
}

func dnsTCP(server string, msg []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", server, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err = io.ReadFull(c, resp)
	return resp, err
}

func dnsClient(server, name, missing string) {
	for _, proto := range []string{"udp", "tcp"} {
		for _, qq := range []struct {
			name  string
			qtype uint16
		}{{name, typeA}, {name, typeAAAA}, {missing, typeA}} {
			id := uint16(rand.Uint32())
			msg := query(id, qq.name, qq.qtype)
			start := time.Now()
			var resp []byte
			var err error
			if proto == "udp" {
				resp, err = dnsUDP(server, msg)
			} else {
				resp, err = dnsTCP(server, msg)
			}
			rcode, addrs := -1, []string(nil)
			if err == nil {
				rcode, addrs, err = parseResponse(resp, id, qq.name, qq.qtype)
			}
			out("DNS server=%s proto=%s name=%s type=%s rcode=%d addrs=%s ms=%d err=%s", server, proto, qq.name,
				typeNames[qq.qtype], rcode, strings.Join(addrs, ","), time.Since(start).Milliseconds(), q(err))
		}
	}
}
`
