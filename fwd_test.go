package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// Address translation of forwarded connections and datagrams from host
// peers (fwd.go, inboundSource), and what a host client learns when its
// connection can't be delivered.

// TestInboundSourceTable checks the source address the guest sees for each
// kind of host peer, under the options that change it. The expectations
// are what the C pasta of 2026-10 does (observed side by side, see
// docs/podman.md), with the harness's guest (10.0.2.15, 2001:db8:1::15,
// gateways 10.0.2.2 and fe80::1).
func TestInboundSourceTable(t *testing.T) {
	a := netip.MustParseAddr
	var (
		lo4, lo4b, lo6       = a("127.0.0.1"), a("127.0.0.2"), a("::1")
		remote4, remote6     = a("192.0.2.2"), a("2001:db8::2")
		remoteLL             = a("fe80::99")
		mapped4, mapped6     = a("169.254.1.2"), a("2001:db8::99")
		hostLoop4, hostLoop6 = a("10.0.2.77"), a("2001:db8:1::77")
		noSource             = netip.Addr{}
	)
	type peerCase struct{ peer, want netip.Addr }
	for _, tc := range []struct {
		name   string
		setup  func(c *ctx)
		noMap  bool // --no-map-gw
		checks []peerCase
	}{
		{"defaults (--map-gw)", nil, false, []peerCase{
			{lo4, testGW4},        // --map-host-loopback defaults to the gateway
			{lo4b, testGW4},       // other 127/8 addresses: pasta's address
			{lo6, testGW6},        // fe80::1 is also our link-local address
			{testGuest4, testGW4}, // the host's own address is the guest's: shown as the gateway
			{testGuest6, testGW6},
			{remote4, remote4}, // anybody else keeps their address
			{remote6, remote6},
			{remoteLL, remoteLL},
			{a("0.0.0.0"), testGW4},
		}},
		{"--no-map-gw", nil, true, []peerCase{
			// No --map-host-loopback address: loopback peers take the
			// fallback too; the C pasta does not drop them.
			{lo4, testGW4},
			{lo6, testGW6},
			{testGuest4, testGW4},
			{testGuest6, testGW6},
			{remote4, remote4},
		}},
		{"--map-host-loopback", func(c *ctx) {
			c.ip4.mapHostLoopback, c.ip6.mapHostLoopback = hostLoop4, hostLoop6
		}, false, []peerCase{
			{lo4, hostLoop4},
			{lo6, hostLoop6},
			{lo4b, testGW4},       // only 127.0.0.1 itself is mapped
			{testGuest4, testGW4}, // the host's own address is not loopback
			{testGuest6, testGW6},
		}},
		{"--map-guest-addr (Podman's options)", func(c *ctx) { c.ip4.mapGuestAddr = mapped4 }, true, []peerCase{
			{testGuest4, mapped4}, // the reverse of the option's outbound mapping
			{testGuest6, testGW6}, // no IPv6 mapping: our link-local address
			{lo4, testGW4},
			{remote4, remote4},
		}},
		{"--map-guest-addr for both versions", func(c *ctx) {
			c.ip4.mapGuestAddr, c.ip6.mapGuestAddr = mapped4, mapped6
		}, false, []peerCase{
			{testGuest4, mapped4},
			{testGuest6, mapped6},
			{lo4, testGW4}, // loopback still follows --map-host-loopback
			{lo6, testGW6},
		}},
		{"the guest uses another address", func(c *ctx) {
			c.ip4.observe(a("10.0.2.16"))
			c.ip6.observe(a("2001:db8:1::16"))
		}, false, []peerCase{
			{a("10.0.2.16"), testGW4}, // the guest can't be reached from its own address
			{a("2001:db8:1::16"), testGW6},
			{testGuest4, testGW4},
		}},
		{"a global IPv6 gateway", func(c *ctx) {
			c.ip6.gw, c.ip6.hostLL = a("2001:db8:1::1"), a("fe80::77")
		}, true, []peerCase{
			{lo6, a("fe80::77")}, // our link-local address: the host interface's
			{testGuest6, a("fe80::77")},
		}},
		{"no IPv4 gateway", func(c *ctx) { c.ip4.gw = netip.Addr{} }, true, []peerCase{
			{lo4, noSource}, // nothing the guest could answer to
			{testGuest4, noSource},
			{remote4, remote4},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, func(c *config) { c.noMapGW = tc.noMap })
			if tc.setup != nil {
				tc.setup(tp.c)
			}
			for _, pc := range tc.checks {
				got, ok := tp.c.inboundSource(pc.peer)
				if ok != pc.want.IsValid() || (ok && got != pc.want) {
					t.Errorf("peer %s: source %s (%v), want %s", pc.peer, got, ok, pc.want)
				}
			}
		})
	}
}

// TestInboundDestination checks where forwarded traffic goes in the guest:
// its link-local address for link-local sources, else its address as last
// seen, else as configured (pasta(1), NOTES).
func TestInboundDestination(t *testing.T) {
	ic := ipConf{addr: testGuest6}
	ll := netip.MustParseAddr("fe80::99")
	if got := ic.guestDestination(ll); got != testGuest6 {
		t.Errorf("nothing seen yet: %s, want the configured %s", got, testGuest6)
	}
	ic.observe(testGuestLL6)
	if got := ic.guestDestination(ll); got != testGuestLL6 {
		t.Errorf("link-local source: %s, want the guest's link-local %s", got, testGuestLL6)
	}
	if got := ic.guestDestination(netip.MustParseAddr("2001:db8::2")); got != testGuest6 {
		t.Errorf("global source: %s, want %s", got, testGuest6)
	}
	seen := netip.MustParseAddr("2001:db8:1::16")
	ic.observe(seen)
	if got := ic.guestDestination(netip.MustParseAddr("2001:db8::2")); got != seen {
		t.Errorf("global source after the guest used %s: %s", seen, got)
	}
}

// forwardedPort binds a -t port on the host's loopback for tp, forwarded
// to target, and returns its port. Local clients of it are spliced, or take
// the tap if tp has --no-splice.
func forwardedPort(t *testing.T, tp *testPasta, target uint16) uint16 {
	t.Helper()
	li, err := tp.c.openListener(dirTCP, netip.AddrPortFrom(loopback4, 0), "", netip.AddrPortFrom(netip.Addr{}, target))
	if err != nil {
		t.Fatal(err)
	}
	return boundPort(t, tp.c.listeners[li].fd)
}

// dialForwarded connects a host client to a forwarded port: the kernel
// completes the handshake before pasta has accepted anything.
func dialForwarded(t *testing.T, port uint16) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp4", nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectReset drives pasta until the host client's connection is reset.
func expectReset(t *testing.T, tp *testPasta, c *net.TCPConn) {
	t.Helper()
	buf := make([]byte, 16)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := tp.c.runOnce(10); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := c.Read(buf)
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNRESET):
			return
		case errors.As(err, &ne) && ne.Timeout():
			continue
		default:
			t.Fatalf("host client read %v, want a reset", err)
		}
	}
	t.Fatal("the host client's connection was not reset")
}

// guestSyn reads pasta's SYN for a forwarded connection.
func guestSyn(t *testing.T, tp *testPasta) (*layers.IPv4, *layers.TCP) {
	t.Helper()
	ip, tcp := expectTCPFrame(t, tp)
	if !tcp.SYN || tcp.ACK {
		t.Fatalf("first segment to the guest has flags %q, want a SYN", tcpFlagString(tcp))
	}
	return ip, tcp
}

// A host client on the host's loopback, without splicing, appears as the
// gateway; when the guest refuses the connection, the client is reset.
func TestForwardedConnectionRefusedByGuest(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noSplice = true })
	port := forwardedPort(t, tp, 7000)
	client := dialForwarded(t, port)
	ip, syn := guestSyn(t, tp)
	if !ip.SrcIP.Equal(testGW4.AsSlice()) || !ip.DstIP.Equal(testGuest4.AsSlice()) || syn.DstPort != 7000 {
		t.Fatalf("SYN %s:%d -> %s:%d, want from the gateway to %s:7000", ip.SrcIP, syn.SrcPort, ip.DstIP, syn.DstPort, testGuest4)
	}
	// The guest has no server there: RST (RFC 9293 section 3.10.7.1).
	rip := ip4(testGuest4, testGW4, layers.IPProtocolTCP)
	rst := &layers.TCP{SrcPort: 7000, DstPort: syn.SrcPort, Ack: syn.Seq + 1, RST: true, ACK: true}
	_ = rst.SetNetworkLayerForChecksum(rip)
	tp.inject(ethToUs(layers.EthernetTypeIPv4), rip, rst)
	expectReset(t, tp, client)
	tp.c.flows.sweep(tp.c)
	if n := tp.c.flows.used(); n != 0 {
		t.Errorf("%d flows left after the guest's reset", n)
	}
}

// A guest that never answers the SYN: pasta sends it again, then resets
// the host client rather than leaving it with its data acknowledged by the
// kernel and going nowhere.
func TestForwardedConnectionNoAnswerResets(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noSplice = true })
	port := forwardedPort(t, tp, 7000)
	client := dialForwarded(t, port)
	if _, err := client.Write([]byte("data the kernel acknowledges")); err != nil {
		t.Fatal(err)
	}
	_, first := guestSyn(t, tp)
	i, ok := tp.c.flows.lookup(newFlowKey(protoTCP, testGuest4, 7000, testGW4, uint16(first.SrcPort)))
	if !ok {
		t.Fatal("no flow for the forwarded connection")
	}
	// The retransmission timer, run by hand: tcpSynRetries more SYNs, the
	// same one each time, then a reset both ways.
	for k := 0; k < tcpSynRetries; k++ {
		tp.c.tcpTimer(i)
		_, again := guestSyn(t, tp)
		if again.Seq != first.Seq || again.SrcPort != first.SrcPort {
			t.Fatalf("SYN %d: seq %d port %d, want the first one's (%d, %d)", k+2, again.Seq, again.SrcPort, first.Seq, first.SrcPort)
		}
	}
	tp.c.tcpTimer(i)
	expectReset(t, tp, client)
	if tp.c.nextWarn[warnNoAnswer] == 0 {
		t.Error("no warning logged")
	}
}

// Without an address the guest could answer (no gateway, no mapping), the
// connection is reset at once, with a warning.
func TestForwardedConnectionWithoutSourceResets(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noSplice, c.noMapGW = true, true })
	tp.c.ip4.gw = netip.Addr{}
	port := forwardedPort(t, tp, 7000)
	client := dialForwarded(t, port)
	expectReset(t, tp, client)
	tp.expectNoFrame(noWait)
	if tp.c.flows.used() != 0 || tp.c.nextWarn[warnNoSource] == 0 {
		t.Errorf("%d flows, warned: %v", tp.c.flows.used(), tp.c.nextWarn[warnNoSource] != 0)
	}
}

// A full TCP pool (budget.go) resets forwarded connections at once.
func TestForwardedConnectionTableFullResets(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noSplice = true })
	port := forwardedPort(t, tp, 7000)
	if err := tp.c.flows.init(budget{poolTCP: 1, poolHalfOpen: 1}); err != nil { // after the listener: it would divide the descriptors again
		t.Fatal(err)
	}
	first := dialForwarded(t, port)
	guestSyn(t, tp) // the one flow there is room for
	second := dialForwarded(t, port)
	expectReset(t, tp, second)
	if warned := tp.c.flows.pools[poolTCP].lastWarn != 0; tp.c.flows.used() != 1 || !warned {
		t.Errorf("%d flows (want 1), warned: %v", tp.c.flows.used(), warned)
	}
	_ = first
}

// A UDP datagram without an address the guest could answer is dropped and
// counted (a sender can't be told without raw sockets).
func TestForwardedDatagramWithoutSourceDropped(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noSplice, c.noMapGW = true, true })
	tp.c.ip4.gw = netip.Addr{}
	sendToForwardedUDPPort(t, tp, 7000, "query")
	tp.runUntil(time.Second, func() bool { return tp.c.stats.udpDropped > 0 })
	tp.expectNoFrame(noWait)
	if tp.c.flows.used() != 0 {
		t.Errorf("%d flows for a dropped datagram", tp.c.flows.used())
	}
}

// The host's own address, with Podman's --map-guest-addr, reaches the guest
// from the mapped address, over UDP too, and the reply finds the client.
func TestForwardedDatagramFromHostAddressMapped(t *testing.T) {
	mapped := netip.MustParseAddr("169.254.1.2")
	tp := newTestPasta(t, func(c *config) { c.noMapGW, c.noSplice = true, true })
	tp.c.ip4.mapGuestAddr = mapped
	// The client can only send from the loopback here: let that be the
	// host's (and the guest's) own address of this test.
	tp.c.ip4.addr = loopback4
	client := sendToForwardedUDPPort(t, tp, 7000, "query")
	time.Sleep(10 * time.Millisecond)
	ip, u := expectUDP(t, tp)
	if !ip.SrcIP.Equal(mapped.AsSlice()) || u.DstPort != 7000 {
		t.Fatalf("datagram %s:%d -> %s:%d, want from %s", ip.SrcIP, u.SrcPort, ip.DstIP, u.DstPort, mapped)
	}
	rip := ip4(loopback4, mapped, layers.IPProtocolUDP)
	ru := &layers.UDP{SrcPort: 7000, DstPort: u.SrcPort}
	_ = ru.SetNetworkLayerForChecksum(rip)
	tp.inject(ethToUs(layers.EthernetTypeIPv4), rip, ru, gopacket.Payload("answer"))
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 16)
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("client got %q, %v", buf[:n], err)
	}
}

// Out of descriptors, pasta still accepts a waiting forwarded connection,
// with the one it holds in reserve, to reset it: otherwise the client
// would wait, its handshake completed by the kernel, and the listener
// would keep waking the loop.
func TestForwardedConnectionOutOfDescriptorsResets(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noSplice = true })
	port := forwardedPort(t, tp, 7000)
	client := dialForwarded(t, port)
	if tp.c.spareFD < 0 {
		t.Fatal("no descriptor in reserve")
	}
	exhaustDescriptors(t)
	expectReset(t, tp, client)
	tp.expectNoFrame(noWait)
	if tp.c.spareFD < 0 {
		t.Error("the reserve was not taken again")
	}
	if tp.c.nextWarn[warnAcceptFailed] == 0 {
		t.Error("no warning logged")
	}
}

// exhaustDescriptors lowers the process's descriptor limit to just above
// the highest open descriptor and fills every free number below it, until
// the test ends.
func exhaustDescriptors(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			highest = max(highest, n)
		}
	}
	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	var fillers []int
	t.Cleanup(func() {
		for _, fd := range fillers {
			unix.Close(fd)
		}
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &saved)
	})
	low := unix.Rlimit{Cur: uint64(highest + 1), Max: saved.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	for range highest + 1 {
		fd, err := unix.Dup(0)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				t.Fatal(err)
			}
			return
		}
		fillers = append(fillers, fd)
	}
	t.Fatal("the descriptor limit did not hold")
}
