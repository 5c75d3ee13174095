package main

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
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

func TestNoNDPIgnoresNeighborSolicitations(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.noNDP = true })
	neighborSolicitation(tp, testGuestLL6, testGW6, 255)
	tp.expectNoFrame(noWait)
}

var allRoutersMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2} // RFC 2464 section 7

// routerSolicitation sends a router solicitation (RFC 4861 section 4.1)
// to all routers, with the guest's MAC as source link-layer address unless
// it comes from the unspecified address.
func routerSolicitation(tp *testPasta, src netip.Addr, hopLimit uint8, code uint8) {
	ip := ip6(src, netip.MustParseAddr("ff02::2"), layers.IPProtocolICMPv6)
	ip.HopLimit = hopLimit
	icmp := withChecksumLayer(&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeRouterSolicitation, code)}, ip)
	rs := &layers.ICMPv6RouterSolicitation{}
	if !src.IsUnspecified() {
		rs.Options = layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: testGuestMAC}}
	}
	tp.inject(ethTo(allRoutersMAC, layers.EthernetTypeIPv6), ip, icmp, rs)
}

// expectRouterAdvert reads the next frame and checks that it is our router
// advertisement to dst at dstMAC: addresses, hop limit, checksum, and the
// fields C pasta sets. It returns the options by type, and their order.
func expectRouterAdvert(t *testing.T, tp *testPasta, dstMAC net.HardwareAddr, dst netip.Addr) (map[layers.ICMPv6Opt][]byte, []layers.ICMPv6Opt) {
	t.Helper()
	pkt := tp.expectPacket()
	ra, ok := pkt.Layer(layers.LayerTypeICMPv6RouterAdvertisement).(*layers.ICMPv6RouterAdvertisement)
	if !ok {
		t.Fatalf("no router advertisement: %v", pkt)
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	// RFC 4861 section 6.1.2: from a link-local address, hop limit 255.
	if !bytes.Equal(eth.DstMAC, dstMAC) || !ip.SrcIP.Equal(testGW6.AsSlice()) || !ip.DstIP.Equal(dst.AsSlice()) || ip.HopLimit != 255 {
		t.Errorf("advertisement %s -> %s at %s, hop limit %d", ip.SrcIP, ip.DstIP, eth.DstMAC, ip.HopLimit)
	}
	checkICMPv6Checksum(t, pkt)
	if ra.HopLimit != 255 || ra.Flags != raFlagManaged || ra.RouterLifetime != 65535 || ra.ReachableTime != 0 || ra.RetransTimer != 0 {
		t.Errorf("hop limit %d flags %#x lifetime %d reachable %d retrans %d", ra.HopLimit, ra.Flags, ra.RouterLifetime, ra.ReachableTime, ra.RetransTimer)
	}
	opts := map[layers.ICMPv6Opt][]byte{}
	var order []layers.ICMPv6Opt
	for _, o := range ra.Options {
		if _, dup := opts[o.Type]; dup {
			t.Errorf("option %v twice", o.Type)
		}
		opts[o.Type] = o.Data
		order = append(order, o.Type)
	}
	return opts, order
}

func TestRouterSolicitationAnswered(t *testing.T) {
	tp := newTestPasta(t, nil)
	routerSolicitation(tp, testGuestLL6, 255, 0)
	opts, order := expectRouterAdvert(t, tp, testGuestMAC, testGuestLL6)
	want := []layers.ICMPv6Opt{layers.ICMPv6OptPrefixInfo, layers.ICMPv6OptSourceAddress, layers.ICMPv6OptMTU}
	if !slices.Equal(order, want) {
		t.Errorf("options %v, want %v", order, want)
	}
	// RFC 4861 section 4.6.2: /64, L and A, infinite lifetimes, reserved
	// bits of the prefix zero.
	prefix := netip.MustParseAddr("2001:db8:1::").AsSlice()
	wantPrefix := append([]byte{64, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, prefix...)
	if !bytes.Equal(opts[layers.ICMPv6OptPrefixInfo], wantPrefix) {
		t.Errorf("prefix information % x, want % x", opts[layers.ICMPv6OptPrefixInfo], wantPrefix)
	}
	if !bytes.Equal(opts[layers.ICMPv6OptSourceAddress], defaultOurMAC[:]) {
		t.Errorf("source link-layer address % x", opts[layers.ICMPv6OptSourceAddress])
	}
	if !bytes.Equal(opts[layers.ICMPv6OptMTU], []byte{0, 0, 0, 0, 0xff, 0xf0}) {
		t.Errorf("MTU option % x, want 65520", opts[layers.ICMPv6OptMTU])
	}
}

func TestRouterAdvertCarriesDNS(t *testing.T) {
	tp := newTestPasta(t, nil)
	withDNS(tp)
	routerSolicitation(tp, testGuestLL6, 255, 0)
	opts, order := expectRouterAdvert(t, tp, testGuestMAC, testGuestLL6)
	want := []layers.ICMPv6Opt{layers.ICMPv6OptPrefixInfo, layers.ICMPv6OptSourceAddress, layers.ICMPv6OptMTU, ndOptRDNSS, ndOptDNSSL}
	if !slices.Equal(order, want) {
		t.Errorf("options %v, want %v", order, want)
	}
	lifetime := []byte{0, 0, 0xff, 0xff, 0xff, 0xff} // reserved, infinite lifetime
	wantRDNSS := append(slices.Clone(lifetime), concatAddrs(addrs("2001:db8::53", "fe80::1", "fe80::53"))...)
	if !bytes.Equal(opts[ndOptRDNSS], wantRDNSS) {
		t.Errorf("RDNSS % x, want % x", opts[ndOptRDNSS], wantRDNSS)
	}
	dnssl := opts[ndOptDNSSL]
	if !bytes.HasPrefix(dnssl, lifetime) || (len(dnssl)+2)%8 != 0 {
		t.Fatalf("DNSSL % x: bad lifetime or not padded to 8 octets", dnssl)
	}
	if got := decodeDomainNames(t, dnssl[len(lifetime):]); !slices.Equal(got, testResolvConf.search) {
		t.Errorf("DNSSL domains %q", got)
	}
}

func TestRouterAdvertWithoutMTUOrPrefix(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.mtu = 0 })
	tp.c.ip6.addr = netip.Addr{} // no global address on the host
	routerSolicitation(tp, testGuestLL6, 255, 0)
	if _, order := expectRouterAdvert(t, tp, testGuestMAC, testGuestLL6); !slices.Equal(order, []layers.ICMPv6Opt{layers.ICMPv6OptSourceAddress}) {
		t.Errorf("options %v, want only the source link-layer address", order)
	}
}

// A host without an address yet gets the advertisement through all nodes,
// at most one every MIN_DELAY_BETWEEN_RAS (RFC 4861 section 6.2.6).
func TestRouterSolicitationFromUnspecifiedAddress(t *testing.T) {
	tp := newTestPasta(t, nil)
	routerSolicitation(tp, netip.IPv6Unspecified(), 255, 0)
	expectRouterAdvert(t, tp, net.HardwareAddr(allNodesMAC), allNodes)
	routerSolicitation(tp, netip.IPv6Unspecified(), 255, 0)
	tp.expectNoFrame(noWait)
	tp.c.ra.lastMulticast -= minDelayBetweenRAs
	routerSolicitation(tp, netip.IPv6Unspecified(), 255, 0)
	expectRouterAdvert(t, tp, net.HardwareAddr(allNodesMAC), allNodes)
}

func TestRouterSolicitationInvalid(t *testing.T) {
	tp := newTestPasta(t, nil)
	routerSolicitation(tp, testGuestLL6, 64, 0) // not from on-link (RFC 4861 section 6.1.1)
	routerSolicitation(tp, testGuestLL6, 255, 1)
	// From the unspecified address with a link-layer address option.
	ip := ip6(netip.IPv6Unspecified(), netip.MustParseAddr("ff02::2"), layers.IPProtocolICMPv6)
	ip.HopLimit = 255
	icmp := withChecksumLayer(&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeRouterSolicitation, 0)}, ip)
	tp.inject(ethTo(allRoutersMAC, layers.EthernetTypeIPv6), ip, icmp,
		&layers.ICMPv6RouterSolicitation{Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: testGuestMAC}}})
	if tp.c.stats.malformed != 3 {
		t.Errorf("%d solicitations counted as malformed, want 3", tp.c.stats.malformed)
	}
	// An option of length 0 (RFC 4861 section 4.6): the frame is malformed.
	frame := serialize(t, ethTo(allRoutersMAC, layers.EthernetTypeIPv6), ip, icmp, gopacket.Payload{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})
	tp.injectRaw(frame)
	tp.expectNoFrame(noWait)
}

func TestRouterAdvertsDisabled(t *testing.T) {
	for name, mutate := range map[string]func(*config){
		"--no-ra":      func(c *config) { c.noRA = true },
		"--no-ndp":     func(c *config) { c.noNDP = true },
		"--config-net": func(c *config) { c.configNet = true },
	} {
		t.Run(name, func(t *testing.T) {
			tp := newTestPasta(t, mutate)
			tp.c.ra.periodic = true
			routerSolicitation(tp, testGuestLL6, 255, 0)
			tp.c.sendPeriodicRouterAdvert()
			tp.expectNoFrame(noWait)
		})
	}
}

// Unsolicited advertisements (RFC 4861 section 6.2.4): one at start, two
// more at most 16 s apart, then one every 198 to 600 s.
func TestPeriodicRouterAdverts(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.c.sendPeriodicRouterAdvert()
	tp.expectNoFrame(noWait) // not armed: frame tests see no unsolicited frames
	tp.c.ra.periodic = true
	start := tp.c.now
	for i, at := range []int64{0, maxInitialRtrAdvertInterval, 2 * maxInitialRtrAdvertInterval} {
		tp.c.now = start + at
		tp.c.sendPeriodicRouterAdvert()
		expectRouterAdvert(t, tp, net.HardwareAddr(allNodesMAC), allNodes)
		tp.c.sendPeriodicRouterAdvert()
		if f := tp.readFrame(0); f != nil {
			t.Fatalf("advertisement %d sent twice", i)
		}
	}
	if next := tp.c.ra.next - tp.c.now; next < minRtrAdvInterval || next > maxRtrAdvInterval {
		t.Errorf("next advertisement in %d s", next/1e9)
	}
}

// ndpSeeds are router and neighbour solicitations, from the ICMPv6 type
// on, for the fuzzer.
func ndpSeeds(t testing.TB) [][]byte {
	slla := layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: testGuestMAC}}
	icmp := func(typ uint8, body gopacket.SerializableLayer) []byte {
		ip := ip6(testGuestLL6, allNodes, layers.IPProtocolICMPv6)
		return serialize(t, withChecksumLayer(&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}, ip), body)
	}
	return [][]byte{
		icmp(layers.ICMPv6TypeRouterSolicitation, &layers.ICMPv6RouterSolicitation{Options: slla}),
		icmp(layers.ICMPv6TypeRouterSolicitation, &layers.ICMPv6RouterSolicitation{}),
		icmp(layers.ICMPv6TypeNeighborSolicitation, &layers.ICMPv6NeighborSolicitation{TargetAddress: testGW6.AsSlice(), Options: slla}),
	}
}

// FuzzNDP feeds arbitrary router and neighbour solicitations from the
// guest (the first octet only chooses which): no panic, one well-formed
// answer at most.
func FuzzNDP(f *testing.F) {
	for _, seed := range ndpSeeds(f) {
		f.Add(seed)
	}
	tp := newTestPasta(f, nil)
	withDNS(tp)
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) == 0 || len(msg) > maxFuzzPayload {
			t.Skip("empty, or does not fit in a frame")
		}
		tp.t = t
		msg = slices.Clone(msg)
		msg[0] = layers.ICMPv6TypeRouterSolicitation + msg[0]&1*2 // 133 or 135
		for _, src := range []netip.Addr{testGuestLL6, netip.IPv6Unspecified()} {
			tp.c.ra.lastMulticast = 0
			ip := ip6(src, allNodes, layers.IPProtocolICMPv6)
			ip.HopLimit = 255
			tp.c.handleFrame(serialize(t, ethTo(allRoutersMAC, layers.EthernetTypeIPv6), ip, gopacket.Payload(msg)))
			checkFuzzReplies(t, tp)
		}
	})
}
