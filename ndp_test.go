package main

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// solicitedNode returns the solicited-node multicast address of a (RFC 4291
// section 2.7.1) and its Ethernet mapping (RFC 2464 section 7).
func solicitedNode(a netip.Addr) (netip.Addr, net.HardwareAddr) {
	b := a.As16()
	m := [16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return netip.AddrFrom16(m), net.HardwareAddr{0x33, 0x33, 0xff, b[13], b[14], b[15]}
}

func neighborSolicitation(tp *testPasta, src, target netip.Addr, hopLimit uint8) {
	dst, dstMAC := solicitedNode(target)
	ip := ip6(src, dst, layers.IPProtocolICMPv6)
	ip.HopLimit = hopLimit
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	_ = icmp.SetNetworkLayerForChecksum(ip)
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice()}
	if !src.IsUnspecified() {
		ns.Options = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: testGuestMAC}}
	}
	tp.inject(ethTo(dstMAC, layers.EthernetTypeIPv6), ip, icmp, ns)
}

func TestNeighborSolicitationAnswered(t *testing.T) {
	tp := newTestPasta(t, nil)
	for _, target := range []netip.Addr{testGW6, netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8::2")} {
		neighborSolicitation(tp, testGuestLL6, target, 255)
		pkt := tp.expectPacket()
		na, ok := pkt.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
		if !ok {
			t.Fatalf("%s: no neighbour advertisement: %v", target, pkt)
		}
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if !net.IP(na.TargetAddress).Equal(target.AsSlice()) || !ip.SrcIP.Equal(target.AsSlice()) || !ip.DstIP.Equal(testGuestLL6.AsSlice()) || ip.HopLimit != 255 {
			t.Errorf("%s: NA %s -> %s hop limit %d, target %s", target, ip.SrcIP, ip.DstIP, ip.HopLimit, net.IP(na.TargetAddress))
		}
		if !na.Solicited() || !na.Override() || !na.Router() {
			t.Errorf("%s: flags %#x, want R, S and O", target, na.Flags)
		}
		if len(na.Options) != 1 || na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, defaultOurMAC[:]) {
			t.Errorf("%s: options %v, want our MAC as target link-layer address", target, na.Options)
		}
		checkICMPv6Checksum(t, pkt)
	}
}

func TestNeighborSolicitationIgnored(t *testing.T) {
	tp := newTestPasta(t, nil)
	neighborSolicitation(tp, netip.IPv6Unspecified(), testGuest6, 255) // duplicate address detection
	neighborSolicitation(tp, testGuestLL6, testGuest6, 255)            // the guest's own address
	neighborSolicitation(tp, testGuestLL6, testGW6, 64)                // not from on-link (RFC 4861 7.1.1)
	tp.expectNoFrame(50 * time.Millisecond)
}

// checkICMPv6Checksum verifies the checksum of an ICMPv6 message pasta sent.
func checkICMPv6Checksum(t *testing.T, pkt gopacket.Packet) {
	t.Helper()
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	if sum := foldChecksum(sumBytes(ip.Payload, pseudoHeaderSum(src, dst, protoICMPv6, len(ip.Payload)))); sum != 0 {
		t.Errorf("ICMPv6 checksum does not verify (residue %#x)", sum)
	}
}
