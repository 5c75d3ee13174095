package main

import (
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// FuzzFrame feeds arbitrary bytes to the frame input path, as the guest
// could, through the admission queue when they would make a flow. Whatever arrives, pasta must not panic, must not keep more flows
// than frames it accepted, and must not send anything that is not a valid
// frame. Seeds: the committed corpus in testdata/fuzz/FuzzFrame plus the
// frames below.
func FuzzFrame(f *testing.F) {
	for _, seed := range seedFrames(f) {
		f.Add(seed)
	}
	tp := newTestPasta(f, nil)
	a := &tp.c.admit
	f.Fuzz(func(t *testing.T, frame []byte) {
		tp.t = t
		// As read from the tap with no budget left for new flows: a frame
		// that would make one waits in the admission queue (admit.go), and
		// is handled from there.
		a.source, a.budget, a.frame = fromTap, 0, frame
		tp.c.handleFrame(frame)
		a.doneReading()
		a.budget = admitPerWakeup
		tp.c.admitQueued()
		if n := tp.c.flows.used(); n > 1 {
			t.Fatalf("one frame left %d flows", n)
		}
		for {
			out := tp.readFrame(0)
			if out == nil {
				break
			}
			if len(out) < ethHdrLen {
				t.Fatalf("pasta sent a %d-byte frame", len(out))
			}
		}
		for i := range tp.c.flows.flows {
			tp.c.flows.kill(tp.c, i)
		}
		tp.c.flows.sweep(tp.c)
	})
}

func seedFrames(t testing.TB) [][]byte {
	ns := func(src, target netip.Addr) []byte {
		ip := ip6(src, target, layers.IPProtocolICMPv6)
		ip.HopLimit = 255
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		_ = icmp.SetNetworkLayerForChecksum(ip)
		return serialize(t, ethToUs(layers.EthernetTypeIPv6), ip, icmp,
			&layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice()})
	}
	echo6 := func() []byte {
		ip := ip6(testGuest6, testGW6, layers.IPProtocolICMPv6)
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		_ = icmp.SetNetworkLayerForChecksum(ip)
		return serialize(t, ethToUs(layers.EthernetTypeIPv6), ip, icmp, &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1}, gopacket.Payload("ping"))
	}
	tcpSYN := func() []byte {
		ip := ip4(testGuest4, testGW4, layers.IPProtocolTCP)
		return serialize(t, ethToUs(layers.EthernetTypeIPv4), ip,
			withChecksumLayer(&layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Window: 65535}, ip))
	}
	udpQuery := func() []byte {
		ip := ip4(testGuest4, testGW4, layers.IPProtocolUDP)
		return serialize(t, ethToUs(layers.EthernetTypeIPv4), ip,
			withChecksumLayer(&layers.UDP{SrcPort: 40000, DstPort: 53}, ip), gopacket.Payload("query"))
	}
	return [][]byte{
		serialize(t, ethTo(broadcast, layers.EthernetTypeARP), arpRequest(testGuest4, testGW4)),
		validEcho4(t),
		ns(testGuestLL6, testGW6),
		echo6(),
		tcpSYN(),
		udpQuery(),
	}
}

func withChecksumLayer[L interface {
	SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
}](l L, ip gopacket.NetworkLayer) L {
	_ = l.SetNetworkLayerForChecksum(ip)
	return l
}
