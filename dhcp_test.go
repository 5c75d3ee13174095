package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

const (
	testXid       = 0x1234abcd
	dhcpPayloadAt = ethHdrLen + ipv4HdrLen + udpHdrLen // the DHCP message in a guest frame
)

var noWait = 30 * time.Millisecond // how long "no reply" is waited for

// dhcpMessage returns a client message of type typ with the given options
// after the message type.
func dhcpMessage(typ layers.DHCPMsgType, opts ...layers.DHCPOption) *layers.DHCPv4 {
	return &layers.DHCPv4{
		Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6,
		Xid: testXid, ClientHWAddr: testGuestMAC,
		Options: append(layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(typ)})}, opts...),
	}
}

func dhcpOpt(code layers.DHCPOpt, data ...byte) layers.DHCPOption {
	return layers.NewDHCPOption(code, data)
}

func addrOpt(code layers.DHCPOpt, a netip.Addr) layers.DHCPOption {
	return layers.NewDHCPOption(code, a.AsSlice())
}

// dhcpFrame wraps a client message in the frame a client sends: from
// ciaddr (0.0.0.0 if it has none) port 68, to dst port 67.
func dhcpFrame(t testing.TB, d *layers.DHCPv4, dst netip.Addr) []byte {
	src := netip.IPv4Unspecified()
	if a := addrFrom4(d.ClientIP); a.IsValid() {
		src = a
	}
	dstMAC := net.HardwareAddr(defaultOurMAC[:])
	if dst == limitedBroadcast {
		dstMAC = broadcast
	}
	ip := ip4(src, dst, layers.IPProtocolUDP)
	udp := withChecksumLayer(&layers.UDP{SrcPort: dhcpClientPort, DstPort: dhcpServerPort}, ip)
	return serialize(t, ethTo(dstMAC, layers.EthernetTypeIPv4), ip, udp, d)
}

// dhcpReply is a decoded reply from pasta.
type dhcpReply struct {
	eth   *layers.Ethernet
	ip    *layers.IPv4
	msg   *layers.DHCPv4
	opts  map[layers.DHCPOpt][]byte // concatenated (RFC 3396)
	order []layers.DHCPOpt          // codes in the order sent, split ones once
}

// expectDHCPReply reads the next frame and checks that it is a well-formed
// DHCP reply from the server: ports, checksums, length, padding.
func expectDHCPReply(t *testing.T, tp *testPasta) dhcpReply {
	t.Helper()
	pkt := tp.expectPacket()
	r := dhcpReply{opts: map[layers.DHCPOpt][]byte{}}
	var ok bool
	if r.msg, ok = pkt.Layer(layers.LayerTypeDHCPv4).(*layers.DHCPv4); !ok {
		t.Fatalf("no DHCP reply: %v", pkt)
	}
	r.eth = pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	r.ip = pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if udp.SrcPort != dhcpServerPort || udp.DstPort != dhcpClientPort {
		t.Errorf("reply from port %d to %d", udp.SrcPort, udp.DstPort)
	}
	if !r.ip.SrcIP.Equal(testGW4.AsSlice()) || r.ip.TTL != ttlDefault {
		t.Errorf("reply from %s, TTL %d", r.ip.SrcIP, r.ip.TTL)
	}
	if foldChecksum(sumBytes(r.ip.Contents, 0)) != 0 {
		t.Error("IPv4 header checksum does not verify")
	}
	checkUDPChecksum(t, pkt)
	if n := len(udp.Payload); n < dhcpMinMessageLen {
		t.Errorf("DHCP message of %d octets, want at least %d (RFC 1542)", n, dhcpMinMessageLen)
	}
	if r.msg.Operation != layers.DHCPOpReply || r.msg.Xid != testXid || !bytes.Equal(r.msg.ClientHWAddr, testGuestMAC) {
		t.Errorf("reply op %v xid %#x chaddr %s", r.msg.Operation, r.msg.Xid, r.msg.ClientHWAddr)
	}
	if !r.msg.NextServerIP.Equal(net.IPv4zero) || !r.msg.RelayAgentIP.Equal(net.IPv4zero) {
		t.Errorf("siaddr %s giaddr %s, want 0", r.msg.NextServerIP, r.msg.RelayAgentIP)
	}
	for _, o := range r.msg.Options {
		if _, seen := r.opts[o.Type]; !seen {
			r.order = append(r.order, o.Type)
		}
		r.opts[o.Type] = append(r.opts[o.Type], o.Data...)
	}
	if end := dhcpEndOffset(r.msg.Contents); end < 0 || strings.Trim(string(r.msg.Contents[end+1:]), "\x00") != "" {
		t.Errorf("options not ended, or padding not zero: % x", r.msg.Contents[240:])
	}
	return r
}

// dhcpEndOffset returns the offset of the End option in a message.
func dhcpEndOffset(msg []byte) int {
	for i := 240; i < len(msg); {
		switch msg[i] {
		case byte(layers.DHCPOptEnd):
			return i
		case byte(layers.DHCPOptPad):
			i++
		default:
			if i+1 >= len(msg) {
				return -1
			}
			i += 2 + int(msg[i+1])
		}
	}
	return -1
}

// checkUDPChecksum verifies the UDP checksum of a datagram pasta sent.
func checkUDPChecksum(t *testing.T, pkt gopacket.Packet) {
	t.Helper()
	var src, dst netip.Addr
	var segment []byte
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		src, dst, segment = addrFrom4(ip.SrcIP), addrFrom4(ip.DstIP), ip.Payload
	case *layers.IPv6:
		src, dst, segment = addrFrom16(ip.SrcIP), addrFrom16(ip.DstIP), ip.Payload
	}
	if binary.BigEndian.Uint16(segment[6:8]) == 0 {
		t.Error("UDP checksum not computed")
	}
	if sum := foldChecksum(sumBytes(segment, pseudoHeaderSum(src, dst, protoUDP, len(segment)))); sum != 0 {
		t.Errorf("UDP checksum does not verify (residue %#x)", sum)
	}
}

// checkDestination checks the link-layer and IP destination of a reply.
func (r dhcpReply) checkDestination(t *testing.T, mac net.HardwareAddr, ip netip.Addr) {
	t.Helper()
	if !bytes.Equal(r.eth.DstMAC, mac) || !r.ip.DstIP.Equal(ip.AsSlice()) {
		t.Errorf("reply to %s at %s, want %s at %s", r.ip.DstIP, r.eth.DstMAC, ip, mac)
	}
}

func (r dhcpReply) checkType(t *testing.T, typ layers.DHCPMsgType) {
	t.Helper()
	if got := r.opts[layers.DHCPOptMessageType]; !bytes.Equal(got, []byte{byte(typ)}) || r.order[0] != layers.DHCPOptMessageType {
		t.Errorf("message type % x (options %v), want %v first", got, r.order, typ)
	}
}

// defaultLeaseOptions is what C pasta puts in an offer or ACK by default.
func defaultLeaseOptions(typ layers.DHCPMsgType) map[layers.DHCPOpt][]byte {
	return map[layers.DHCPOpt][]byte{
		layers.DHCPOptMessageType:  {byte(typ)},
		layers.DHCPOptSubnetMask:   {255, 255, 255, 0},
		layers.DHCPOptRouter:       testGW4.AsSlice(),
		layers.DHCPOptInterfaceMTU: {0xff, 0xf0}, // 65520
		layers.DHCPOptLeaseTime:    {0xff, 0xff, 0xff, 0xff},
		layers.DHCPOptServerID:     testGW4.AsSlice(),
	}
}

func checkOptions(t *testing.T, got, want map[layers.DHCPOpt][]byte) {
	t.Helper()
	for code, data := range want {
		if !bytes.Equal(got[code], data) {
			t.Errorf("option %d (%v) is % x, want % x", code, code, got[code], data)
		}
	}
	for code := range got {
		if _, ok := want[code]; !ok {
			t.Errorf("unexpected option %d (%v): % x", code, code, got[code])
		}
	}
}

func TestDHCPDiscoverGetsOffer(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	r := expectDHCPReply(t, tp)
	r.checkType(t, layers.DHCPMsgTypeOffer)
	checkOptions(t, r.opts, defaultLeaseOptions(layers.DHCPMsgTypeOffer))
	want := []layers.DHCPOpt{layers.DHCPOptMessageType, layers.DHCPOptSubnetMask, layers.DHCPOptRouter,
		layers.DHCPOptInterfaceMTU, layers.DHCPOptLeaseTime, layers.DHCPOptServerID}
	if !slices.Equal(r.order, want) {
		t.Errorf("options in order %v, want %v", r.order, want)
	}
	if !r.msg.YourClientIP.Equal(testGuest4.AsSlice()) || !r.msg.ClientIP.Equal(net.IPv4zero) {
		t.Errorf("yiaddr %s ciaddr %s", r.msg.YourClientIP, r.msg.ClientIP)
	}
	// RFC 2131 section 4.1: no address yet, no broadcast flag: unicast
	// to the client's hardware address and yiaddr.
	r.checkDestination(t, testGuestMAC, testGuest4)
}

func TestDHCPBroadcastFlagHonoured(t *testing.T) {
	tp := newTestPasta(t, nil)
	d := dhcpMessage(layers.DHCPMsgTypeDiscover)
	d.Flags = dhcpFlagBroadcast
	tp.injectRaw(dhcpFrame(t, d, limitedBroadcast))
	r := expectDHCPReply(t, tp)
	r.checkType(t, layers.DHCPMsgTypeOffer)
	r.checkDestination(t, broadcast, limitedBroadcast)
	if r.msg.Flags != dhcpFlagBroadcast {
		t.Errorf("flags %#x not echoed", r.msg.Flags)
	}
}

func TestDHCPRequestGetsAck(t *testing.T) {
	renewing := dhcpMessage(layers.DHCPMsgTypeRequest)
	renewing.ClientIP = testGuest4.AsSlice()
	for _, tc := range []struct {
		name   string
		msg    *layers.DHCPv4
		dst    netip.Addr // where the client sends it
		toAddr netip.Addr // where the ACK goes
	}{
		{"selecting", dhcpMessage(layers.DHCPMsgTypeRequest, addrOpt(layers.DHCPOptRequestIP, testGuest4), addrOpt(layers.DHCPOptServerID, testGW4)), limitedBroadcast, testGuest4},
		{"init-reboot", dhcpMessage(layers.DHCPMsgTypeRequest, addrOpt(layers.DHCPOptRequestIP, testGuest4)), limitedBroadcast, testGuest4},
		{"renewing", renewing, testGW4, testGuest4},
		{"rebinding", renewing, limitedBroadcast, testGuest4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, nil)
			tp.injectRaw(dhcpFrame(t, tc.msg, tc.dst))
			r := expectDHCPReply(t, tp)
			r.checkType(t, layers.DHCPMsgTypeAck)
			checkOptions(t, r.opts, defaultLeaseOptions(layers.DHCPMsgTypeAck))
			r.checkDestination(t, testGuestMAC, tc.toAddr)
			wantCiaddr := net.IPv4zero
			if tc.msg.ClientIP != nil {
				wantCiaddr = tc.msg.ClientIP
			}
			if !r.msg.YourClientIP.Equal(testGuest4.AsSlice()) || !r.msg.ClientIP.Equal(wantCiaddr) {
				t.Errorf("yiaddr %s ciaddr %s, want %s and %s", r.msg.YourClientIP, r.msg.ClientIP, testGuest4, wantCiaddr)
			}
		})
	}
}

func TestDHCPRequestForAnotherAddressGetsNak(t *testing.T) {
	wrongCiaddr := dhcpMessage(layers.DHCPMsgTypeRequest)
	wrongCiaddr.ClientIP = net.IPv4(10, 0, 2, 9).To4()
	for _, tc := range []struct {
		name string
		msg  *layers.DHCPv4
	}{
		{"selecting", dhcpMessage(layers.DHCPMsgTypeRequest, addrOpt(layers.DHCPOptRequestIP, netip.MustParseAddr("10.0.2.99")), addrOpt(layers.DHCPOptServerID, testGW4))},
		{"init-reboot", dhcpMessage(layers.DHCPMsgTypeRequest, addrOpt(layers.DHCPOptRequestIP, netip.MustParseAddr("192.168.1.5")))},
		{"renewing", wrongCiaddr},
		{"no address at all", dhcpMessage(layers.DHCPMsgTypeRequest)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, nil)
			tp.injectRaw(dhcpFrame(t, tc.msg, limitedBroadcast))
			r := expectDHCPReply(t, tp)
			r.checkType(t, layers.DHCPMsgTypeNak)
			checkOptions(t, r.opts, map[layers.DHCPOpt][]byte{
				layers.DHCPOptMessageType: {byte(layers.DHCPMsgTypeNak)},
				layers.DHCPOptServerID:    testGW4.AsSlice(),
			})
			// RFC 2131 section 4.1: NAKs are broadcast; table 3: yiaddr
			// and ciaddr 0.
			r.checkDestination(t, broadcast, limitedBroadcast)
			if !r.msg.YourClientIP.Equal(net.IPv4zero) || !r.msg.ClientIP.Equal(net.IPv4zero) {
				t.Errorf("yiaddr %s ciaddr %s", r.msg.YourClientIP, r.msg.ClientIP)
			}
		})
	}
}

func TestDHCPRequestForAnotherServerIgnored(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeRequest, addrOpt(layers.DHCPOptRequestIP, testGuest4),
		addrOpt(layers.DHCPOptServerID, netip.MustParseAddr("10.0.2.77"))), limitedBroadcast))
	tp.expectNoFrame(noWait)
}

func TestDHCPInformGetsConfigurationWithoutLease(t *testing.T) {
	tp := newTestPasta(t, nil)
	d := dhcpMessage(layers.DHCPMsgTypeInform)
	d.ClientIP = testGuest4.AsSlice()
	tp.injectRaw(dhcpFrame(t, d, limitedBroadcast))
	r := expectDHCPReply(t, tp)
	want := defaultLeaseOptions(layers.DHCPMsgTypeAck)
	delete(want, layers.DHCPOptLeaseTime) // RFC 2131 section 4.3.5
	checkOptions(t, r.opts, want)
	if !r.msg.YourClientIP.Equal(net.IPv4zero) || !r.msg.ClientIP.Equal(testGuest4.AsSlice()) {
		t.Errorf("yiaddr %s ciaddr %s, want 0 and the client's", r.msg.YourClientIP, r.msg.ClientIP)
	}
	r.checkDestination(t, testGuestMAC, testGuest4)
}

func TestDHCPReleaseAndDeclineNotAnswered(t *testing.T) {
	tp := newTestPasta(t, nil)
	release := dhcpMessage(layers.DHCPMsgTypeRelease, addrOpt(layers.DHCPOptServerID, testGW4))
	release.ClientIP = testGuest4.AsSlice()
	tp.injectRaw(dhcpFrame(t, release, testGW4))
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDecline, addrOpt(layers.DHCPOptRequestIP, testGuest4),
		addrOpt(layers.DHCPOptServerID, testGW4)), limitedBroadcast))
	tp.expectNoFrame(noWait)
	if tp.c.stats.malformed != 0 {
		t.Errorf("%d messages counted as malformed", tp.c.stats.malformed)
	}
	// The address is still the guest's.
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	if r := expectDHCPReply(t, tp); !r.msg.YourClientIP.Equal(testGuest4.AsSlice()) {
		t.Errorf("offer of %s after release", r.msg.YourClientIP)
	}
}

// withDNS sets up the DNS configuration of C pasta's --dhcp-dns
// --dhcp-search with testResolvConf as the host's resolv.conf.
func withDNS(tp *testPasta) {
	tp.c.cfg.dhcpDNS, tp.c.cfg.dhcpSearch = true, true
	tp.c.dns = resolveDNS(tp.c.cfg, &tp.c.ip4, &tp.c.ip6, testResolvConf)
}

func TestDHCPConfiguredOptions(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.hostname, c.fqdn = "myhost", "my.fq.dn" })
	withDNS(tp)
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	r := expectDHCPReply(t, tp)
	want := defaultLeaseOptions(layers.DHCPMsgTypeOffer)
	want[layers.DHCPOptDNS] = []byte{10, 0, 2, 2, 192, 0, 2, 53} // 127.0.0.53 is reached through the gateway
	want[layers.DHCPOptHostname] = []byte("myhost")
	want[dhcpOptClientFQDN] = []byte("\x04\xff\xff\x02my\x02fq\x02dn\x00") // RFC 4702: flags E, RCODEs 255
	want[layers.DHCPOptDomainSearch] = []byte("\x07example\x03com\x00\x04test\x07example\x03org\x00")
	checkOptions(t, r.opts, want)
	if got := decodeDomainNames(t, r.opts[layers.DHCPOptDomainSearch]); !slices.Equal(got, testResolvConf.search) {
		t.Errorf("search list decodes to %q", got)
	}
}

func TestDHCPOptionsInRequestedOrder(t *testing.T) {
	tp := newTestPasta(t, nil)
	prl := dhcpOpt(layers.DHCPOptParamsRequest, byte(layers.DHCPOptInterfaceMTU), byte(layers.DHCPOptDNS),
		byte(layers.DHCPOptRouter), byte(layers.DHCPOptSubnetMask))
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover, prl), limitedBroadcast))
	r := expectDHCPReply(t, tp)
	want := []layers.DHCPOpt{layers.DHCPOptMessageType, layers.DHCPOptInterfaceMTU, layers.DHCPOptRouter,
		layers.DHCPOptSubnetMask, layers.DHCPOptLeaseTime, layers.DHCPOptServerID}
	if !slices.Equal(r.order, want) {
		t.Errorf("options in order %v, want %v (RFC 2132 section 9.8)", r.order, want)
	}
}

func TestDHCPClasslessRoutesForGatewayOutsideSubnet(t *testing.T) {
	tp := newTestPasta(t, nil)
	gw := netip.MustParseAddr("198.51.100.1")
	tp.c.ip4.gw, tp.c.ip4.mapHostLoopback = gw, gw
	d := dhcpMessage(layers.DHCPMsgTypeDiscover)
	tp.injectRaw(dhcpFrame(t, d, limitedBroadcast))
	pkt := expectDHCPReplyFrom(t, tp, gw)
	want := []byte{32, 198, 51, 100, 1, 0, 0, 0, 0, // the gateway, on-link
		0, 198, 51, 100, 1} // default route through it
	if got := pkt.opts[dhcpOptClasslessRt]; !bytes.Equal(got, want) {
		t.Errorf("classless static routes % x, want % x", got, want)
	}
	if !bytes.Equal(pkt.opts[layers.DHCPOptRouter], gw.AsSlice()) || !bytes.Equal(pkt.opts[layers.DHCPOptServerID], gw.AsSlice()) {
		t.Errorf("router % x, server % x", pkt.opts[layers.DHCPOptRouter], pkt.opts[layers.DHCPOptServerID])
	}
}

// expectDHCPReplyFrom is expectDHCPReply for a server at another address
// than the test's gateway.
func expectDHCPReplyFrom(t *testing.T, tp *testPasta, server netip.Addr) dhcpReply {
	t.Helper()
	f := tp.readFrame(time.Second)
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	d, ok := pkt.Layer(layers.LayerTypeDHCPv4).(*layers.DHCPv4)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok || !ip.SrcIP.Equal(server.AsSlice()) {
		t.Fatalf("no DHCP reply from %s: %v", server, pkt)
	}
	checkUDPChecksum(t, pkt)
	r := dhcpReply{msg: d, ip: ip, opts: map[layers.DHCPOpt][]byte{}}
	for _, o := range d.Options {
		r.opts[o.Type] = append(r.opts[o.Type], o.Data...)
	}
	return r
}

func TestDHCPClasslessRoutesOnlyWhenNeeded(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.c.ip4.prefixLen = 30 // 10.0.2.12/30: 10.0.2.2 is outside
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	if r := expectDHCPReply(t, tp); r.opts[dhcpOptClasslessRt] == nil || !bytes.Equal(r.opts[layers.DHCPOptSubnetMask], []byte{255, 255, 255, 252}) {
		t.Errorf("/30: mask % x, routes % x", r.opts[layers.DHCPOptSubnetMask], r.opts[dhcpOptClasslessRt])
	}
	tp.c.ip4.prefixLen = 24
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	if r := expectDHCPReply(t, tp); r.opts[dhcpOptClasslessRt] != nil {
		t.Errorf("/24: classless routes % x for a gateway on the subnet", r.opts[dhcpOptClasslessRt])
	}
}

func TestDHCPNoMTUOptionWithMTUZero(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.mtu = 0 })
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	if r := expectDHCPReply(t, tp); r.opts[layers.DHCPOptInterfaceMTU] != nil {
		t.Errorf("MTU option % x with -m 0", r.opts[layers.DHCPOptInterfaceMTU])
	}
}

// A search list longer than an option can hold is split over several
// options (RFC 3396), which the client concatenates.
func TestDHCPLongOptionsAreSplit(t *testing.T) {
	var search []string
	for _, l := range "abcdef" {
		search = append(search, strings.Repeat(string(l), 60)+".example")
	}
	tp := newTestPasta(t, func(c *config) { c.search = search })
	withDNS(tp)
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	r := expectDHCPReply(t, tp)
	parts := 0
	for _, o := range r.msg.Options {
		if o.Type == layers.DHCPOptDomainSearch {
			parts++
			if len(o.Data) > 255 {
				t.Errorf("option of %d octets", len(o.Data))
			}
		}
	}
	if parts != 2 {
		t.Errorf("search list in %d options, want 2", parts)
	}
	if got := decodeDomainNames(t, r.opts[layers.DHCPOptDomainSearch]); !slices.Equal(got, search) {
		t.Errorf("search list decodes to %q", got)
	}
}

func TestDHCPDisabled(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noDHCP = true })
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	tp.expectNoFrame(noWait)
	// pasta(1), --no-dhcp: implied without a gateway.
	tp = newTestPasta(t, nil)
	tp.c.ip4.gw = netip.Addr{}
	tp.injectRaw(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast))
	tp.expectNoFrame(noWait)
}

func TestDHCPMalformedDropped(t *testing.T) {
	valid := func() []byte { return dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover), limitedBroadcast) }
	mutate := func(f func(b []byte) []byte) []byte { return f(valid()) }
	withOptions := func(opts ...byte) []byte {
		return mutate(func(b []byte) []byte {
			return fixUDPLengths(t, append(b[:dhcpPayloadAt+240], opts...))
		})
	}
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"truncated", mutate(func(b []byte) []byte { return fixUDPLengths(t, b[:dhcpPayloadAt+100]) })},
		{"no options field", mutate(func(b []byte) []byte { return fixUDPLengths(t, b[:dhcpPayloadAt+236]) })},
		{"bad magic cookie", mutate(func(b []byte) []byte { b[dhcpPayloadAt+236] ^= 0xff; return b })},
		{"a reply", mutate(func(b []byte) []byte { b[dhcpPayloadAt] = byte(layers.DHCPOpReply); return b })},
		{"hardware address too long", mutate(func(b []byte) []byte { b[dhcpPayloadAt+2] = 17; return b })},
		{"relayed", mutate(func(b []byte) []byte { copy(b[dhcpPayloadAt+24:], []byte{10, 0, 2, 50}); return b })},
		{"from the server port", mutate(func(b []byte) []byte { b[ethHdrLen+ipv4HdrLen+1] = dhcpServerPort; return b })},
		{"BOOTP: no message type", withOptions(byte(layers.DHCPOptEnd))},
		{"no options at all", withOptions()},
		{"message type too long", withOptions(53, 2, 1, 1, 255)},
		{"message type empty", withOptions(53, 0, 255)},
		{"server message type", withOptions(53, 1, byte(layers.DHCPMsgTypeOffer), 255)},
		{"unknown message type", withOptions(53, 1, 200, 255)},
		{"option past the end", withOptions(53, 1, 1, 55, 200, 1, 2)},
		{"option length cut", withOptions(53, 1, 1, 55)},
		{"inform without ciaddr", withOptions(53, 1, byte(layers.DHCPMsgTypeInform), 255)},
	} {
		t.Run(tc.name, func(t *testing.T) { expectDroppedAsMalformed(t, tc.frame) })
	}
}

// fixUDPLengths rewrites the IPv4 and UDP lengths and checksums of a
// guest frame whose DHCP payload was cut or extended.
func fixUDPLengths(t testing.TB, b []byte) []byte {
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.NoCopy)
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	payload := b[dhcpPayloadAt:]
	_ = udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet), ip, udp, gopacket.Payload(payload))
}

// Hostile but well-formed messages: tens of thousands of options, a huge
// parameter request list, options overloaded into sname and file that
// point at each other. pasta answers, quickly, as if they were normal.
func TestDHCPHostileButValidMessagesAnswered(t *testing.T) {
	pads := make([]byte, 60000)
	hugePRL := dhcpMessage(layers.DHCPMsgTypeDiscover)
	for range 200 {
		hugePRL.Options = append(hugePRL.Options, dhcpOpt(layers.DHCPOptParamsRequest, bytes.Repeat([]byte{1, 3, 6, 26}, 60)...))
	}
	overload := dhcpMessage(layers.DHCPMsgTypeDiscover, dhcpOpt(layers.DHCPOptExtOptions, 3))
	overload.File = append([]byte{byte(layers.DHCPOptExtOptions), 1, 3, 55, 200}, make([]byte, 123)...)
	overload.ServerName = append([]byte{byte(layers.DHCPOptExtOptions), 1, 3}, make([]byte, 61)...)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"60000 pad options", fixUDPLengths(t, append(dhcpFrame(t, dhcpMessage(layers.DHCPMsgTypeDiscover, dhcpOpt(layers.DHCPOptParamsRequest, 1)), limitedBroadcast)[:dhcpPayloadAt+243], append(pads, 255)...))},
		{"48000 requested options", dhcpFrame(t, hugePRL, limitedBroadcast)},
		{"overload loop", dhcpFrame(t, overload, limitedBroadcast)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, nil)
			tp.injectRaw(tc.frame)
			r := expectDHCPReply(t, tp)
			r.checkType(t, layers.DHCPMsgTypeOffer)
		})
	}
}

// dhcpSeeds are DHCP messages a client sends, for the fuzzer.
func dhcpSeeds() []*layers.DHCPv4 {
	informing := dhcpMessage(layers.DHCPMsgTypeInform, dhcpOpt(layers.DHCPOptParamsRequest, 1, 3, 6, 119, 121))
	informing.ClientIP = testGuest4.AsSlice()
	overload := dhcpMessage(layers.DHCPMsgTypeDiscover, dhcpOpt(layers.DHCPOptExtOptions, 3))
	overload.File = []byte{byte(layers.DHCPOptParamsRequest), 2, 1, 3, byte(layers.DHCPOptEnd)}
	return []*layers.DHCPv4{
		dhcpMessage(layers.DHCPMsgTypeDiscover, dhcpOpt(layers.DHCPOptParamsRequest, 1, 3, 6, 12, 15, 26, 119, 121)),
		dhcpMessage(layers.DHCPMsgTypeRequest, addrOpt(layers.DHCPOptRequestIP, testGuest4), addrOpt(layers.DHCPOptServerID, testGW4)),
		informing,
		dhcpMessage(layers.DHCPMsgTypeRelease, addrOpt(layers.DHCPOptServerID, testGW4)),
		overload,
	}
}

// FuzzDHCP feeds arbitrary DHCP messages from the guest to the server.
// Whatever they hold, pasta must not panic, and may answer with one well-
// formed reply at most.
func FuzzDHCP(f *testing.F) {
	for _, d := range dhcpSeeds() {
		f.Add(serialize(f, d))
	}
	tp := newTestPasta(f, func(c *config) { c.hostname, c.fqdn = "myhost", "my.fq.dn" })
	withDNS(tp)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > maxFuzzPayload {
			t.Skip("does not fit in a frame")
		}
		tp.t = t
		ip := ip4(netip.IPv4Unspecified(), limitedBroadcast, layers.IPProtocolUDP)
		udp := withChecksumLayer(&layers.UDP{SrcPort: dhcpClientPort, DstPort: dhcpServerPort}, ip)
		tp.c.handleFrame(serialize(t, ethTo(broadcast, layers.EthernetTypeIPv4), ip, udp, gopacket.Payload(payload)))
		checkFuzzReplies(t, tp)
	})
}

const maxFuzzPayload = 65000

// checkFuzzReplies reads what pasta sent after a fuzzed frame: at most one
// frame, which gopacket decodes without error and whose checksums verify.
func checkFuzzReplies(t *testing.T, tp *testPasta) {
	t.Helper()
	for n := 0; ; n++ {
		f := tp.readFrame(0)
		if f == nil {
			return
		}
		if n > 0 {
			t.Fatalf("more than one reply to a frame")
		}
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("undecodable reply: %v\n%x", el.Error(), f)
		}
		if pkt.Layer(layers.LayerTypeUDP) != nil {
			checkUDPChecksum(t, pkt)
		} else {
			checkICMPv6Checksum(t, pkt)
		}
	}
}
