package main

import (
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Header sizes and fields we build by hand on the data path.
const (
	ethHdrLen      = 14
	ipv4HdrLen     = 20
	ipv6HdrLen     = 40
	icmpHdrLen     = 8
	udpHdrLen      = 8
	ttlDefault     = 255 // like C pasta: the guest sees us as its neighbour
	ipv4FlagDF     = 0x4000
	etherTypeIPv4  = 0x0800
	etherTypeARP   = 0x0806
	etherTypeIPv6  = 0x86dd
	protoICMP      = 1
	protoTCP       = 6
	protoUDP       = 17
	protoICMPv6    = 58
	maxFrameLength = 65535 + ethHdrLen
)

// frameParser decodes guest frames into preallocated layers: decoding
// allocates nothing, and the layers point into the frame buffer.
type frameParser struct {
	dlp     *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType

	eth   layers.Ethernet
	arp   layers.ARP
	ip4   layers.IPv4
	ip6   layers.IPv6
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6
	echo6 layers.ICMPv6Echo
	ns    layers.ICMPv6NeighborSolicitation
	rs    layers.ICMPv6RouterSolicitation
	tcp   layers.TCP
	udp   layers.UDP
}

func newFrameParser() *frameParser {
	p := &frameParser{decoded: make([]gopacket.LayerType, 0, 8)}
	// The decoders are found by layer type in a slice indexed by it
	// (gopacket's fastest container), not in the parser's default map: a
	// map lookup per layer was 1% of pasta's CPU time receiving UDP.
	decoders := gopacket.DecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, d := range []gopacket.DecodingLayer{&p.eth, &p.arp, &p.ip4, &p.ip6, &p.icmp4, &p.icmp6, &p.echo6, &p.ns, &p.rs, &p.tcp, &p.udp} {
		decoders = decoders.Put(d)
	}
	p.dlp = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet)
	p.dlp.SetDecodingLayerContainer(decoders)
	// Stop quietly at layers we don't decode (application payloads,
	// extension headers): the handlers look at what was decoded.
	p.dlp.IgnoreUnsupported = true
	// Decoders return errors for malformed input; a panic in one would be
	// a bug we want to see in tests, not hidden.
	p.dlp.IgnorePanic = true
	return p
}

// parse decodes frame and reports whether it is well-formed enough to
// handle: every decoded layer consistent and nothing truncated.
func (p *frameParser) parse(frame []byte) bool {
	if err := p.dlp.DecodeLayers(frame, &p.decoded); err != nil {
		return false
	}
	if p.dlp.Truncated || len(p.decoded) == 0 {
		return false
	}
	// The decoder stops without an error when a frame ends right after
	// the Ethernet header: that is a truncated frame too.
	if len(p.decoded) == 1 {
		switch p.eth.EthernetType {
		case layers.EthernetTypeIPv4, layers.EthernetTypeIPv6, layers.EthernetTypeARP:
			return false
		}
	}
	return true
}

// has tells whether a layer type was decoded from the last frame.
func (p *frameParser) has(t gopacket.LayerType) bool {
	for _, d := range p.decoded {
		if d == t {
			return true
		}
	}
	return false
}

func addrFrom4(ip []byte) netip.Addr {
	if len(ip) != 4 {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(ip))
}

func addrFrom16(ip []byte) netip.Addr {
	if len(ip) != 16 {
		return netip.Addr{}
	}
	return netip.AddrFrom16([16]byte(ip))
}

// putEthernet writes the Ethernet header of a frame to the guest.
func (c *ctx) putEthernet(b []byte, etherType uint16) {
	copy(b[0:6], c.guestMAC[:])
	copy(b[6:12], c.ourMAC[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

// putIPHeader writes an IPv4 or IPv6 header (by the family of src) for a
// payload of payloadLen bytes and returns the header length.
func putIPHeader(b []byte, src, dst netip.Addr, proto uint8, payloadLen int) int {
	if src.Is4() {
		putIPv4Header(b, src, dst, proto, payloadLen)
		return ipv4HdrLen
	}
	putIPv6Header(b, src, dst, proto, payloadLen)
	return ipv6HdrLen
}

// putIPv4Header writes a 20-byte header (RFC 791 section 3.1). DF is set and
// the identification is 0, as RFC 6864 section 4.1 allows for atomic
// datagrams.
func putIPv4Header(b []byte, src, dst netip.Addr, proto uint8, payloadLen int) {
	b[0] = 0x45 // version 4, IHL 5 words
	b[1] = 0
	binary.BigEndian.PutUint16(b[2:4], uint16(ipv4HdrLen+payloadLen))
	binary.BigEndian.PutUint16(b[4:6], 0)
	binary.BigEndian.PutUint16(b[6:8], ipv4FlagDF)
	b[8] = ttlDefault
	b[9] = proto
	b[10], b[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:12], checksum(b[:ipv4HdrLen]))
}

// putIPv6Header writes a 40-byte header (RFC 8200 section 3).
func putIPv6Header(b []byte, src, dst netip.Addr, proto uint8, payloadLen int) {
	binary.BigEndian.PutUint32(b[0:4], 6<<28) // version 6, no traffic class or flow label
	binary.BigEndian.PutUint16(b[4:6], uint16(payloadLen))
	b[6] = proto
	b[7] = ttlDefault
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
}

// etherTypeFor returns the EtherType for an address family.
func etherTypeFor(a netip.Addr) uint16 {
	if a.Is4() {
		return etherTypeIPv4
	}
	return etherTypeIPv6
}

// ipHdrLen returns the length of the IP header we build for a family.
func ipHdrLen(a netip.Addr) int {
	if a.Is4() {
		return ipv4HdrLen
	}
	return ipv6HdrLen
}

// udpPayload returns where the payload of a UDP datagram from src goes in
// the transmit buffer; write it there, then call sendUDP.
func (c *ctx) udpPayload(src netip.Addr) []byte {
	return c.frame()[ethHdrLen+ipHdrLen(src)+udpHdrLen:]
}

// sendUDP sends to dstMAC the UDP datagram from src to dst whose n payload
// bytes were written to udpPayload(src.Addr()).
func (c *ctx) sendUDP(dstMAC []byte, src, dst netip.AddrPort, n int) {
	f := c.frame()
	copy(f[0:6], dstMAC)
	copy(f[6:12], c.ourMAC[:])
	binary.BigEndian.PutUint16(f[12:14], etherTypeFor(src.Addr()))
	hl := putIPHeader(f[ethHdrLen:], src.Addr(), dst.Addr(), protoUDP, udpHdrLen+n)
	putUDPHeader(f[ethHdrLen+hl:], src.Port(), dst.Port(), n)
	c.finishL4Frame(c.txBuf, src.Addr(), dst.Addr(), protoUDP, ethHdrLen+hl, udpHdrLen+n, nil)
}

// putUDPHeader writes a UDP header (RFC 768) for n payload bytes; the
// checksum is zeroed here and filled in by finishL4Frame.
func putUDPHeader(b []byte, sport, dport uint16, n int) {
	binary.BigEndian.PutUint16(b[0:2], sport)
	binary.BigEndian.PutUint16(b[2:4], dport)
	binary.BigEndian.PutUint16(b[4:6], uint16(udpHdrLen+n))
	b[6], b[7] = 0, 0
}
