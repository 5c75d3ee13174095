package main

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

func echoRequest4(tp *testPasta, dst netip.Addr, id, seq uint16, payload []byte) {
	tp.inject(ethToUs(layers.EthernetTypeIPv4), ip4(testGuest4, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq},
		gopacket.Payload(payload))
}

func echoRequest6(tp *testPasta, dst netip.Addr, id, seq uint16, payload []byte) {
	ip := ip6(testGuest6, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	_ = icmp.SetNetworkLayerForChecksum(ip)
	tp.inject(ethToUs(layers.EthernetTypeIPv6), ip, icmp, &layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}, gopacket.Payload(payload))
}

// expectEchoReply4 checks an IPv4 echo reply from src to the guest with the
// guest's identifier, sequence number and payload, and valid checksums.
func expectEchoReply4(t *testing.T, tp *testPasta, src netip.Addr, id, seq uint16, payload []byte) {
	t.Helper()
	pkt := tp.expectPacket()
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip == nil || icmp == nil {
		t.Fatalf("not an ICMP reply: %v", pkt)
	}
	if !ip.SrcIP.Equal(src.AsSlice()) || !ip.DstIP.Equal(testGuest4.AsSlice()) {
		t.Errorf("reply %s -> %s, want %s -> %s", ip.SrcIP, ip.DstIP, src, testGuest4)
	}
	if icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Id != id || icmp.Seq != seq {
		t.Errorf("reply type %v id %d seq %d, want echo reply id %d seq %d", icmp.TypeCode, icmp.Id, icmp.Seq, id, seq)
	}
	if !bytes.Equal(icmp.Payload, payload) {
		t.Errorf("payload %x, want %x", icmp.Payload, payload)
	}
	if checksum(ip.Contents) != 0 || checksum(ip.Payload) != 0 {
		t.Errorf("bad IPv4 or ICMP checksum")
	}
}

func TestEchoToGatewayReachesHostLoopback(t *testing.T) {
	withPingNetns(t)
	tp := newTestPasta(t, nil)
	payload := []byte("gopasta ping payload 0123456789")
	for seq := uint16(1); seq <= 3; seq++ {
		echoRequest4(tp, testGW4, 0x4242, seq, payload)
		expectEchoReply4(t, tp, testGW4, 0x4242, seq, payload)
	}
	if n := tp.c.flows.used(); n != 1 {
		t.Errorf("%d flows for one echo exchange, want 1", n)
	}
}

func TestEchoIdentifierRewrittenWhenTaken(t *testing.T) {
	withPingNetns(t)
	// Hold identifier 7 on the host: pasta's socket gets another one.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 7}); err != nil {
		t.Fatal(err)
	}
	tp := newTestPasta(t, nil)
	echoRequest4(tp, testGW4, 7, 1, []byte("x"))
	expectEchoReply4(t, tp, testGW4, 7, 1, []byte("x"))
}

func TestEcho6ToGatewayReachesHostLoopback(t *testing.T) {
	withPingNetns(t)
	tp := newTestPasta(t, nil)
	payload := bytes.Repeat([]byte{0xa5}, 1000)
	echoRequest6(tp, testGW6, 99, 5, payload)
	pkt := tp.expectPacket()
	ip, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	echo, _ := pkt.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
	icmp, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ip == nil || echo == nil {
		t.Fatalf("not an ICMPv6 echo reply: %v", pkt)
	}
	if icmp.TypeCode.Type() != layers.ICMPv6TypeEchoReply || echo.Identifier != 99 || echo.SeqNumber != 5 {
		t.Errorf("reply %v id %d seq %d", icmp.TypeCode, echo.Identifier, echo.SeqNumber)
	}
	if !ip.SrcIP.Equal(testGW6.AsSlice()) || !ip.DstIP.Equal(testGuest6.AsSlice()) {
		t.Errorf("reply %s -> %s", ip.SrcIP, ip.DstIP)
	}
	if !bytes.Equal(echo.Payload, payload) {
		t.Errorf("payload of %d bytes differs", len(echo.Payload))
	}
	checkICMPv6Checksum(t, pkt)
}

func TestNoICMPDropsEcho(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noICMP = true })
	echoRequest4(tp, testGW4, 1, 1, []byte("x"))
	tp.expectNoFrame(50 * time.Millisecond)
	if tp.c.flows.used() != 0 || tp.c.stats.icmpDropped != 1 {
		t.Errorf("flows %d, dropped %d: want 0 and 1", tp.c.flows.used(), tp.c.stats.icmpDropped)
	}
}

func TestEchoFlowExpires(t *testing.T) {
	withPingNetns(t)
	tp := newTestPasta(t, nil)
	echoRequest4(tp, testGW4, 3, 1, []byte("x"))
	expectEchoReply4(t, tp, testGW4, 3, 1, []byte("x"))
	tp.c.now += pingTimeoutNS + 1
	tp.c.housekeeping()
	tp.c.flows.sweep(tp.c)
	if n := tp.c.flows.used(); n != 0 {
		t.Fatalf("%d flows after the idle timeout, want 0", n)
	}
}
