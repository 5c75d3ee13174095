package main

import (
	"encoding/binary"
	"net/netip"
)

// Neighbour Discovery (RFC 4861). Like ARP for IPv4, every address on the
// link but the guest's own resolves to our MAC.

const (
	icmp6TypeNeighborAdvert = 136
	ndOptTargetLinkAddr     = 2
	naFlagRouter            = 0x80000000 // RFC 4861 section 4.4: R
	naFlagSolicited         = 0x40000000 // S
	naFlagOverride          = 0x20000000 // O
	naLen                   = 24 + 8     // header with target, plus the link-layer address option
)

// handleNeighborSolicitation answers with a neighbour advertisement for our
// MAC. Solicitations from the unspecified address are duplicate address
// detection (RFC 4862 section 5.4.2): the guest is checking its own
// address, and nobody else must answer.
func (c *ctx) handleNeighborSolicitation() {
	p := c.parser
	src := addrFrom16(p.ip6.SrcIP)
	target := addrFrom16(p.ns.TargetAddress)
	if !src.IsValid() || src.IsUnspecified() || !target.IsValid() || target == c.ip6.addr || target == src {
		return
	}
	// RFC 4861 section 7.1.1: hop limit 255, so it came from on-link.
	if p.ip6.HopLimit != 255 {
		c.stats.malformed++
		return
	}
	c.sendNeighborAdvert(p.eth.SrcMAC, src, target)
}

// sendNeighborAdvert sends a solicited advertisement (RFC 4861 section
// 7.2.4) from target to dst, with our MAC as target link-layer address.
// The router flag is set: we are the guest's router too.
func (c *ctx) sendNeighborAdvert(dstMAC []byte, dst, target netip.Addr) {
	f := c.frame()
	copy(f[0:6], dstMAC)
	copy(f[6:12], c.ourMAC[:])
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv6)
	putIPv6Header(f[ethHdrLen:], target, dst, protoICMPv6, naLen)
	m := f[ethHdrLen+ipv6HdrLen:]
	m[0], m[1] = icmp6TypeNeighborAdvert, 0
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint32(m[4:8], naFlagRouter|naFlagSolicited|naFlagOverride)
	t := target.As16()
	copy(m[8:24], t[:])
	m[24], m[25] = ndOptTargetLinkAddr, 1 // length in units of 8 bytes
	copy(m[26:32], c.ourMAC[:])
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(target, dst, m[:naLen]))
	c.sendFrame(ethHdrLen + ipv6HdrLen + naLen)
}

// icmp6Checksum computes the ICMPv6 checksum (RFC 4443 section 2.3) of msg,
// whose checksum field must be zero.
func icmp6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	return foldChecksum(sumBytes(msg, pseudoHeaderSum(src, dst, protoICMPv6, len(msg))))
}
