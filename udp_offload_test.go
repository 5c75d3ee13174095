package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// Frame-level tests of UDP segmentation offload (udp_offload.go). The
// frame device is the tap's own code (tapIO) over the test's socketpair,
// so that every frame carries a virtio-net header, as on a tap with
// TUN_F_USO4|TUN_F_USO6.

// newVnetTestPasta is newTestPasta with a device that speaks virtio-net
// headers and takes UDP super-frames.
func newVnetTestPasta(t testing.TB) *testPasta {
	t.Helper()
	tp := newTestPasta(t, nil)
	tp.c.dev = &tapIO{tapFD: tp.c.dev.fd(), uso: true}
	return tp
}

// vnetFrame is a frame as the tap passes it: the virtio-net header (legacy
// layout, host byte order) and the Ethernet frame.
func vnetFrame(gsoType uint8, gsoSize uint16, frame []byte) []byte {
	hdr := make([]byte, vnetHdrLen)
	hdr[vnetOffGSOType] = gsoType
	binary.NativeEndian.PutUint16(hdr[vnetOffGSOSize:], gsoSize)
	return append(hdr, frame...)
}

// guestUDPFrame is a UDP datagram from the guest's sport to dst:dport.
func guestUDPFrame(t testing.TB, sport uint16, dst netip.Addr, dport uint16, payload []byte) []byte {
	t.Helper()
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if dst.Is4() {
		ip := ip4(testGuest4, dst, layers.IPProtocolUDP)
		_ = u.SetNetworkLayerForChecksum(ip)
		return serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, u, gopacket.Payload(payload))
	}
	ip := ip6(testGuest6, dst, layers.IPProtocolUDP)
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, ethToUs(layers.EthernetTypeIPv6), ip, u, gopacket.Payload(payload))
}

// pattern is n bytes that differ from one datagram (seed) to the next.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7)
	}
	return b
}

// hostUDPSocket is a UDP socket on the loopback address of family.
func hostUDPSocket(t *testing.T, family netip.Addr) *net.UDPConn {
	t.Helper()
	network, addr := "udp4", net.IPv4(127, 0, 0, 1)
	if family.Is6() {
		network, addr = "udp6", net.IPv6loopback
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func udpPort(conn *net.UDPConn) uint16 { return uint16(conn.LocalAddr().(*net.UDPAddr).Port) }

// readDatagrams reads n datagrams from conn, failing after two seconds.
func readDatagrams(t *testing.T, conn *net.UDPConn, n int) ([][]byte, *net.UDPAddr) {
	t.Helper()
	var got [][]byte
	var from *net.UDPAddr
	buf := make([]byte, 1<<16)
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for len(got) < n {
		k, a, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got, from = append(got, append([]byte(nil), buf[:k]...)), a
	}
	return got, from
}

// startFlow makes a UDP flow from the guest's port 6000 to a host socket
// and returns the socket and the flow's host-side address.
func startFlow(t *testing.T, tp *testPasta, family netip.Addr) (*net.UDPConn, *net.UDPAddr) {
	t.Helper()
	host := hostUDPSocket(t, family)
	gw := testGW4
	if family.Is6() {
		gw = testGW6
	}
	tp.injectRaw(vnetFrame(vnetGSONone, 0, guestUDPFrame(t, 6000, gw, udpPort(host), []byte("hello"))))
	got, from := readDatagrams(t, host, 1)
	if string(got[0]) != "hello" {
		t.Fatalf("host got %q", got[0])
	}
	return host, from
}

// superFrame is a frame pasta sent the guest, with its virtio-net header.
type superFrame struct {
	hdr     []byte
	gsoType uint8
	gsoSize int
	ip      []byte // the IP header
	udp     *layers.UDP
	src     netip.Addr
	dst     netip.Addr
}

// expectVnetUDP reads the next frame pasta sends, with its virtio-net
// header, and checks what every UDP frame to a device with offloads must
// be: a partial checksum for the device to finish (virtio 1.x 5.1.6.2),
// IP and UDP lengths that cover the whole payload.
func expectVnetUDP(t *testing.T, tp *testPasta) superFrame {
	t.Helper()
	raw := tp.readFrame(time.Second)
	if len(raw) < vnetHdrLen {
		t.Fatal("no frame from pasta")
	}
	sf := superFrame{hdr: raw[:vnetHdrLen], gsoType: raw[vnetOffGSOType], gsoSize: int(binary.NativeEndian.Uint16(raw[vnetOffGSOSize:]))}
	pkt := gopacket.NewPacket(raw[vnetHdrLen:], layers.LayerTypeEthernet, gopacket.Default)
	u, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if u == nil {
		t.Fatalf("not a UDP frame: %v", pkt)
	}
	sf.udp = u
	l4 := ethHdrLen
	if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		sf.src, sf.dst, sf.ip = addrFrom4(ip.SrcIP.To4()), addrFrom4(ip.DstIP.To4()), ip.Contents
		if int(ip.Length) != ipv4HdrLen+udpHdrLen+len(u.Payload) {
			t.Fatalf("IPv4 length %d for %d payload bytes", ip.Length, len(u.Payload))
		}
	} else if ip, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		sf.src, sf.dst, sf.ip = addrFrom16(ip.SrcIP), addrFrom16(ip.DstIP), ip.Contents
		if int(ip.Length) != udpHdrLen+len(u.Payload) {
			t.Fatalf("IPv6 payload length %d for %d payload bytes", ip.Length, len(u.Payload))
		}
	}
	l4 += len(sf.ip)
	if int(u.Length) != udpHdrLen+len(u.Payload) {
		t.Fatalf("UDP length %d for %d payload bytes", u.Length, len(u.Payload))
	}
	if sf.hdr[vnetOffFlags] != vnetFlagNeedsCsum ||
		int(binary.NativeEndian.Uint16(sf.hdr[vnetOffCsumStart:])) != l4 ||
		binary.NativeEndian.Uint16(sf.hdr[vnetOffCsumOffset:]) != 6 {
		t.Fatalf("virtio-net header %x: want a partial checksum at %d+6", sf.hdr, l4)
	}
	if want := ^foldChecksum(pseudoHeaderSum(sf.src, sf.dst, protoUDP, int(u.Length))); u.Checksum != want {
		t.Fatalf("UDP checksum field %#04x, want the pseudo-header sum %#04x", u.Checksum, want)
	}
	if sf.gsoType != vnetGSONone {
		if hl := int(binary.NativeEndian.Uint16(sf.hdr[vnetOffHdrLen:])); hl != l4+udpHdrLen {
			t.Fatalf("virtio-net hdr_len %d, want %d", hl, l4+udpHdrLen)
		}
	}
	return sf
}

// A burst from the host peer reaches the guest as UDP super-frames: runs
// of equal-sized datagrams with at most one shorter one at the end, whose
// payloads are the datagrams in order; what cannot join a run goes alone.
func TestUDPSuperFramesToGuest(t *testing.T) {
	for _, family := range []netip.Addr{testGuest4, testGuest6} {
		t.Run(family.String(), func(t *testing.T) {
			tp := newVnetTestPasta(t)
			host, flowAddr := startFlow(t, tp, family)
			sizes := []int{1000, 1000, 1000, 500, 1000, 700, 1200, 0, 8000, 8000, 8000}
			var sent [][]byte
			for i, n := range sizes {
				p := pattern(i, n)
				if _, err := host.WriteToUDP(p, flowAddr); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, p)
			}
			// Each super-frame: its segment size and the datagrams in it.
			want := []struct{ seg, from, to int }{
				{1000, 0, 4},  // 1000 1000 1000 500: three, then a shorter one
				{1000, 4, 6},  // 1000 700
				{1200, 6, 7},  // 1200 alone: the next is empty
				{0, 7, 8},     // the empty datagram
				{8000, 8, 11}, // 8000 ×3
			}
			for _, w := range want {
				sf := expectVnetUDP(t, tp)
				payload := bytes.Join(sent[w.from:w.to], nil)
				if !bytes.Equal(sf.udp.Payload, payload) {
					t.Fatalf("datagrams %d-%d: frame of %d payload bytes differs from the %d sent", w.from, w.to-1, len(sf.udp.Payload), len(payload))
				}
				if w.to-w.from == 1 {
					if sf.gsoType != vnetGSONone {
						t.Fatalf("datagram %d alone: GSO type %d", w.from, sf.gsoType)
					}
					continue
				}
				if sf.gsoType != vnetGSOUDPL4 || sf.gsoSize != w.seg {
					t.Fatalf("datagrams %d-%d: GSO type %d size %d, want UDP_L4 size %d", w.from, w.to-1, sf.gsoType, sf.gsoSize, w.seg)
				}
			}
			tp.expectNoFrame(noWait)
		})
	}
}

// Without USO on the tap (a kernel before 6.2), every datagram goes alone.
func TestUDPNoSuperFramesWithoutUSO(t *testing.T) {
	tp := newVnetTestPasta(t)
	tp.c.dev.(*tapIO).uso = false
	host, flowAddr := startFlow(t, tp, testGuest4)
	for i := range 3 {
		if _, err := host.WriteToUDP(pattern(i, 1000), flowAddr); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		sf := expectVnetUDP(t, tp)
		if sf.gsoType != vnetGSONone || !bytes.Equal(sf.udp.Payload, pattern(i, 1000)) {
			t.Fatalf("datagram %d: GSO type %d, %d bytes", i, sf.gsoType, len(sf.udp.Payload))
		}
	}
}

// A UDP super-frame from the guest reaches the host peer as the datagrams
// it holds: cut every gso_size bytes, the last one shorter, through one
// UDP_SEGMENT send.
func TestUDPSuperFrameFromGuest(t *testing.T) {
	for _, family := range []netip.Addr{testGuest4, testGuest6} {
		t.Run(family.String(), func(t *testing.T) {
			tp := newVnetTestPasta(t)
			host, _ := startFlow(t, tp, family)
			gw := testGW4
			if family.Is6() {
				gw = testGW6
			}
			for _, c := range []struct{ seg, total int }{{1000, 3500}, {1400, 5600}, {8000, 64000}} {
				payload := pattern(c.seg, c.total)
				tp.injectRaw(vnetFrame(vnetGSOUDPL4, uint16(c.seg), guestUDPFrame(t, 6000, gw, udpPort(host), payload)))
				n := (c.total + c.seg - 1) / c.seg
				got, _ := readDatagrams(t, host, n)
				for i, d := range got {
					end := min((i+1)*c.seg, c.total)
					if !bytes.Equal(d, payload[i*c.seg:end]) {
						t.Fatalf("segment size %d: datagram %d has %d bytes, want bytes %d-%d", c.seg, i, len(d), i*c.seg, end)
					}
				}
			}
			i, _ := tp.c.flows.lookup(newFlowKey(protoUDP, family, 6000, gw, udpPort(host)))
			if tp.c.flows.at(i).udp.noGSO {
				t.Fatal("the socket refused UDP_SEGMENT: the datagrams went one by one")
			}
		})
	}
}

// A super-frame whose virtio-net header does not fit the frame is dropped
// and counted as malformed: nothing reaches the host.
func TestUDPSuperFrameBadHeader(t *testing.T) {
	tp := newVnetTestPasta(t)
	host, _ := startFlow(t, tp, testGuest4)
	udp := guestUDPFrame(t, 6000, testGW4, udpPort(host), pattern(1, 3000))
	ip := ip4(testGuest4, testGW4, layers.IPProtocolTCP)
	tcpSeg := &layers.TCP{SrcPort: 6000, DstPort: 80, SYN: true, Window: 1000}
	_ = tcpSeg.SetNetworkLayerForChecksum(ip)
	tcp := serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, tcpSeg, gopacket.Payload(pattern(2, 3000)))
	for _, c := range []struct {
		name    string
		gsoType uint8
		gsoSize uint16
		frame   []byte
	}{
		{"UDP_L4 without a segment size", vnetGSOUDPL4, 0, udp},
		{"UDP_L4 on a TCP segment", vnetGSOUDPL4, 1000, tcp},
		{"TCPv4 on a UDP datagram", vnetGSOTCPv4, 1000, udp},
		{"UFO, which no kernel sends any more", 3, 1000, udp},
		{"an unknown type", 0x42, 1000, udp},
	} {
		before := tp.c.stats.malformed
		tp.injectRaw(vnetFrame(c.gsoType, c.gsoSize, c.frame))
		if tp.c.stats.malformed != before+1 {
			t.Errorf("%s: not counted as malformed", c.name)
		}
	}
	_ = host.SetReadDeadline(time.Now().Add(noWait))
	if n, _, err := host.ReadFromUDP(make([]byte, 1<<16)); err == nil {
		t.Fatalf("the host got a datagram of %d bytes from a bad super-frame", n)
	}
	if tp.c.flows.used() != 1 {
		t.Fatalf("%d flows, want the first one only", tp.c.flows.used())
	}
}

// When the route's MTU is smaller than a segment, the socket refuses
// UDP_SEGMENT (udp(7): EINVAL); the datagrams then go one by one, as IP
// fragments, and none is lost.
func TestUDPSegmentRefusedFallsBack(t *testing.T) {
	withPingNetns(t)
	conn, err := netlinkConn()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := setLink(conn, &rtnetlink.LinkMessage{Index: loopbackIndex, Attributes: &rtnetlink.LinkAttributes{MTU: 1500}}); err != nil {
		t.Fatalf("lo mtu 1500: %v", err)
	}
	tp := newVnetTestPasta(t)
	host, _ := startFlow(t, tp, testGuest4)
	payload := pattern(3, 7000)
	tp.injectRaw(vnetFrame(vnetGSOUDPL4, 2000, guestUDPFrame(t, 6000, testGW4, udpPort(host), payload)))
	got, _ := readDatagrams(t, host, 4)
	for i, d := range got {
		if !bytes.Equal(d, payload[i*2000:min((i+1)*2000, len(payload))]) {
			t.Fatalf("datagram %d: %d bytes differ", i, len(d))
		}
	}
	i, _ := tp.c.flows.lookup(newFlowKey(protoUDP, testGuest4, 6000, testGW4, udpPort(host)))
	if !tp.c.flows.at(i).udp.noGSO {
		t.Fatal("UDP_SEGMENT with 2000-byte segments on a 1500-byte MTU was taken")
	}
}

// The UDP offload path allocates nothing per packet, both ways.
func TestUDPOffloadPathAllocatesNothing(t *testing.T) {
	tp := newVnetTestPasta(t)
	host, flowAddr := startFlow(t, tp, testGuest4)
	raw, err := host.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var hostFD int
	_ = raw.Control(func(fd uintptr) { hostFD = int(fd) })
	super := vnetFrame(vnetGSOUDPL4, 1400, guestUDPFrame(t, 6000, testGW4, udpPort(host), pattern(4, 14000)))
	to := &unix.SockaddrInet4{Port: flowAddr.Port, Addr: [4]byte(flowAddr.IP.To4())}
	burst := pattern(5, 1400)
	buf := make([]byte, 1<<17)
	drainHost := func() {
		for {
			if _, err := rawRead(hostFD, buf); err != nil {
				return
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		_, _ = rawWrite(tp.peer, super)
		_ = tp.c.runOnce(10)
		drainHost()
	}); n != 0 {
		t.Errorf("guest super-frame to host datagrams: %v allocations", n)
	}
	sendBurst := func() {
		for range 8 {
			_ = unix.Sendto(hostFD, burst, unix.MSG_DONTWAIT, to)
		}
	}
	sendBurst() // the first Sendto allocates its socket address; warm up
	_ = tp.c.runOnce(10)
	for tp.readFrame(0) != nil {
	}
	if n := testing.AllocsPerRun(100, func() {
		sendBurst()
		_ = tp.c.runOnce(10)
		for {
			if _, err := rawRead(tp.peer, buf); err != nil {
				return
			}
		}
	}); n != 0 {
		t.Errorf("host datagrams to a guest super-frame: %v allocations", n)
	}
}

// FuzzUDPSuperFrame throws UDP frames with arbitrary virtio-net
// segmentation fields at pasta, as the tap hands them over. pasta must not
// panic and must make at most one flow per frame.
func FuzzUDPSuperFrame(f *testing.F) {
	f.Add(uint8(vnetGSOUDPL4), uint16(1000), uint16(53), []byte("0123456789"))
	f.Add(uint8(vnetGSOUDPL4), uint16(1), uint16(9), make([]byte, 100))
	f.Add(uint8(vnetGSOUDPL4), uint16(0), uint16(9), make([]byte, 10))
	f.Add(uint8(vnetGSOTCPv6|vnetGSOECN), uint16(1400), uint16(9), []byte{})
	f.Add(uint8(vnetGSONone), uint16(65535), uint16(0), make([]byte, 3000))
	tp := newVnetTestPasta(f)
	f.Fuzz(func(t *testing.T, gsoType uint8, gsoSize, dport uint16, payload []byte) {
		tp.t = t
		before := tp.c.flows.used()
		tp.injectRaw(vnetFrame(gsoType, gsoSize, guestUDPFrame(t, 7000, testGW4, dport, payload)))
		if n := tp.c.flows.used(); n > before+1 {
			t.Fatalf("one frame made %d flows", n-before)
		}
		for tp.readFrame(0) != nil {
		}
		for i := tp.c.flows.nextUsed(0); i >= 0; i = tp.c.flows.nextUsed(i + 1) {
			tp.c.flows.kill(tp.c, i)
		}
		tp.c.flows.sweep(tp.c)
	})
}
