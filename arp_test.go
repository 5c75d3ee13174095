package main

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

func arpRequest(sender, target netip.Addr) *layers.ARP {
	return &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: testGuestMAC, SourceProtAddress: sender.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice(),
	}
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func TestARPAnswersForEveryOtherAddress(t *testing.T) {
	tp := newTestPasta(t, nil)
	for _, target := range []string{"10.0.2.2", "10.0.2.3", "192.0.2.7"} {
		tp.inject(ethTo(broadcast, layers.EthernetTypeARP), arpRequest(testGuest4, netip.MustParseAddr(target)))
		pkt := tp.expectPacket()
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		arp, ok := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
		if !ok {
			t.Fatalf("%s: reply is not ARP: %v", target, pkt)
		}
		if arp.Operation != layers.ARPReply {
			t.Errorf("%s: operation %d, want reply", target, arp.Operation)
		}
		if !bytes.Equal(eth.DstMAC, testGuestMAC) || !bytes.Equal(eth.SrcMAC, defaultOurMAC[:]) {
			t.Errorf("%s: Ethernet %s -> %s", target, eth.SrcMAC, eth.DstMAC)
		}
		if !bytes.Equal(arp.SourceHwAddress, defaultOurMAC[:]) || !bytes.Equal(arp.SourceProtAddress, netip.MustParseAddr(target).AsSlice()) {
			t.Errorf("%s: says %v is at %v", target, net.IP(arp.SourceProtAddress), net.HardwareAddr(arp.SourceHwAddress))
		}
		if !bytes.Equal(arp.DstHwAddress, testGuestMAC) || !bytes.Equal(arp.DstProtAddress, testGuest4.AsSlice()) {
			t.Errorf("%s: reply addressed to %v/%v", target, net.IP(arp.DstProtAddress), net.HardwareAddr(arp.DstHwAddress))
		}
	}
}

func TestARPIgnoresProbesAndTheGuestsOwnAddress(t *testing.T) {
	tp := newTestPasta(t, nil)
	// RFC 5227 probe: sender 0.0.0.0.
	tp.inject(ethTo(broadcast, layers.EthernetTypeARP), arpRequest(netip.IPv4Unspecified(), testGuest4))
	// Gratuitous announcement: sender == target.
	tp.inject(ethTo(broadcast, layers.EthernetTypeARP), arpRequest(testGuest4, testGuest4))
	// A question for the guest's own address.
	tp.inject(ethTo(broadcast, layers.EthernetTypeARP), arpRequest(netip.MustParseAddr("10.0.2.9"), testGuest4))
	// A reply, not a request.
	reply := arpRequest(testGuest4, testGW4)
	reply.Operation = layers.ARPReply
	tp.inject(ethTo(broadcast, layers.EthernetTypeARP), reply)
	tp.expectNoFrame(50 * time.Millisecond)
}

func TestGuestMACIsLearnt(t *testing.T) {
	tp := newTestPasta(t, nil)
	if tp.c.guestMAC != broadcastMAC {
		t.Fatalf("guest MAC before any frame: %v", net.HardwareAddr(tp.c.guestMAC[:]))
	}
	tp.inject(ethTo(broadcast, layers.EthernetTypeARP), arpRequest(testGuest4, testGW4))
	if !bytes.Equal(tp.c.guestMAC[:], testGuestMAC) {
		t.Fatalf("guest MAC %v, want %v", net.HardwareAddr(tp.c.guestMAC[:]), testGuestMAC)
	}
}
