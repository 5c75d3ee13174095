package main

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// DHCP server (RFC 2131) for the one guest. It hands out what --config-net
// would set: the address, netmask, gateway and MTU, and DNS servers, search
// list and names when asked to. There is one address and one client, so
// there are no leases to keep: the lease is infinite (RFC 2131 section
// 3.3), whatever the guest asks for, and the server identifier is the
// gateway, as in C pasta.
//
// Replies follow C pasta's choices, except where it departs from RFC 2131:
// we NAK a request for another address (C pasta ACKs its own instead), stay
// silent when the guest chose another server (C pasta ACKs), answer
// DHCPINFORM (C pasta ignores it), broadcast at the link layer too when the
// broadcast flag asks for it, and compute the UDP checksum.

const (
	dhcpServerPort     = 67 // RFC 2131 section 4.1
	dhcpClientPort     = 68
	dhcpFlagBroadcast  = 0x8000     // RFC 2131 section 2, figure 2
	dhcpInfiniteLease  = 0xffffffff // RFC 2131 section 3.3
	dhcpMinMessageLen  = 300        // RFC 1542 section 2.1: the minimal BOOTP message
	dhcpMaxOptionLen   = 255        // one octet of length (RFC 2132 section 2)
	dhcpOptClasslessRt = 121        // RFC 3442
	dhcpOptClientFQDN  = 81         // RFC 4702
	fqdnFlagE          = 0x04       // RFC 4702 section 2.1: the name is in wire format
	fqdnRcodeServer    = 255        // RFC 4702 section 2.2: RCODE1 and RCODE2 from a server
)

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// dhcpServer keeps the decoder of guest messages, reused between them.
type dhcpServer struct {
	msg layers.DHCPv4
}

// dhcpOptions is the data of each option of a reply, by code; nil: absent.
type dhcpOptions [256][]byte

// handleDHCP answers a DHCP message from the guest (UDP to port 67).
func (c *ctx) handleDHCP() {
	p := c.parser
	if c.cfg.noDHCP || !c.ip4.gw.IsValid() { // pasta(1): no DHCP without a gateway
		c.stats.unsupported++
		return
	}
	m := &c.dhcp.msg
	if p.udp.SrcPort != dhcpClientPort || m.DecodeFromBytes(p.udp.Payload, gopacket.NilDecodeFeedback) != nil {
		c.dropControl("DHCP: malformed message")
		return
	}
	typ, ok := dhcpMessageType(m)
	if !ok || m.Operation != layers.DHCPOpRequest || !isZero4(m.RelayAgentIP) {
		// Not DHCP (BOOTP, or no message type), or relayed: there is no
		// relay agent on our link (RFC 2131 section 4.1, giaddr).
		c.dropControl("DHCP: not a DHCP request from the guest")
		return
	}
	switch typ {
	case layers.DHCPMsgTypeDiscover:
		c.sendDHCPLease(m, layers.DHCPMsgTypeOffer)
	case layers.DHCPMsgTypeRequest:
		c.handleDHCPRequest(m)
	case layers.DHCPMsgTypeInform:
		c.handleDHCPInform(m)
	case layers.DHCPMsgTypeRelease, layers.DHCPMsgTypeDecline:
		// Nothing to free or to mark: the address stays the guest's.
		if debugOn() {
			debugf("DHCP: %s from %s", typ, m.ClientHWAddr)
		}
	default:
		c.dropControl("DHCP: unexpected message type")
	}
}

// forDHCPServer tells whether a datagram to port 67 at dst is for our
// server: broadcast, or unicast to the server identifier (RFC 2131 section
// 4.4.5: a client renewing its lease).
func (c *ctx) forDHCPServer(dst netip.Addr) bool {
	return dst == limitedBroadcast || dst == c.ip4.gw
}

// dropControl counts and logs a malformed or unexpected control message.
func (c *ctx) dropControl(why string) {
	c.stats.malformed++
	if debugOn() {
		debugf("%s: dropped", why)
	}
}

// dhcpMessageType returns the DHCP message type (RFC 2132 section 9.6).
func dhcpMessageType(m *layers.DHCPv4) (layers.DHCPMsgType, bool) {
	t := dhcpOption(m, layers.DHCPOptMessageType)
	if len(t) != 1 {
		return 0, false
	}
	return layers.DHCPMsgType(t[0]), true
}

// dhcpOption returns the data of an option, concatenating the instances of
// an option split over several (RFC 3396).
func dhcpOption(m *layers.DHCPv4, code layers.DHCPOpt) []byte {
	var data []byte
	for _, o := range m.Options {
		if o.Type == code {
			data = append(data, o.Data...)
		}
	}
	return data
}

// dhcpAddrOption returns an option holding one IPv4 address, if present
// and well-formed.
func dhcpAddrOption(m *layers.DHCPv4, code layers.DHCPOpt) (netip.Addr, bool) {
	a := addrFrom4(dhcpOption(m, code))
	return a, a.IsValid()
}

func isZero4(ip []byte) bool { return len(ip) != 4 || binary.BigEndian.Uint32(ip) == 0 }

// handleDHCPRequest ACKs a request for the guest's address and NAKs one for
// any other (RFC 2131 section 4.3.2). The address asked for is the
// "requested IP address" option (SELECTING and INIT-REBOOT states), else
// ciaddr (RENEWING and REBINDING).
func (c *ctx) handleDHCPRequest(m *layers.DHCPv4) {
	if sid, ok := dhcpAddrOption(m, layers.DHCPOptServerID); ok && sid != c.ip4.gw {
		return // RFC 2131 section 4.3.2: the client chose another server
	}
	want, ok := dhcpAddrOption(m, layers.DHCPOptRequestIP)
	if !ok {
		want = addrFrom4(m.ClientIP)
	}
	if want != c.ip4.addr {
		c.sendDHCPNak(m)
		return
	}
	c.sendDHCPLease(m, layers.DHCPMsgTypeAck)
}

// handleDHCPInform ACKs a DHCPINFORM with the configuration but no lease
// (RFC 2131 section 4.3.5). The client has an address: ciaddr.
func (c *ctx) handleDHCPInform(m *layers.DHCPv4) {
	if isZero4(m.ClientIP) {
		c.dropControl("DHCP: inform without ciaddr")
		return
	}
	opts := c.dhcpConfigOptions()
	opts[layers.DHCPOptLeaseTime] = nil // RFC 2131 section 4.3.5: MUST NOT send one
	c.sendDHCPReply(m, layers.DHCPMsgTypeAck, netip.IPv4Unspecified(), &opts)
}

// sendDHCPLease offers or acknowledges the guest's address with the whole
// configuration (RFC 2131 section 4.3.1, table 3).
func (c *ctx) sendDHCPLease(m *layers.DHCPv4, typ layers.DHCPMsgType) {
	opts := c.dhcpConfigOptions()
	c.sendDHCPReply(m, typ, c.ip4.addr, &opts)
	if debugOn() {
		debugf("DHCP: %s %s to %s", typ, c.ip4.addr, m.ClientHWAddr)
	}
}

// sendDHCPNak tells the client its address is wrong (RFC 2131 section
// 4.3.2): a DHCPNAK with only the server identifier.
func (c *ctx) sendDHCPNak(m *layers.DHCPv4) {
	var opts dhcpOptions
	opts[layers.DHCPOptServerID] = c.ip4.gw.AsSlice()
	c.sendDHCPReply(m, layers.DHCPMsgTypeNak, netip.IPv4Unspecified(), &opts)
	if debugOn() {
		debugf("DHCP: NAK to %s", m.ClientHWAddr)
	}
}

// dhcpConfigOptions returns the options of a DHCPOFFER or DHCPACK.
func (c *ctx) dhcpConfigOptions() dhcpOptions {
	var o dhcpOptions
	gw := c.ip4.gw.AsSlice()
	o[layers.DHCPOptSubnetMask] = netmask4(c.ip4.prefixLen)
	o[layers.DHCPOptRouter] = gw
	o[layers.DHCPOptServerID] = gw
	o[layers.DHCPOptLeaseTime] = binary.BigEndian.AppendUint32(nil, dhcpInfiniteLease)
	if c.mtu != 0 { // pasta(1), -m: 0 disables the MTU option
		o[layers.DHCPOptInterfaceMTU] = binary.BigEndian.AppendUint16(nil, uint16(c.mtu))
	}
	o[layers.DHCPOptDNS] = concatAddrs(c.dns.guest4)
	// RFC 3397 section 2 lets names be compressed to save space (RFC 1035
	// section 4.1.4); they go whole, which every client reads. C pasta's
	// compression is wrong: after "example.org", "test.example" becomes
	// "test" and a pointer to "example.org".
	o[layers.DHCPOptDomainSearch] = c.dns.searchWire
	if c.cfg.hostname != "" {
		o[layers.DHCPOptHostname] = []byte(c.cfg.hostname)
	}
	o[dhcpOptClientFQDN] = fqdnOption4(c.cfg.fqdn)
	if !netip.PrefixFrom(c.ip4.addr, c.ip4.prefixLen).Masked().Contains(c.ip4.gw) {
		o[dhcpOptClasslessRt] = classlessRoutesToGateway(c.ip4.gw)
	}
	return o
}

// netmask4 returns the subnet mask for a prefix length (RFC 2132 section
// 3.3).
func netmask4(bits int) []byte {
	return binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-bits))
}

// concatAddrs returns addresses back to back, as options listing servers
// carry them; nil for none.
func concatAddrs(addrs []netip.Addr) []byte {
	var b []byte
	for _, a := range addrs {
		b = append(b, a.AsSlice()...)
	}
	return b
}

// fqdnOption4 returns the data of the Client FQDN option (RFC 4702 section
// 2) carrying name, or nil for none. Like C pasta, only the E flag is set.
func fqdnOption4(name string) []byte {
	b, ok := appendDomainName([]byte{fqdnFlagE, fqdnRcodeServer, fqdnRcodeServer}, name)
	if !ok {
		return nil
	}
	return b
}

// classlessRoutesToGateway returns, for a gateway outside the guest's
// subnet, the Classless Static Route option (RFC 3442) C pasta sends: a
// host route to the gateway, on-link (router 0.0.0.0), and the default
// route through it. A client that understands the option ignores the
// Router option (RFC 3442, "DHCP Client Behavior"), so the default route
// has to be in it.
func classlessRoutesToGateway(gw netip.Addr) []byte {
	b := appendClasslessRoute(nil, netip.PrefixFrom(gw, 32), netip.IPv4Unspecified())
	return appendClasslessRoute(b, netip.PrefixFrom(netip.IPv4Unspecified(), 0), gw)
}

// appendClasslessRoute appends one route in RFC 3442 encoding: the prefix
// length, the significant octets of the destination, then the router.
func appendClasslessRoute(b []byte, dst netip.Prefix, router netip.Addr) []byte {
	d, r := dst.Masked().Addr().As4(), router.As4()
	b = append(b, byte(dst.Bits()))
	b = append(b, d[:(dst.Bits()+7)/8]...)
	return append(b, r[:]...)
}

// sendDHCPReply sends a reply of type typ to m, assigning yiaddr, with the
// options in opts.
func (c *ctx) sendDHCPReply(m *layers.DHCPv4, typ layers.DHCPMsgType, yiaddr netip.Addr, opts *dhcpOptions) {
	r := &layers.DHCPv4{
		Operation:    layers.DHCPOpReply,
		HardwareType: m.HardwareType,
		HardwareLen:  m.HardwareLen,
		Xid:          m.Xid,
		Flags:        m.Flags,
		YourClientIP: yiaddr.AsSlice(),
		ClientHWAddr: m.ClientHWAddr,
		Options:      orderedDHCPOptions(typ, opts, dhcpOption(m, layers.DHCPOptParamsRequest)),
	}
	if typ == layers.DHCPMsgTypeAck { // RFC 2131 table 3: ciaddr is 0 in other replies
		r.ClientIP = m.ClientIP
	}
	buf := gopacket.NewSerializeBuffer()
	if err := r.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
		c.stats.txErrors++
		return
	}
	dstMAC, dst := c.dhcpReplyDestination(m, typ, yiaddr)
	payload := c.udpPayload(c.ip4.gw)
	n := copy(payload, buf.Bytes())
	if n < dhcpMinMessageLen {
		clear(payload[n:dhcpMinMessageLen]) // zero padding, RFC 1542 section 2.1
		n = dhcpMinMessageLen
	}
	c.sendUDP(dstMAC, netip.AddrPortFrom(c.ip4.gw, dhcpServerPort), netip.AddrPortFrom(dst, dhcpClientPort), n)
}

// dhcpReplyDestination chooses where a reply goes (RFC 2131 section 4.1,
// giaddr being zero): a DHCPNAK, or any reply when the client set the
// broadcast flag, is broadcast; other replies go to ciaddr if the client
// has one, else to yiaddr, at the client's MAC address.
func (c *ctx) dhcpReplyDestination(m *layers.DHCPv4, typ layers.DHCPMsgType, yiaddr netip.Addr) ([]byte, netip.Addr) {
	switch {
	case typ == layers.DHCPMsgTypeNak || m.Flags&dhcpFlagBroadcast != 0:
		return broadcastMAC[:], limitedBroadcast
	case !isZero4(m.ClientIP):
		return c.parser.eth.SrcMAC, addrFrom4(m.ClientIP)
	default:
		return c.parser.eth.SrcMAC, yiaddr
	}
}

// orderedDHCPOptions lays out the options of a reply: the message type
// first, then those the client asked for in the order it asked (RFC 2132
// section 9.8), then the others by code, as C pasta does. An option longer
// than 255 octets is split into several, in order (RFC 3396).
func orderedDHCPOptions(typ layers.DHCPMsgType, opts *dhcpOptions, requested []byte) layers.DHCPOptions {
	out := layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(typ)})}
	emit := func(code byte) {
		for data := opts[code]; len(data) > 0; {
			n := min(len(data), dhcpMaxOptionLen)
			out = append(out, layers.NewDHCPOption(layers.DHCPOpt(code), data[:n]))
			data = data[n:]
		}
		opts[code] = nil
	}
	for _, code := range requested {
		emit(code)
	}
	for code := range opts {
		emit(byte(code))
	}
	return out
}
