package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	testClientDUID = append([]byte{0, 1, 0, 1, 0x32, 0x9e, 0x62, 0x4d}, testGuestMAC...) // DUID-LLT
	testIAID       = []byte{0xd3, 0x93, 0x89, 0xf7}
	testServerDUID = append([]byte{0, duidTypeLL, 0, hwTypeEthernet}, defaultOurMAC[:]...)
	allDHCPMAC     = net.HardwareAddr{0x33, 0x33, 0, 1, 0, 2} // RFC 2464 section 7
	testXid6       = []byte{0xab, 0xcd, 0xef}
	offLink6       = netip.MustParseAddr("2001:db8:5::1")
	otherOnLink6   = netip.MustParseAddr("2001:db8:1::99")
)

var (
	clientID     = opt6(layers.DHCPv6OptClientID, testClientDUID)
	ourServerID  = opt6(layers.DHCPv6OptServerID, testServerDUID)
	elapsedTime  = opt6(layers.DHCPv6OptElapsedTime, []byte{0, 0})
	optionReq    = opt6(layers.DHCPv6OptOro, []byte{0, 23, 0, 24, 0, 39})
	rapidCommit  = opt6(layers.DHCPv6OptRapidCommit, nil)
	otherServers = opt6(layers.DHCPv6OptServerID, []byte{0, 3, 0, 1, 1, 2, 3, 4, 5, 6})
)

// clientIANA returns an IA_NA option as a client sends it: T1 and T2 it
// would like, and address hints.
func clientIANA(iaid []byte, hints ...netip.Addr) layers.DHCPv6Option {
	b := appendIAHeader(nil, iaid, 3600, 5400)
	for _, a := range hints {
		b = appendOption6(b, iaAddress(a, 7200))
	}
	return opt6(layers.DHCPv6OptIANA, b)
}

// dhcpv6Frame builds a client message as clients send them: from its
// link-local address, port 546, to All_DHCP_Relay_Agents_and_Servers.
func dhcpv6Frame(t testing.TB, typ layers.DHCPv6MsgType, opts ...layers.DHCPv6Option) []byte {
	ip := ip6(testGuestLL6, allDHCPServers, layers.IPProtocolUDP)
	ip.HopLimit = 1
	udp := withChecksumLayer(&layers.UDP{SrcPort: dhcpv6ClientPort, DstPort: dhcpv6ServerPort}, ip)
	d := &layers.DHCPv6{MsgType: typ, TransactionID: testXid6, Options: opts}
	return serialize(t, ethTo(allDHCPMAC, layers.EthernetTypeIPv6), ip, udp, d)
}

// dhcpv6Reply is a decoded reply from pasta.
type dhcpv6Reply struct {
	msg  *layers.DHCPv6
	opts map[layers.DHCPv6Opt][][]byte // data of each instance, by code
}

func (r dhcpv6Reply) one(t *testing.T, code layers.DHCPv6Opt) []byte {
	t.Helper()
	if len(r.opts[code]) != 1 {
		t.Fatalf("%d options %v in %v, want 1", len(r.opts[code]), code, r.msg.Options)
	}
	return r.opts[code][0]
}

// codes returns the option codes of the reply, sorted.
func (r dhcpv6Reply) codes() []layers.DHCPv6Opt {
	var out []layers.DHCPv6Opt
	for code := range r.opts {
		out = append(out, code)
	}
	slices.Sort(out)
	return out
}

// expectDHCPv6Reply reads the next frame and checks that it is a reply of
// type typ from our server to the test client: addresses, ports,
// checksum, transaction ID, our DUID-LL and the client's DUID.
func expectDHCPv6Reply(t *testing.T, tp *testPasta, typ layers.DHCPv6MsgType) dhcpv6Reply {
	t.Helper()
	pkt := tp.expectPacket()
	d, ok := pkt.Layer(layers.LayerTypeDHCPv6).(*layers.DHCPv6)
	if !ok {
		t.Fatalf("no DHCPv6 reply: %v", pkt)
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !bytes.Equal(eth.DstMAC, testGuestMAC) || !ip.SrcIP.Equal(tp.c.ourLinkLocal().AsSlice()) || !ip.DstIP.Equal(testGuestLL6.AsSlice()) {
		t.Errorf("reply %s -> %s at %s", ip.SrcIP, ip.DstIP, eth.DstMAC)
	}
	if udp.SrcPort != dhcpv6ServerPort || udp.DstPort != dhcpv6ClientPort {
		t.Errorf("reply from port %d to %d", udp.SrcPort, udp.DstPort)
	}
	checkUDPChecksum(t, pkt)
	if d.MsgType != typ || !bytes.Equal(d.TransactionID, testXid6) {
		t.Errorf("reply %v, transaction % x; want %v, % x", d.MsgType, d.TransactionID, typ, testXid6)
	}
	r := dhcpv6Reply{msg: d, opts: map[layers.DHCPv6Opt][][]byte{}}
	for _, o := range d.Options {
		r.opts[o.Code] = append(r.opts[o.Code], o.Data)
	}
	if got := r.one(t, layers.DHCPv6OptServerID); !bytes.Equal(got, testServerDUID) {
		t.Errorf("server DUID % x, want DUID-LL % x", got, testServerDUID)
	}
	return r
}

func (r dhcpv6Reply) checkClientID(t *testing.T) {
	t.Helper()
	if got := r.one(t, layers.DHCPv6OptClientID); !bytes.Equal(got, testClientDUID) {
		t.Errorf("client DUID % x, want % x", got, testClientDUID)
	}
}

// iaAddr is one IA Address option of a reply.
type iaAddr struct {
	addr             netip.Addr
	preferred, valid uint32
}

// decodeIANA decodes an IA_NA option of a reply: IAID, T1, T2, its
// addresses and its status code, if any.
func decodeIANA(t *testing.T, b []byte) (iaid []byte, t1, t2 uint32, addrs []iaAddr, status []byte) {
	t.Helper()
	if len(b) < dhcpv6IAHdrLen {
		t.Fatalf("IA_NA of %d octets", len(b))
	}
	ok := forEachOption6(b[dhcpv6IAHdrLen:], func(code uint16, data []byte) bool {
		switch layers.DHCPv6Opt(code) {
		case layers.DHCPv6OptIAAddr:
			if len(data) != dhcpv6IAAddrLen {
				t.Errorf("IA Address of %d octets", len(data))
				return false
			}
			addrs = append(addrs, iaAddr{addrFrom16(data[:16]), binary.BigEndian.Uint32(data[16:20]), binary.BigEndian.Uint32(data[20:24])})
		case layers.DHCPv6OptStatusCode:
			status = data
		default:
			t.Errorf("unexpected option %d in IA_NA", code)
		}
		return true
	})
	if !ok {
		t.Fatalf("malformed IA_NA % x", b)
	}
	return b[:4], binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint32(b[8:12]), addrs, status
}

// checkBinding checks that an IA_NA gives the guest's address for ever,
// and lists the other addresses given with lifetime 0.
func checkBinding(t *testing.T, b []byte, expired ...netip.Addr) {
	t.Helper()
	iaid, t1, t2, addrs, status := decodeIANA(t, b)
	want := []iaAddr{{testGuest6, dhcpv6Infinity, dhcpv6Infinity}}
	for _, a := range expired {
		want = append(want, iaAddr{a, 0, 0})
	}
	if !bytes.Equal(iaid, testIAID) || t1 != dhcpv6Infinity || t2 != dhcpv6Infinity || !slices.Equal(addrs, want) || status != nil {
		t.Errorf("IA_NA %x T1 %d T2 %d addresses %v status %q; want %x, infinite, %v", iaid, t1, t2, addrs, status, testIAID, want)
	}
}

func checkStatus(t *testing.T, b []byte, code uint16) {
	t.Helper()
	if len(b) < 2 || binary.BigEndian.Uint16(b) != code {
		t.Errorf("status % x, want code %d", b, code)
	}
}

func TestDHCPv6SolicitGetsAdvertise(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, optionReq, elapsedTime, clientIANA(testIAID)))
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeAdvertise)
	r.checkClientID(t)
	checkBinding(t, r.one(t, layers.DHCPv6OptIANA))
	want := []layers.DHCPv6Opt{layers.DHCPv6OptClientID, layers.DHCPv6OptServerID, layers.DHCPv6OptIANA}
	if !slices.Equal(r.codes(), want) {
		t.Errorf("options %v, want %v", r.codes(), want)
	}
}

func TestDHCPv6RapidCommit(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, rapidCommit, elapsedTime, clientIANA(testIAID)))
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeReply) // RFC 8415 section 18.3.1
	r.checkClientID(t)
	checkBinding(t, r.one(t, layers.DHCPv6OptIANA))
	if got := r.one(t, layers.DHCPv6OptRapidCommit); len(got) != 0 {
		t.Errorf("rapid commit option % x", got)
	}
}

func TestDHCPv6SolicitWithoutIANA(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, elapsedTime,
		opt6(layers.DHCPv6OptIAPD, appendIAHeader(nil, testIAID, 0, 0))))
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeAdvertise)
	// RFC 8415 section 18.3.9: only a NoAddrsAvail status and the IDs.
	checkStatus(t, r.one(t, layers.DHCPv6OptStatusCode), dhcpv6NoAddrsAvail)
	if want := []layers.DHCPv6Opt{layers.DHCPv6OptClientID, layers.DHCPv6OptServerID, layers.DHCPv6OptStatusCode}; !slices.Equal(r.codes(), want) {
		t.Errorf("options %v, want %v", r.codes(), want)
	}
}

func TestDHCPv6RequestRenewRebindGetBinding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     layers.DHCPv6MsgType
		opts    []layers.DHCPv6Option
		expired []netip.Addr // hints returned with lifetime 0
	}{
		{"request", layers.DHCPv6MsgTypeRequest, []layers.DHCPv6Option{ourServerID, clientIANA(testIAID, testGuest6)}, nil},
		{"request for another", layers.DHCPv6MsgTypeRequest, []layers.DHCPv6Option{ourServerID, clientIANA(testIAID, otherOnLink6)}, nil},
		{"renew", layers.DHCPv6MsgTypeRenew, []layers.DHCPv6Option{ourServerID, clientIANA(testIAID, testGuest6)}, nil},
		{"renew others", layers.DHCPv6MsgTypeRenew, []layers.DHCPv6Option{ourServerID, clientIANA(testIAID, offLink6, testGuest6, otherOnLink6)}, []netip.Addr{offLink6, otherOnLink6}},
		{"rebind", layers.DHCPv6MsgTypeRebind, []layers.DHCPv6Option{clientIANA(testIAID, testGuest6)}, nil},
		{"rebind another", layers.DHCPv6MsgTypeRebind, []layers.DHCPv6Option{clientIANA(testIAID, offLink6)}, []netip.Addr{offLink6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, nil)
			tp.injectRaw(dhcpv6Frame(t, tc.typ, append([]layers.DHCPv6Option{clientID, elapsedTime}, tc.opts...)...))
			r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeReply)
			r.checkClientID(t)
			checkBinding(t, r.one(t, layers.DHCPv6OptIANA), tc.expired...)
		})
	}
}

func TestDHCPv6OneAddressPerClient(t *testing.T) {
	tp := newTestPasta(t, nil)
	second := []byte{1, 2, 3, 4}
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, clientIANA(testIAID), clientIANA(second)))
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeAdvertise)
	ias := r.opts[layers.DHCPv6OptIANA]
	if len(ias) != 2 {
		t.Fatalf("%d IA_NA options, want 2", len(ias))
	}
	checkBinding(t, ias[0])
	iaid, t1, t2, addrs, status := decodeIANA(t, ias[1])
	if !bytes.Equal(iaid, second) || t1 != 0 || t2 != 0 || len(addrs) != 0 {
		t.Errorf("second IA_NA %x T1 %d T2 %d addresses %v", iaid, t1, t2, addrs)
	}
	checkStatus(t, status, dhcpv6NoAddrsAvail)
}

func TestDHCPv6Confirm(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hints  []netip.Addr
		status uint16
	}{
		{"own address", []netip.Addr{testGuest6}, dhcpv6Success},
		{"on link", []netip.Addr{otherOnLink6}, dhcpv6Success},
		{"off link", []netip.Addr{testGuest6, offLink6}, dhcpv6NotOnLink},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, nil)
			tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeConfirm, clientID, elapsedTime, clientIANA(testIAID, tc.hints...)))
			r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeReply)
			r.checkClientID(t)
			checkStatus(t, r.one(t, layers.DHCPv6OptStatusCode), tc.status)
			if r.opts[layers.DHCPv6OptIANA] != nil {
				t.Error("IA_NA in the reply to a Confirm")
			}
		})
	}
	// RFC 8415 section 18.3.3: no addresses, no reply.
	tp := newTestPasta(t, nil)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeConfirm, clientID, clientIANA(testIAID)))
	tp.expectNoFrame(noWait)
}

func TestDHCPv6ReleaseAndDeclineGetSuccess(t *testing.T) {
	for _, typ := range []layers.DHCPv6MsgType{layers.DHCPv6MsgTypeRelease, layers.DHCPv6MsgTypeDecline} {
		tp := newTestPasta(t, nil)
		tp.injectRaw(dhcpv6Frame(t, typ, clientID, ourServerID, elapsedTime, clientIANA(testIAID, testGuest6)))
		r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeReply)
		r.checkClientID(t)
		checkStatus(t, r.one(t, layers.DHCPv6OptStatusCode), dhcpv6Success)
	}
}

func TestDHCPv6InformationRequest(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.fqdn = "my.fq.dn" })
	withDNS(tp)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeInformationRequest, optionReq, elapsedTime)) // no Client ID: allowed
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeReply)
	want := []layers.DHCPv6Opt{layers.DHCPv6OptServerID, layers.DHCPv6OptDNSServers, layers.DHCPv6OptDomainList, layers.DHCPv6OptClientFQDN}
	if !slices.Equal(r.codes(), want) {
		t.Errorf("options %v, want %v", r.codes(), want)
	}
}

func TestDHCPv6ConfiguredOptions(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.fqdn = "my.fq.dn" })
	withDNS(tp)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, optionReq, clientIANA(testIAID)))
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeAdvertise)
	checkBinding(t, r.one(t, layers.DHCPv6OptIANA))
	// ::1 on the host is reached through the gateway, fe80::1; the zone
	// of fe80::53%eth0 is dropped.
	if got, want := r.one(t, layers.DHCPv6OptDNSServers), concatAddrs(addrs("2001:db8::53", "fe80::1", "fe80::53")); !bytes.Equal(got, want) {
		t.Errorf("DNS servers % x, want % x", got, want)
	}
	if got := decodeDomainNames(t, r.one(t, layers.DHCPv6OptDomainList)); !slices.Equal(got, testResolvConf.search) {
		t.Errorf("domain list %q", got)
	}
	if got, want := r.one(t, layers.DHCPv6OptClientFQDN), []byte("\x00\x02my\x02fq\x02dn\x00"); !bytes.Equal(got, want) {
		t.Errorf("FQDN % x, want % x", got, want) // RFC 4704 section 4: flags, then the name
	}
}

func TestDHCPv6SourceAddress(t *testing.T) {
	for _, tc := range []struct {
		name       string
		gw, hostLL netip.Addr
		want       netip.Addr
	}{
		{"link-local gateway", testGW6, netip.MustParseAddr("fe80::abcd"), testGW6},
		{"global gateway", netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("fe80::abcd"), netip.MustParseAddr("fe80::abcd")},
		{"no link-local address on the host", netip.MustParseAddr("2001:db8:1::1"), netip.Addr{}, defaultLinkLocal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPasta(t, nil)
			tp.c.ip6.gw, tp.c.ip6.hostLL = tc.gw, tc.hostLL
			if got := tp.c.ourLinkLocal(); got != tc.want {
				t.Fatalf("our link-local address %s, want %s", got, tc.want)
			}
			tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, clientIANA(testIAID)))
			expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeAdvertise) // checks the source
		})
	}
}

func TestDHCPv6Disabled(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noDHCPv6 = true })
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, clientIANA(testIAID)))
	tp.expectNoFrame(noWait)
}

// Messages RFC 8415 section 16 says to discard, and malformed ones.
func TestDHCPv6InvalidDropped(t *testing.T) {
	shortIA := opt6(layers.DHCPv6OptIANA, testIAID)
	shortAddr := opt6(layers.DHCPv6OptIANA, appendOption6(appendIAHeader(nil, testIAID, 0, 0), opt6(layers.DHCPv6OptIAAddr, make([]byte, 20))))
	cutSubOption := opt6(layers.DHCPv6OptIANA, append(appendIAHeader(nil, testIAID, 0, 0), 0, 5, 0, 24, 1))
	frame := func(typ layers.DHCPv6MsgType, opts ...layers.DHCPv6Option) []byte {
		return dhcpv6Frame(t, typ, opts...)
	}
	cut := func(b []byte, n int) []byte { return fixUDP6Lengths(t, b[:len(b)-n]) }
	fromPort := func(b []byte, port uint16) []byte {
		binary.BigEndian.PutUint16(b[ethHdrLen+ipv6HdrLen:], port)
		return b
	}
	fromUnspecified := func(b []byte) []byte { clear(b[ethHdrLen+8 : ethHdrLen+24]); return b }
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"solicit without client ID", frame(layers.DHCPv6MsgTypeSolicit, clientIANA(testIAID))},
		{"solicit with server ID", frame(layers.DHCPv6MsgTypeSolicit, clientID, ourServerID, clientIANA(testIAID))},
		{"request without server ID", frame(layers.DHCPv6MsgTypeRequest, clientID, clientIANA(testIAID))},
		{"request for another server", frame(layers.DHCPv6MsgTypeRequest, clientID, otherServers, clientIANA(testIAID))},
		{"request without client ID", frame(layers.DHCPv6MsgTypeRequest, ourServerID, clientIANA(testIAID))},
		{"renew for another server", frame(layers.DHCPv6MsgTypeRenew, clientID, otherServers, clientIANA(testIAID))},
		{"rebind with server ID", frame(layers.DHCPv6MsgTypeRebind, clientID, ourServerID, clientIANA(testIAID))},
		{"confirm with server ID", frame(layers.DHCPv6MsgTypeConfirm, clientID, ourServerID, clientIANA(testIAID, testGuest6))},
		{"release without server ID", frame(layers.DHCPv6MsgTypeRelease, clientID, clientIANA(testIAID, testGuest6))},
		{"decline for another server", frame(layers.DHCPv6MsgTypeDecline, clientID, otherServers, clientIANA(testIAID, testGuest6))},
		{"information-request with IA", frame(layers.DHCPv6MsgTypeInformationRequest, clientID, clientIANA(testIAID))},
		{"information-request for another server", frame(layers.DHCPv6MsgTypeInformationRequest, clientID, otherServers)},
		{"advertise from the client", frame(layers.DHCPv6MsgTypeAdvertise, clientID, ourServerID)},
		{"reply from the client", frame(layers.DHCPv6MsgTypeReply, clientID, ourServerID)},
		{"relay-forward", frame(layers.DHCPv6MsgTypeRelayForward, opt6(layers.DHCPv6OptRelayMessage, []byte{1, 2, 3, 4}))},
		{"unknown type", frame(200, clientID)},
		{"IA_NA too short", frame(layers.DHCPv6MsgTypeSolicit, clientID, shortIA)},
		{"IA address too short", frame(layers.DHCPv6MsgTypeSolicit, clientID, shortAddr)},
		{"IA_NA option cut", frame(layers.DHCPv6MsgTypeSolicit, clientID, cutSubOption)},
		{"option cut", cut(frame(layers.DHCPv6MsgTypeSolicit, clientID, clientIANA(testIAID)), 3)},
		{"header cut", cut(frame(layers.DHCPv6MsgTypeSolicit), 1)},
		{"from another port", fromPort(frame(layers.DHCPv6MsgTypeSolicit, clientID, clientIANA(testIAID)), 1234)},
		{"from the unspecified address", fromUnspecified(frame(layers.DHCPv6MsgTypeSolicit, clientID, clientIANA(testIAID)))},
	} {
		t.Run(tc.name, func(t *testing.T) { expectDroppedAsMalformed(t, tc.frame) })
	}
}

// fixUDP6Lengths rewrites the IPv6 payload and UDP lengths of a guest
// frame cut short (the UDP checksum is not checked by pasta).
func fixUDP6Lengths(t testing.TB, b []byte) []byte {
	t.Helper()
	n := len(b) - ethHdrLen - ipv6HdrLen
	binary.BigEndian.PutUint16(b[ethHdrLen+4:], uint16(n))
	binary.BigEndian.PutUint16(b[ethHdrLen+ipv6HdrLen+4:], uint16(n))
	return b
}

// Thousands of options, and IA_NAs, are answered like few.
func TestDHCPv6ManyOptionsAnswered(t *testing.T) {
	opts := []layers.DHCPv6Option{clientID}
	for range 5000 {
		opts = append(opts, optionReq)
	}
	for i := range 500 {
		opts = append(opts, clientIANA(binary.BigEndian.AppendUint32(nil, uint32(i))))
	}
	tp := newTestPasta(t, nil)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, opts...))
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeAdvertise)
	if n := len(r.opts[layers.DHCPv6OptIANA]); n != 500 {
		t.Errorf("%d IA_NA options in the reply, want 500", n)
	}
}

// dhcpv6Seeds are DHCPv6 messages a client sends, for the fuzzer.
func dhcpv6Seeds() []*layers.DHCPv6 {
	msg := func(typ layers.DHCPv6MsgType, opts ...layers.DHCPv6Option) *layers.DHCPv6 {
		return &layers.DHCPv6{MsgType: typ, TransactionID: testXid6, Options: opts}
	}
	return []*layers.DHCPv6{
		msg(layers.DHCPv6MsgTypeSolicit, clientID, optionReq, elapsedTime, clientIANA(testIAID)),
		msg(layers.DHCPv6MsgTypeSolicit, clientID, rapidCommit, clientIANA(testIAID), clientIANA([]byte{1, 2, 3, 4})),
		msg(layers.DHCPv6MsgTypeRequest, clientID, ourServerID, clientIANA(testIAID, testGuest6)),
		msg(layers.DHCPv6MsgTypeRenew, clientID, ourServerID, clientIANA(testIAID, testGuest6, offLink6)),
		msg(layers.DHCPv6MsgTypeConfirm, clientID, clientIANA(testIAID, testGuest6)),
		msg(layers.DHCPv6MsgTypeInformationRequest, optionReq),
	}
}

// FuzzDHCPv6 feeds arbitrary DHCPv6 messages from the guest to the
// server: no panic, one well-formed reply at most.
func FuzzDHCPv6(f *testing.F) {
	for _, d := range dhcpv6Seeds() {
		f.Add(serialize(f, d))
	}
	tp := newTestPasta(f, func(c *config) { c.fqdn = "my.fq.dn" })
	withDNS(tp)
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > maxFuzzPayload {
			t.Skip("does not fit in a frame")
		}
		tp.t = t
		ip := ip6(testGuestLL6, allDHCPServers, layers.IPProtocolUDP)
		udp := withChecksumLayer(&layers.UDP{SrcPort: dhcpv6ClientPort, DstPort: dhcpv6ServerPort}, ip)
		tp.c.handleFrame(serialize(t, ethTo(allDHCPMAC, layers.EthernetTypeIPv6), ip, udp, gopacket.Payload(payload)))
		checkFuzzReplies(t, tp)
	})
}

// Without an IPv6 address on the host there is no address to give.
func TestDHCPv6NoAddressToGive(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.c.ip6.addr = netip.Addr{}
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeSolicit, clientID, clientIANA(testIAID)))
	r := expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeAdvertise)
	checkStatus(t, r.one(t, layers.DHCPv6OptStatusCode), dhcpv6NoAddrsAvail)
	tp.injectRaw(dhcpv6Frame(t, layers.DHCPv6MsgTypeRequest, clientID, ourServerID, clientIANA(testIAID)))
	r = expectDHCPv6Reply(t, tp, layers.DHCPv6MsgTypeReply)
	_, _, _, addrs, status := decodeIANA(t, r.one(t, layers.DHCPv6OptIANA))
	if len(addrs) != 0 {
		t.Errorf("addresses %v given", addrs)
	}
	checkStatus(t, status, dhcpv6NoAddrsAvail)
}
