package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"

	"github.com/gopacket/gopacket/layers"
)

// Neighbour Discovery (RFC 4861). Like ARP for IPv4, every address on the
// link but the guest's own resolves to our MAC.
//
// We are also the guest's router: router advertisements carry the /64 of
// the guest's address for SLAAC (RFC 4862), the MTU and, when configured,
// the DNS servers and search list (RFC 8106), with the M flag pointing to
// DHCPv6 for the address itself. They answer router solicitations and go
// out unsolicited at start and then every few minutes, as RFC 4861 section
// 6.2.4 says (C pasta skips the ones at start: its first unsolicited
// advertisement comes 200 to 600 s after it starts). With --config-net
// the namespace is configured already and C pasta sends none (SLAAC would
// add an address --config-net doesn't); neither do we.

const (
	icmp6HdrLen             = 4 // type, code, checksum (RFC 4443 section 2.1)
	icmp6TypeRouterAdvert   = 134
	icmp6TypeNeighborAdvert = 136
	ndOptSourceLinkAddr     = 1          // RFC 4861 section 4.6.1
	ndOptTargetLinkAddr     = 2          // RFC 4861 section 4.6.1
	ndOptPrefixInfo         = 3          // RFC 4861 section 4.6.2
	ndOptMTU                = 5          // RFC 4861 section 4.6.4
	ndOptRDNSS              = 25         // RFC 8106 section 5.1
	ndOptDNSSL              = 31         // RFC 8106 section 5.2
	ndOptUnit               = 8          // option lengths count 8 octets (RFC 4861 section 4.6)
	naFlagRouter            = 0x80000000 // RFC 4861 section 4.4: R
	naFlagSolicited         = 0x40000000 // S
	naFlagOverride          = 0x20000000 // O
	ndInfinite              = 0xffffffff // RFC 4861 section 4.6.2, RFC 8106 section 5.1

	// Router advertisement fields (RFC 4861 section 4.2) as C pasta sets
	// them; reachable time and retransmission timer are left unspecified.
	raCurHopLimit    = 255
	raFlagManaged    = 0x80  // M: addresses from DHCPv6
	raRouterLifetime = 65535 // seconds, the longest RFC 8319 allows
	prefixFlagOnLink = 0x80  // RFC 4861 section 4.6.2: L
	prefixFlagAuto   = 0x40  // A: for SLAAC
	slaacPrefixLen   = 64    // RFC 4862 section 5.5.3, RFC 2464 section 4: 64-bit interface identifiers

	// Router constants (RFC 4861 section 10) and interval defaults
	// (section 6.2.1: MaxRtrAdvInterval 600 s, MinRtrAdvInterval 0.33 of it).
	maxInitialRtrAdvertisements = 3
	maxInitialRtrAdvertInterval = int64(16e9)
	minDelayBetweenRAs          = int64(3e9)
	minRtrAdvInterval           = int64(198e9)
	maxRtrAdvInterval           = int64(600e9)
)

var (
	allNodes         = netip.MustParseAddr("ff02::1") // RFC 4291 section 2.7.1
	allNodesMAC      = []byte{0x33, 0x33, 0, 0, 0, 1} // RFC 2464 section 7
	defaultLinkLocal = netip.MustParseAddr("fe80::1") // pasta(1), -g: the IPv6 gateway of last resort
)

// routerAdvertiser schedules unsolicited router advertisements.
type routerAdvertiser struct {
	periodic      bool  // unsolicited ones are sent (not in frame tests, unless asked)
	next          int64 // c.now when the next unsolicited one is due; 0: now
	sent          int   // unsolicited ones sent so far
	lastMulticast int64 // c.now of the last one to all nodes
}

// handleNeighborSolicitation answers with a neighbour advertisement for our
// MAC. Solicitations from the unspecified address are duplicate address
// detection (RFC 4862 section 5.4.2): the guest is checking its own
// address, and nobody else must answer.
func (c *ctx) handleNeighborSolicitation() {
	if c.cfg.noNDP {
		c.stats.unsupported++
		return
	}
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
	t := target.As16()
	b := c.icmp6Body()[:0]
	b = binary.BigEndian.AppendUint32(b, naFlagRouter|naFlagSolicited|naFlagOverride)
	b = append(b, t[:]...)
	b = appendNDOption(b, ndOptTargetLinkAddr, c.ourMAC[:])
	c.sendICMPv6(dstMAC, target, dst, icmp6TypeNeighborAdvert, len(b))
}

// routerAdvertsEnabled tells whether we send router advertisements.
func (c *ctx) routerAdvertsEnabled() bool {
	return c.ip6.enabled && !c.cfg.noNDP && !c.cfg.noRA && !c.cfg.configNet
}

// handleRouterSolicitation answers with a router advertisement, unicast to
// the soliciting host, or to all nodes if it has no address yet (RFC 4861
// section 6.2.6). Like C pasta, we answer at once: the random delay that
// section asks for keeps the routers of a link from answering together,
// and we are the only one on ours.
func (c *ctx) handleRouterSolicitation() {
	if !c.routerAdvertsEnabled() {
		c.stats.unsupported++
		return
	}
	p := c.parser
	src := addrFrom16(p.ip6.SrcIP)
	// RFC 4861 section 6.1.1: hop limit 255, code 0, and no source
	// link-layer address option from the unspecified address.
	if p.ip6.HopLimit != 255 || p.icmp6.TypeCode.Code() != 0 || src.IsMulticast() ||
		(src.IsUnspecified() && hasNDOption(p.rs.Options, layers.ICMPv6OptSourceAddress)) {
		c.dropControl("NDP: invalid router solicitation")
		return
	}
	if src.IsUnspecified() {
		c.sendMulticastRouterAdvert() // C pasta sends it to ::, where nobody gets it
		return
	}
	c.sendRouterAdvert(p.eth.SrcMAC, src)
}

func hasNDOption(opts layers.ICMPv6Options, typ layers.ICMPv6Opt) bool {
	for _, o := range opts {
		if o.Type == typ {
			return true
		}
	}
	return false
}

// sendPeriodicRouterAdvert sends the unsolicited advertisements of RFC
// 4861 section 6.2.4 when one is due: a first one at start, the next ones
// at most MAX_INITIAL_RTR_ADVERT_INTERVAL apart, then one at a random
// interval between MinRtrAdvInterval and MaxRtrAdvInterval.
func (c *ctx) sendPeriodicRouterAdvert() {
	if !c.ra.periodic || !c.routerAdvertsEnabled() || c.now < c.ra.next {
		return
	}
	c.sendMulticastRouterAdvert()
	c.ra.sent++
	interval := minRtrAdvInterval + rand.Int64N(maxRtrAdvInterval-minRtrAdvInterval)
	if c.ra.sent < maxInitialRtrAdvertisements {
		interval = min(interval, maxInitialRtrAdvertInterval)
	}
	c.ra.next = c.now + interval
}

// sendMulticastRouterAdvert sends an advertisement to all nodes, at most
// one every MIN_DELAY_BETWEEN_RAS (RFC 4861 section 6.2.6).
func (c *ctx) sendMulticastRouterAdvert() {
	if c.ra.lastMulticast != 0 && c.now-c.ra.lastMulticast < minDelayBetweenRAs {
		return
	}
	c.ra.lastMulticast = c.now
	c.sendRouterAdvert(allNodesMAC, allNodes)
}

// sendRouterAdvert sends our router advertisement (RFC 4861 section 4.2)
// with its options in C pasta's order. Unlike C pasta, we clear the bits of
// the prefix past its length, as section 4.6.2 requires.
func (c *ctx) sendRouterAdvert(dstMAC []byte, dst netip.Addr) {
	b := append(c.icmp6Body()[:0], raCurHopLimit, raFlagManaged)
	b = binary.BigEndian.AppendUint16(b, raRouterLifetime)
	b = binary.BigEndian.AppendUint64(b, 0) // reachable time and retransmission timer
	if c.ip6.addr.IsValid() && !c.ip6.addr.IsLinkLocalUnicast() {
		b = appendPrefixInfo(b, netip.PrefixFrom(c.ip6.addr, slaacPrefixLen).Masked())
	}
	b = appendNDOption(b, ndOptSourceLinkAddr, c.ourMAC[:])
	if c.mtu != 0 { // pasta(1), -m: 0 disables the MTU option
		b = appendNDOption(b, ndOptMTU, binary.BigEndian.AppendUint32([]byte{0, 0}, uint32(c.mtu)))
	}
	if len(c.dns.guest6) > 0 {
		b = appendNDOption(b, ndOptRDNSS, append(lifetimeField(), concatAddrs(c.dns.guest6)...))
	}
	if len(c.dns.searchWire) > 0 {
		b = appendNDOption(b, ndOptDNSSL, append(lifetimeField(), c.dns.searchWire...))
	}
	c.sendICMPv6(dstMAC, c.ourLinkLocal(), dst, icmp6TypeRouterAdvert, len(b))
	if debugOn() {
		debugf("NDP: router advertisement to %s", dst)
	}
}

// lifetimeField returns the reserved octets and the infinite lifetime that
// start the RDNSS and DNSSL options (RFC 8106 sections 5.1 and 5.2), as C
// pasta sends them.
func lifetimeField() []byte {
	return binary.BigEndian.AppendUint32([]byte{0, 0}, ndInfinite)
}

// appendPrefixInfo appends a Prefix Information option (RFC 4861 section
// 4.6.2) for SLAAC: on-link, autonomous, infinite lifetimes.
func appendPrefixInfo(b []byte, prefix netip.Prefix) []byte {
	p := prefix.Addr().As16()
	data := []byte{byte(prefix.Bits()), prefixFlagOnLink | prefixFlagAuto}
	data = binary.BigEndian.AppendUint32(data, ndInfinite) // valid lifetime
	data = binary.BigEndian.AppendUint32(data, ndInfinite) // preferred lifetime
	data = binary.BigEndian.AppendUint32(data, 0)          // reserved
	return appendNDOption(b, ndOptPrefixInfo, append(data, p[:]...))
}

// appendNDOption appends an option (RFC 4861 section 4.6): type, length in
// units of 8 octets, data, then zeros up to a whole unit (as RFC 8106
// section 5.2 asks for the DNSSL option).
func appendNDOption(b []byte, typ byte, data []byte) []byte {
	units := (2 + len(data) + ndOptUnit - 1) / ndOptUnit
	b = append(b, typ, byte(units))
	b = append(b, data...)
	for range units*ndOptUnit - 2 - len(data) {
		b = append(b, 0)
	}
	return b
}

// icmp6Body returns where the body of an ICMPv6 message, after type, code
// and checksum, goes in the transmit buffer; write it there, then call
// sendICMPv6.
func (c *ctx) icmp6Body() []byte {
	return c.frame()[ethHdrLen+ipv6HdrLen+icmp6HdrLen:]
}

// sendICMPv6 sends the ICMPv6 message of type typ, code 0, whose n body
// octets were written to icmp6Body, from src to dst at dstMAC.
func (c *ctx) sendICMPv6(dstMAC []byte, src, dst netip.Addr, typ uint8, n int) {
	f := c.frame()
	copy(f[0:6], dstMAC)
	copy(f[6:12], c.ourMAC[:])
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv6)
	length := icmp6HdrLen + n
	putIPv6Header(f[ethHdrLen:], src, dst, protoICMPv6, length)
	m := f[ethHdrLen+ipv6HdrLen : ethHdrLen+ipv6HdrLen+length]
	m[0], m[1], m[2], m[3] = typ, 0, 0, 0
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(src, dst, m))
	c.sendFrame(ethHdrLen + ipv6HdrLen + length)
}

// icmp6Checksum computes the ICMPv6 checksum (RFC 4443 section 2.3) of msg,
// whose checksum field must be zero.
func icmp6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	return foldChecksum(sumBytes(msg, pseudoHeaderSum(src, dst, protoICMPv6, len(msg))))
}

// setupAutoconfig works out what DHCP, DHCPv6 and router advertisements
// tell the guest, and starts the unsolicited advertisements.
func (c *ctx) setupAutoconfig() {
	c.ip6.hostLL = hostLinkLocal(c.ip6.hostIf)
	c.dns = resolveDNS(c.cfg, &c.ip4, &c.ip6, readResolvConf(resolvConfPath))
	c.ra.periodic = true
}

// ourLinkLocal is the address router advertisements and DHCPv6 replies
// come from, as in C pasta: the gateway if it is link-local, else the
// link-local address of the host's upstream interface, else fe80::1.
func (c *ctx) ourLinkLocal() netip.Addr {
	switch {
	case c.ip6.gw.IsLinkLocalUnicast():
		return c.ip6.gw
	case c.ip6.hostLL.IsValid():
		return c.ip6.hostLL
	}
	return defaultLinkLocal
}

// hostLinkLocal returns the link-local address of a host interface, if it
// has one.
func hostLinkLocal(ifname string) netip.Addr {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ll, ok := netip.AddrFromSlice(ipn.IP); ok && ll.Is6() && ll.IsLinkLocalUnicast() {
				return ll
			}
		}
	}
	return netip.Addr{}
}
