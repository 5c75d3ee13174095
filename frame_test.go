package main

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// validEcho4 is a well-formed echo request frame, the base for corrupted
// variants.
func validEcho4(t testing.TB) []byte {
	return serialize(t, ethToUs(layers.EthernetTypeIPv4), ip4(testGuest4, testGW4, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1},
		gopacket.Payload("abcdefgh"))
}

func TestMalformedFramesAreDroppedAndCounted(t *testing.T) {
	valid := validEcho4(t)
	arp := serialize(t, ethTo(broadcast, layers.EthernetTypeARP), arpRequest(testGuest4, testGW4))
	corrupt := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), valid...)
		return f(b)
	}
	cases := []struct {
		name      string
		frame     []byte
		malformed bool // else: well-formed but unsupported
	}{
		{"empty", []byte{}, true},
		{"short Ethernet", valid[:5], true},
		{"Ethernet only", valid[:ethHdrLen], true},
		{"truncated IPv4 header", valid[:ethHdrLen+12], true},
		{"IHL below 5", corrupt(func(b []byte) []byte { b[ethHdrLen] = 0x43; return b }), true},
		{"IHL beyond the frame", corrupt(func(b []byte) []byte { b[ethHdrLen] = 0x4f; return b[:ethHdrLen+30] }), true},
		{"total length below header", corrupt(func(b []byte) []byte { binary.BigEndian.PutUint16(b[ethHdrLen+2:], 10); return b }), true},
		{"truncated ICMP", valid[:ethHdrLen+ipv4HdrLen+3], true},
		{"truncated ARP", arp[:ethHdrLen+10], true},
		{"truncated IPv6", serialize(t, ethToUs(layers.EthernetTypeIPv6))[:ethHdrLen], true},
		{"unknown EtherType", serialize(t, ethToUs(layers.EthernetType(0x88b5)), gopacket.Payload("hello")), false},
		{"IPv4 with unknown protocol", serialize(t, ethToUs(layers.EthernetTypeIPv4), ip4(testGuest4, testGW4, 253), gopacket.Payload("x")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, nil)
			before := tp.c.stats
			tp.injectRaw(tc.frame)
			tp.expectNoFrame(20 * time.Millisecond)
			got := tp.c.stats
			if tc.malformed && got.malformed != before.malformed+1 {
				t.Errorf("malformed count %d -> %d, want one more", before.malformed, got.malformed)
			}
			if !tc.malformed && got.unsupported != before.unsupported+1 {
				t.Errorf("unsupported count %d -> %d, want one more", before.unsupported, got.unsupported)
			}
			if tp.c.flows.used() != 0 {
				t.Errorf("a dropped frame created %d flows", tp.c.flows.used())
			}
		})
	}
}

func TestChecksumMatchesReference(t *testing.T) {
	// RFC 1071 section 3 example: the sum of these words is 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := checksum(b); got != ^uint16(0xddf2) {
		t.Fatalf("checksum %#x, want %#x", got, ^uint16(0xddf2))
	}
	// Against a byte-at-a-time reference, for every length and alignment.
	data := make([]byte, 300)
	for i := range data {
		data[i] = byte(i*7 + 3)
	}
	for start := 0; start < 8; start++ {
		for end := start; end <= len(data); end++ {
			if got, want := checksum(data[start:end]), referenceChecksum(data[start:end]); got != want {
				t.Fatalf("checksum of [%d:%d] = %#x, want %#x", start, end, got, want)
			}
		}
	}
}

func referenceChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// The frame path allocates nothing: ARP answers and echo requests on an
// existing flow, and echo replies from the host socket.
func TestFramePathAllocatesNothing(t *testing.T) {
	withPingNetns(t)
	tp := newTestPasta(t, nil)
	arp := serialize(t, ethTo(broadcast, layers.EthernetTypeARP), arpRequest(testGuest4, testGW4))
	echo := validEcho4(t)
	tp.injectRaw(echo) // creates the flow
	tp.expectPacket()
	drain := func() {
		for tp.readFrame(0) != nil {
		}
	}
	if n := testing.AllocsPerRun(200, func() { tp.c.handleFrame(arp) }); n != 0 {
		t.Errorf("ARP: %v allocations per frame", n)
	}
	drain()
	if n := testing.AllocsPerRun(200, func() {
		tp.c.handleFrame(echo)
		_ = tp.c.runOnce(10) // the reply: ping socket read, frame out
	}); n != 0 {
		t.Errorf("ICMP echo round trip: %v allocations", n)
	}
	drain()
}

// BenchmarkFrameParse decodes a guest's 1400-byte UDP datagram, the work
// every frame takes before its handler (go test -run - -bench FrameParse
// -benchmem). TestFramePathAllocatesNothing asserts that the whole frame
// path, parsing included, allocates nothing.
func BenchmarkFrameParse(b *testing.B) {
	frame := udpFrame(b, 40000, 5201, strings.Repeat("x", 1400))
	p := newFrameParser()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if !p.parse(frame) || !p.has(layers.LayerTypeUDP) {
			b.Fatal("the datagram did not parse")
		}
	}
}
