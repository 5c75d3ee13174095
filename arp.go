package main

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// ARP (RFC 826): every address on the link but the guest's own is "us", so
// the guest sends everything to our MAC and we see it all.

const (
	arpLen      = 28 // Ethernet/IPv4 ARP packet
	arpOpReply  = 2
	arpHTypeEth = 1
)

// handleARP answers an ARP request with our MAC address, unless it asks for
// the guest's own address (a duplicate address probe, RFC 5227 section 2.1.1,
// or a gratuitous announcement, section 2.3).
func (c *ctx) handleARP() {
	a := &c.parser.arp
	if a.Operation != layers.ARPRequest || a.AddrType != layers.LinkTypeEthernet ||
		a.Protocol != layers.EthernetTypeIPv4 || a.HwAddressSize != 6 || a.ProtAddressSize != 4 {
		c.stats.unsupported++
		return
	}
	target := addrFrom4(a.DstProtAddress)
	sender := addrFrom4(a.SourceProtAddress)
	if target == sender || target == c.ip4.addr || sender.IsUnspecified() {
		return
	}
	c.sendARPReply(a.SourceHwAddress, sender, target)
}

// sendARPReply tells the asker (mac, ip) that target is at our MAC.
func (c *ctx) sendARPReply(mac []byte, ip, target netip.Addr) {
	f := c.frame()
	copy(f[0:6], mac)
	copy(f[6:12], c.ourMAC[:])
	binary.BigEndian.PutUint16(f[12:14], etherTypeARP)
	b := f[ethHdrLen:]
	binary.BigEndian.PutUint16(b[0:2], arpHTypeEth)
	binary.BigEndian.PutUint16(b[2:4], etherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], arpOpReply)
	t4, s4 := target.As4(), ip.As4()
	copy(b[8:14], c.ourMAC[:])
	copy(b[14:18], t4[:])
	copy(b[18:24], mac)
	copy(b[24:28], s4[:])
	c.sendFrame(ethHdrLen + arpLen)
}
