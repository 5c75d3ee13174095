package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// Clients on the host itself, reaching forwarded ports through the host's
// own addresses (192.0.2.1, 2001:db8::1): the way a Podman user tries a
// published port. The namespace has those addresses too, so the guest
// can't see such a client as it is: pasta shows it from another address
// (pasta(1), NOTES; the C pasta of 2026-10 was run side by side to learn
// which):
//
//   - the --map-guest-addr address of its version, if given (Podman gives
//     169.254.1.2 for IPv4 only);
//   - else pasta's own address on the tap: the gateway (192.0.2.254) for
//     IPv4, our link-local address (the gateway fe80::fe) for IPv6 —
//     whatever --no-map-gw and --map-host-loopback say.
//
// Loopback clients are spliced (they appear as the namespace's own
// address); with --no-splice they go through the tap, 127.0.0.1 and ::1
// from the --map-host-loopback address (by default the gateway), or
// pasta's address without one. Each case runs a TCP and a UDP server in
// the namespace and checks the address and port they see; transfers check
// the bytes both ways; and connections pasta can't deliver must be reset.

const (
	hostNsPort       = "8000"         // the namespace's TCP and UDP servers (forwarded from 8080)
	hostMapped6      = "2001:db8::99" // an IPv6 --map-guest-addr
	hostLoopbackMap4 = "192.0.2.77"   // a --map-host-loopback address
	hostXferSize     = 4 << 20        // bytes each way in the transfer cases
	hostResetMax     = time.Second    // the guest refused: the client's reset comes at once
	// hostNoAnswerMax bounds the reset of a connection whose SYN the guest
	// never answers: pasta retries for 15 s (the C pasta for 19 s).
	hostNoAnswerMax = 25 * time.Second
)

// podmanOpts are the options Podman 5 and 6 pass to pasta for a container
// published with "-p 8080:8000" and "-p 8080:8000/udp" (spec: the -t and -u
// values).
func podmanOpts(tcpSpec, udpSpec string) []string {
	return []string{"--config-net", "--no-map-gw", "--map-guest-addr", tcpMapGuestAddr, "--dns-forward", udpDNSForward4,
		"-t", tcpSpec, "-u", udpSpec, "-T", "none", "-U", "none", "--quiet"}
}

// waitLinkReady is shell code that waits, at most 5 s, until the
// namespace has no tentative address left. Until the kernel sees the tap's
// carrier (its link watch runs at most once a second) the link-local
// address stays tentative and the guest drops what is sent to it, with
// the C pasta as with ours: an inbound connection made right at start is
// answered after a retransmission, a second later.
const waitLinkReady = "for i in $(seq 100); do ip -6 addr show tentative | grep -q inet6 || break; sleep 0.05; done\n"

// nsServers starts pasta with opts around a tcptool and a udptool server
// in the namespace, both named NS, on ports (all addresses), once its
// link is ready and the shell commands of prelude (lines, which must all
// succeed) ran, and waits until both listen.
func nsServers(t *testing.T, m mode, sb *sandbox.Sandbox, opts []string, prelude string, ports ...string) *sandbox.Proc {
	t.Helper()
	tcpTool, udpTool := tcpToolProg.binary(t), udpToolProg.binary(t)
	listen := ""
	for _, p := range ports {
		listen += " -l :" + p
	}
	script := fmt.Sprintf("%s serve -name NS%s & exec %s serve -name NS%s", udpTool, listen, tcpTool, listen)
	script = "set -e\n" + waitLinkReady + prelude + script
	ctx := withTimeout(t, 5*time.Minute)
	args := append(append([]string{}, opts...), "--", "sh", "-c", script)
	t.Logf("$ pasta %s &", strings.Join(args, " "))
	p := sb.Start(t, m.pasta(t, ctx, sb, args...))
	if !waitForLines(p, "LISTENING", tcpServerReadyWait, func(l []map[string]string) bool { return len(l) == 2 }) {
		t.Fatalf("the namespace's servers did not both start\n[stdout]\n%s[stderr]\n%s", p.Stdout(), p.Stderr())
	}
	return p
}

// TestHostAddressClients: the address and port the namespace's TCP and
// UDP servers see for clients on the host (through its own addresses and
// loopback) and on the remote, for Podman's options and the port spec
// forms and translation options of pasta(1).
func TestHostAddressClients(t *testing.T) {
	remote4, remote6 := netip.MustParseAddr(sandbox.RemoteAddr4), netip.MustParseAddr(sandbox.RemoteAddr6)
	host4, host6 := netip.MustParseAddr(sandbox.HostAddr4), netip.MustParseAddr(sandbox.HostAddr6)
	gw4, gw6 := netip.MustParseAddr(sandbox.Gateway4), netip.MustParseAddr(sandbox.Gateway6)
	mapped4, mapped6 := netip.MustParseAddr(tcpMapGuestAddr), netip.MustParseAddr(hostMapped6)
	lo4Map := netip.MustParseAddr(hostLoopbackMap4)
	// client builds a case: from the host netns (or the remote) to dst:port,
	// reaching the namespace's port nsPort, seen from peer.
	client := func(name string, fromHost bool, dst, port, nsPort string, peer netip.Addr) inboundCase {
		return inboundCase{name, fromHost, dst, port, nsPort, peer}
	}
	runs := []struct {
		name    string
		opts    []string
		nsPorts []string
		clients []inboundCase
	}{
		{"podman", podmanOpts("8080-8080:8000-8000", "8080-8080:8000-8000"), []string{hostNsPort}, []inboundCase{
			client("host-ipv4", true, sandbox.HostAddr4, "8080", hostNsPort, mapped4),
			client("host-ipv6", true, sandbox.HostAddr6, "8080", hostNsPort, gw6),
			client("loopback-ipv4", true, "127.0.0.1", "8080", hostNsPort, host4),
			client("loopback-ipv6", true, "::1", "8080", hostNsPort, host6),
			client("remote-ipv4", false, sandbox.HostAddr4, "8080", hostNsPort, remote4),
			client("remote-ipv6", false, sandbox.HostAddr6, "8080", hostNsPort, remote6),
		}},
		{"podman-address-bound", append(podmanOpts(sandbox.HostAddr4+"/8080-8080:8000-8000", sandbox.HostAddr4+"/8080-8080:8000-8000"),
			"-t", sandbox.HostAddr6+"/8081-8081:8000-8000", "-u", sandbox.HostAddr6+"/8081-8081:8000-8000"), []string{hostNsPort}, []inboundCase{
			client("host-ipv4", true, sandbox.HostAddr4, "8080", hostNsPort, mapped4),
			client("host-ipv6", true, sandbox.HostAddr6, "8081", hostNsPort, gw6),
			client("remote-ipv6", false, sandbox.HostAddr6, "8081", hostNsPort, remote6),
		}},
		{"ranges-and-targets", []string{"--config-net", "-t", "8080:8000,9000-9002:7000-7002", "-u", "8080:8000,9000-9002:7000-7002"},
			[]string{hostNsPort, "7000", "7001", "7002"}, []inboundCase{
				client("host-ipv4-8080", true, sandbox.HostAddr4, "8080", hostNsPort, gw4),
				client("host-ipv4-9000", true, sandbox.HostAddr4, "9000", "7000", gw4),
				client("host-ipv4-9002", true, sandbox.HostAddr4, "9002", "7002", gw4),
				client("host-ipv6-9001", true, sandbox.HostAddr6, "9001", "7001", gw6),
			}},
		{"interface-bound", []string{"--config-net", "-t", "%" + sandbox.HostIf + "/8080:8000", "-u", "%" + sandbox.HostIf + "/8080:8000"},
			[]string{hostNsPort}, []inboundCase{
				client("host-ipv4", true, sandbox.HostAddr4, "8080", hostNsPort, gw4),
				client("host-ipv6", true, sandbox.HostAddr6, "8080", hostNsPort, gw6),
				client("remote-ipv4", false, sandbox.HostAddr4, "8080", hostNsPort, remote4),
			}},
		{"map-guest-addr-both", []string{"--config-net", "--map-guest-addr", tcpMapGuestAddr, "--map-guest-addr", hostMapped6,
			"-t", "8080:8000", "-u", "8080:8000"}, []string{hostNsPort}, []inboundCase{
			client("host-ipv4", true, sandbox.HostAddr4, "8080", hostNsPort, mapped4),
			client("host-ipv6", true, sandbox.HostAddr6, "8080", hostNsPort, mapped6),
		}},
		{"map-host-loopback-no-splice", []string{"--config-net", "--no-splice", "--map-host-loopback", hostLoopbackMap4,
			"-t", "8080:8000", "-u", "8080:8000"}, []string{hostNsPort}, []inboundCase{
			client("loopback-ipv4", true, "127.0.0.1", "8080", hostNsPort, lo4Map),
			client("loopback-ipv6", true, "::1", "8080", hostNsPort, gw6), // IPv6 keeps the default mapping
			client("host-ipv4", true, sandbox.HostAddr4, "8080", hostNsPort, gw4),
		}},
		{"no-map-gw-no-splice", []string{"--config-net", "--no-splice", "--no-map-gw", "-t", "8080:8000", "-u", "8080:8000"},
			[]string{hostNsPort}, []inboundCase{
				client("loopback-ipv4", true, "127.0.0.1", "8080", hostNsPort, gw4),
				client("loopback-ipv6", true, "::1", "8080", hostNsPort, gw6),
				client("host-ipv4", true, sandbox.HostAddr4, "8080", hostNsPort, gw4),
				client("host-ipv6", true, sandbox.HostAddr6, "8080", hostNsPort, gw6),
			}},
	}
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		tcpTool, udpTool := tcpToolProg.binary(t), udpToolProg.binary(t)
		for _, run := range runs {
			t.Run(run.name, func(t *testing.T) {
				ctx := withTimeout(t, 2*time.Minute)
				srv := nsServers(t, m, sb, run.opts, "", run.nsPorts...)
				defer srv.Kill()
				for _, tc := range run.clients {
					t.Run(tc.name, func(t *testing.T) {
						t.Run("tcp", func(t *testing.T) { tc.check(t, m, sb, ctx, tcpTool) })
						t.Run("udp", func(t *testing.T) { udpWho(t, m, sb, ctx, udpTool, tc) })
					})
				}
			})
		}
	})
}

// TestHostAddressTransfers: with Podman's options, a client on the host
// sends 4 MiB to the namespace's server through the host's own address and
// half-closes (the server must read it all, then end of file), and
// receives 4 MiB from it, sha256 checked both ways, over IPv4 and IPv6;
// UDP datagrams of 1 to 65000 bytes come back byte for byte.
func TestHostAddressTransfers(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		tcpTool, udpTool := tcpToolProg.binary(t), udpToolProg.binary(t)
		ctx := withTimeout(t, 3*time.Minute)
		srv := nsServers(t, m, sb, podmanOpts("8080-8080:8000-8000", "8080-8080:8000-8000"), "", hostNsPort)
		defer srv.Kill()
		want := map[string]netip.Addr{"ipv4": netip.MustParseAddr(tcpMapGuestAddr), "ipv6": netip.MustParseAddr(sandbox.Gateway6)}
		for i, fam := range tcpFamilies {
			dst := hostPort(fam.host, "8080")
			t.Run(fam.name+"/tcp-up", func(t *testing.T) {
				seed := uint64(100 + i)
				res := sandbox.Run(sb.Host(ctx, m.as, tcpTool, "up", "-c", dst, "-n", strconv.Itoa(hostXferSize), "-seed", fmt.Sprint(seed)))
				mustExit(t, res, 0)
				sum := streamSum(t, tcpTool, seed, hostXferSize)
				reply := toolLine(t, res.Stdout, "REPLY")
				if reply["bytes"] != strconv.Itoa(hostXferSize) || reply["sha256"] != sum {
					t.Errorf("the server got %s bytes, sha256 %s; sent %d, sha256 %s", reply["bytes"], reply["sha256"], hostXferSize, sum)
				}
				// The server's own line: it read to end of file (the FIN
				// arrived after the data) and saw the translated address.
				var up map[string]string
				if !waitForLines(srv, "UP", 5*time.Second, func(l []map[string]string) bool {
					for _, kv := range l {
						if kv["sha256"] == sum {
							up = kv
						}
					}
					return up != nil
				}) {
					t.Fatalf("the server reported no upload with sha256 %s:\n%s", sum, srv.Stdout())
				}
				if up["err"] != "" || peerAddr(t, up["peer"]) != want[fam.name] {
					t.Errorf("server: %v, want no error and the client seen as %s", up, want[fam.name])
				}
			})
			t.Run(fam.name+"/tcp-down", func(t *testing.T) {
				seed := uint64(200 + i)
				res := sandbox.Run(sb.Host(ctx, m.as, tcpTool, "down", "-c", dst, "-n", strconv.Itoa(hostXferSize), "-seed", fmt.Sprint(seed)))
				mustExit(t, res, 0)
				got := toolLine(t, res.Stdout, "RECV")
				if sum := streamSum(t, tcpTool, seed, hostXferSize); got["bytes"] != strconv.Itoa(hostXferSize) || got["sha256"] != sum || got["err"] != "" {
					t.Errorf("received %v, want %d bytes with sha256 %s and end of file", got, hostXferSize, sum)
				}
			})
			t.Run(fam.name+"/udp-echo", func(t *testing.T) {
				sizes := make([]string, len(udpEchoSizes))
				for k, n := range udpEchoSizes {
					sizes[k] = strconv.Itoa(n)
				}
				res := runClient(t, sb.Host(ctx, m.as, udpTool, "echo", "-c", dst, "-sizes", strings.Join(sizes, ",")))
				checkEcho(t, res.Stdout)
			})
		}
	})
}

// TestHostAddressUndeliverable: a connection pasta accepts on a forwarded
// port but can't deliver is reset, never left hanging with its data
// acknowledged: when nothing listens in the namespace (the guest's RST),
// when the guest never answers the SYN (a namespace that drops it), and
// when pasta has no file descriptor left to take it.
func TestHostAddressUndeliverable(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		tool := tcpToolProg.binary(t)
		t.Run("nothing-listening", func(t *testing.T) {
			ctx := withTimeout(t, time.Minute)
			p := sb.Start(t, m.pasta(t, ctx, sb, append(podmanOpts("8080-8080:8000-8000", "none"), "--", "sh", "-c", waitLinkReady+"echo READY; exec sleep 60")...))
			defer p.Kill()
			waitForLine(t, p, "READY", tcpServerReadyWait)
			for _, fam := range tcpFamilies {
				r := awaitReset(t, sb, ctx, m, tool, hostPort(fam.host, "8080"), 10*time.Second)
				if ms, _ := strconv.Atoi(r["ms"]); !closedByPasta(r) || time.Duration(ms)*time.Millisecond > hostResetMax {
					t.Errorf("%s: %v, want a reset (or close) within %v", fam.name, r, hostResetMax)
				}
			}
		})
		t.Run("no-answer", func(t *testing.T) {
			if m.as == sandbox.Root && sandbox.Reference() {
				t.Skip("NOTE (known bug of the reference binary): as root it can't run the command as uid 0 (see README), which must add routing rules")
			}
			ctx := withTimeout(t, 2*time.Minute)
			// Routing rules before the local table's: TCP to port 8000
			// arriving on the tap is dropped without a word.
			var drop strings.Builder
			for _, v := range []string{"-4", "-6"} {
				fmt.Fprintf(&drop, "ip %s rule add pref 10 iif %s ipproto tcp dport %s blackhole\n", v, sandbox.HostIf, hostNsPort)
				fmt.Fprintf(&drop, "ip %s rule del pref 0\nip %s rule add pref 100 lookup local\n", v, v)
			}
			p := nsServers(t, m, sb, podmanOpts("8080-8080:8000-8000", "none"), drop.String(), hostNsPort)
			defer p.Kill()
			results := make(chan map[string]string, len(tcpFamilies))
			for _, fam := range tcpFamilies {
				go func() {
					results <- awaitResetAsync(sb, ctx, m, tool, hostPort(fam.host, "8080"), hostNoAnswerMax+10*time.Second)
				}()
			}
			for range tcpFamilies {
				r := <-results
				if ms, _ := strconv.Atoi(r["ms"]); !closedByPasta(r) || time.Duration(ms)*time.Millisecond > hostNoAnswerMax {
					t.Errorf("%v, want a reset (or close) within %v", r, hostNoAnswerMax)
				}
				t.Logf("%v", r)
			}
			if n := len(toolLines(p.Stdout(), "ACCEPT")); n != 0 {
				t.Errorf("the server accepted %d connections through the rules that drop them", n)
			}
			if !sandbox.Reference() && !strings.Contains(p.Stderr(), "no answer from the namespace") {
				t.Errorf("no warning in pasta's log:\n%s", p.Stderr())
			}
		})
		t.Run("out-of-descriptors", func(t *testing.T) {
			if sandbox.Reference() {
				// Run by hand with a limit of 300 (it opens hundreds of
				// descriptors at start), it served 42 of 60 connections
				// and left the other 18 waiting, never answered nor reset.
				t.Skip("NOTE (known bug of the reference binary): out of descriptors, it leaves forwarded connections waiting")
			}
			// Enough descriptors for pasta to start (it needs about 20)
			// and serve some connections, then more connections than that.
			const limit, conns = 40, 40
			ctx := withTimeout(t, 3*time.Minute)
			args := append([]string{"prlimit", fmt.Sprintf("--nofile=%d:%d", limit, limit), "--", sandbox.Binary(t)}, m.extra...)
			args = append(append(args, podmanOpts("8080-8080:8000-8000", "none")...), "--", tool, "serve", "-name", "NS", "-l", ":"+hostNsPort)
			p := startServer(t, sb, sb.Host(ctx, m.as, args...))
			defer p.Kill()
			res := sandbox.Run(sb.Host(ctx, m.as, tool, "hold", "-c", hostPort(sandbox.HostAddr4, "8080"), "-conns", strconv.Itoa(conns), "-wait", "5s"))
			mustExit(t, res, 0)
			h := toolLine(t, res.Stdout, "HOLD")
			t.Logf("%d connections held open with pasta limited to %d descriptors: %v", conns, limit, h)
			reply, _ := strconv.Atoi(h["reply"])
			reset, _ := strconv.Atoi(h["reset"])
			switch {
			case reply+reset != conns:
				t.Errorf("%v: every connection must be served or reset, none left waiting", h)
			case reply == 0 || reset == 0:
				t.Errorf("%v: want some connections served and the rest reset", h)
			}
		})
	})
}

// closedByPasta tells whether a tcptool await result says that pasta
// ended the connection: ours resets it, the C pasta of 2025-05 closes it
// when the guest refuses; either way the client knows at once.
func closedByPasta(r map[string]string) bool {
	return r["result"] == "reset" || r["result"] == "eof"
}

// awaitReset connects through pasta, greets and reports how the connection
// ended (tcptool await), bounded by wait.
func awaitReset(t *testing.T, sb *sandbox.Sandbox, ctx context.Context, m mode, tool, dst string, wait time.Duration) map[string]string {
	t.Helper()
	res := sandbox.Run(sb.Host(ctx, m.as, tool, "await", "-c", dst, "-wait", wait.String()))
	mustExit(t, res, 0)
	return toolLine(t, res.Stdout, "AWAIT")
}

// awaitResetAsync is awaitReset for another goroutine: failures become the
// result.
func awaitResetAsync(sb *sandbox.Sandbox, ctx context.Context, m mode, tool, dst string, wait time.Duration) map[string]string {
	res := sandbox.Run(sb.Host(ctx, m.as, tool, "await", "-c", dst, "-wait", wait.String()))
	if l := toolLines(res.Stdout, "AWAIT"); len(l) == 1 {
		l[0]["dst"] = dst
		return l[0]
	}
	return map[string]string{"dst": dst, "result": "tool-failed", "output": res.String()}
}
