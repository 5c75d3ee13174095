package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// Frame-level test harness: a ctx whose frame device is one end of a
// SOCK_SEQPACKET socketpair. The test plays the guest on the other end,
// injecting frames built with gopacket and reading what pasta sends back,
// while pasta talks to real sockets on the host side. The loop is driven
// step by step with runOnce, on the test's own goroutine.

var (
	testGuestMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	testGuest4   = netip.MustParseAddr("10.0.2.15")
	testGW4      = netip.MustParseAddr("10.0.2.2")
	testGuest6   = netip.MustParseAddr("2001:db8:1::15")
	testGW6      = netip.MustParseAddr("fe80::1")
	testGuestLL6 = netip.MustParseAddr("fe80::15")
)

type testPasta struct {
	t    testing.TB
	c    *ctx
	peer int // the guest's end of the socketpair
	buf  []byte
}

// newTestPasta builds a pasta instance for frame tests. mutate, if not nil,
// adjusts the configuration before the instance is made.
func newTestPasta(t testing.TB, mutate func(*config)) *testPasta {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	cfg := &config{mtu: -1, logSize: 1 << 20}
	if mutate != nil {
		mutate(cfg)
	}
	c, err := newCtx(cfg, &packetIO{sockFD: fds[0]})
	if err != nil {
		t.Fatal(err)
	}
	c.ip4 = ipConf{enabled: !cfg.ipv6Only, addr: testGuest4, prefixLen: 24, gw: testGW4}
	c.ip6 = ipConf{enabled: !cfg.ipv4Only, addr: testGuest6, prefixLen: 64, gw: testGW6}
	if !cfg.noMapGW {
		c.ip4.mapHostLoopback, c.ip6.mapHostLoopback = testGW4, testGW6
	}
	c.updateClock()
	tp := &testPasta{t: t, c: c, peer: fds[1], buf: make([]byte, 1<<17)}
	t.Cleanup(func() {
		for i := c.flows.nextUsed(0); i >= 0; i = c.flows.nextUsed(i + 1) {
			c.flows.kill(c, i)
		}
		c.flows.close()
		unix.Close(fds[0])
		unix.Close(fds[1])
		unix.Close(c.epfd)
		unix.Close(c.spareFD)
	})
	return tp
}

// inject sends a frame, serialised from layers with lengths and checksums
// fixed up, to pasta, and lets the loop handle it.
func (tp *testPasta) inject(ls ...gopacket.SerializableLayer) {
	tp.t.Helper()
	tp.injectRaw(serialize(tp.t, ls...))
}

// injectRaw sends raw bytes as one frame and runs one loop iteration.
func (tp *testPasta) injectRaw(frame []byte) {
	tp.t.Helper()
	if _, err := unix.Write(tp.peer, frame); err != nil {
		tp.t.Fatalf("injecting frame: %v", err)
	}
	if err := tp.c.runOnce(100); err != nil {
		tp.t.Fatal(err)
	}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialising: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// readFrame returns the next frame pasta sent, running the loop until one
// arrives or the timeout passes (then it returns nil).
func (tp *testPasta) readFrame(timeout time.Duration) []byte {
	tp.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Read(tp.peer, tp.buf)
		if err == nil {
			return append([]byte(nil), tp.buf[:n]...)
		}
		if !errors.Is(err, unix.EAGAIN) {
			tp.t.Fatalf("reading frame: %v", err)
		}
		if time.Now().After(deadline) {
			return nil
		}
		if err := tp.c.runOnce(10); err != nil {
			tp.t.Fatal(err)
		}
	}
}

// expectPacket reads the next frame and decodes it; the test fails if
// none comes within a second.
func (tp *testPasta) expectPacket() gopacket.Packet {
	tp.t.Helper()
	f := tp.readFrame(time.Second)
	if f == nil {
		tp.t.Fatal("no frame from pasta")
	}
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		tp.t.Fatalf("pasta sent an undecodable frame: %v\n%x", el.Error(), f)
	}
	return pkt
}

// expectNoFrame checks that pasta sends nothing for a while.
func (tp *testPasta) expectNoFrame(wait time.Duration) {
	tp.t.Helper()
	if f := tp.readFrame(wait); f != nil {
		tp.t.Fatalf("unexpected frame from pasta: %x", f)
	}
}

// Layer builders for the guest's frames.

func ethTo(dst net.HardwareAddr, typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: testGuestMAC, DstMAC: dst, EthernetType: typ}
}

func ethToUs(typ layers.EthernetType) *layers.Ethernet {
	return ethTo(net.HardwareAddr(defaultOurMAC[:]), typ)
}

func ip4(src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func ip6(src, dst netip.Addr, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// withPingNetns runs the test body on a locked thread inside a fresh
// network namespace where loopback is up and ping sockets are allowed for
// everyone, so ICMP tests don't depend on the machine's settings. It needs
// root (CI runs as root); elsewhere the test is skipped unless
// GOPASTA_REQUIRE_ALL=1 makes that a failure.
func withPingNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root to create a network namespace for ping sockets")
	}
	runtime.LockOSThread() // never unlocked: the thread is left in the namespace and discarded
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	conn, err := netlinkConn()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := setLink(conn, &rtnetlink.LinkMessage{Index: loopbackIndex, Flags: unix.IFF_UP, Change: unix.IFF_UP}); err != nil {
		t.Fatalf("lo up: %v", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0); err != nil {
		t.Fatalf("ping_group_range: %v", err)
	}
}

func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("GOPASTA_REQUIRE_ALL") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// rawRead and rawWrite are read(2) and write(2) without allocation, for
// allocation tests.
func rawRead(fd int, p []byte) (int, error) {
	return recvFlags(fd, p, 0)
}

func rawWrite(fd int, p []byte) (int, error) {
	return sendNoSignal(fd, p)
}

// expectDroppedAsMalformed injects a frame and checks that pasta answers
// nothing and counts it as malformed.
func expectDroppedAsMalformed(t *testing.T, frame []byte) {
	t.Helper()
	tp := newTestPasta(t, nil)
	tp.injectRaw(frame)
	tp.expectNoFrame(noWait)
	if tp.c.stats.malformed == 0 {
		t.Error("not counted as malformed")
	}
}
