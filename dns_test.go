package main

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var (
	// The host's resolv.conf of most DNS tests: a loopback resolver of
	// each family, a global one, a link-local one with its zone.
	testResolvConf = resolvConf{
		nameservers: addrs("127.0.0.53", "192.0.2.53", "2001:db8::53", "::1", "fe80::53%eth0"),
		search:      []string{"example.com", "test.example.org"},
	}
	testForward4 = netip.MustParseAddr("192.0.2.99")
	testForward6 = netip.MustParseAddr("2001:db8::99")
)

func addrs(list ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestParseResolvConf(t *testing.T) {
	rc := parseResolvConf(strings.NewReader(`# generated
nameserver 127.0.0.53
  nameserver 192.0.2.53   # indented, with a comment
nameserver bogus
nameserver ::ffff:192.0.2.54
nameserver fe80::53%eth0
nameserver
options edns0 trust-ad
search first.example
domain d.example
search a.example b.example ; last one wins
`))
	want := addrs("127.0.0.53", "192.0.2.53", "192.0.2.54", "fe80::53%eth0")
	if !slices.Equal(rc.nameservers, want) {
		t.Errorf("nameservers %v, want %v", rc.nameservers, want)
	}
	if !slices.Equal(rc.search, []string{"a.example", "b.example"}) {
		t.Errorf("search %q, want the last search line's", rc.search)
	}
	if rc := parseResolvConf(strings.NewReader("domain d.example\n")); !slices.Equal(rc.search, []string{"d.example"}) {
		t.Errorf("domain alone: search %q", rc.search)
	}
}

func TestReadResolvConfMissingFile(t *testing.T) {
	rc := readResolvConf(t.TempDir() + "/none")
	if len(rc.nameservers) != 0 || len(rc.search) != 0 {
		t.Errorf("missing file gave %+v", rc)
	}
}

// The cases mirror what C pasta (2025-05) advertises with the same
// resolv.conf and options.
func TestResolveDNS(t *testing.T) {
	for _, tc := range []struct {
		name         string
		cfg          config
		noMap        bool // --no-map-gw: no --map-host-loopback address
		want4, want6 []netip.Addr
	}{
		{name: "not asked for", cfg: config{}},
		{name: "loopback via the gateway", cfg: config{dhcpDNS: true},
			want4: addrs("10.0.2.2", "192.0.2.53"), want6: addrs("2001:db8::53", "fe80::1", "fe80::53")},
		{name: "loopback unreachable", cfg: config{dhcpDNS: true}, noMap: true,
			want4: addrs("192.0.2.53"), want6: addrs("2001:db8::53", "fe80::53")},
		{name: "loopback via --dns-forward", cfg: config{dhcpDNS: true, dnsForward4: testForward4, dnsForward6: testForward6},
			want4: addrs("192.0.2.99", "192.0.2.53"), want6: addrs("2001:db8::53", "2001:db8::99", "fe80::53")},
		{name: "-D as given", cfg: config{dhcpDNS: true, dns: addrs("127.0.0.1", "192.0.2.7", "::1"), dnsForward4: testForward4},
			want4: addrs("127.0.0.1", "192.0.2.7"), want6: addrs("::1")},
		{name: "-D none", cfg: config{dhcpDNS: true, dnsNone: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip4 := ipConf{mapHostLoopback: testGW4}
			ip6 := ipConf{mapHostLoopback: testGW6}
			if tc.noMap {
				ip4.mapHostLoopback, ip6.mapHostLoopback = netip.Addr{}, netip.Addr{}
			}
			d := resolveDNS(&tc.cfg, &ip4, &ip6, testResolvConf)
			if !slices.Equal(d.guest4, tc.want4) || !slices.Equal(d.guest6, tc.want6) {
				t.Errorf("advertised %v and %v, want %v and %v", d.guest4, d.guest6, tc.want4, tc.want6)
			}
			if d.host4 != netip.MustParseAddr("127.0.0.53") || d.host6 != netip.MustParseAddr("2001:db8::53") {
				t.Errorf("host resolvers %v, %v", d.host4, d.host6)
			}
		})
	}
}

func TestResolveDNSHostResolverOption(t *testing.T) {
	cfg := config{dnsHost4: netip.MustParseAddr("192.0.2.88"), dnsHost6: netip.MustParseAddr("::1")}
	d := resolveDNS(&cfg, &ipConf{}, &ipConf{}, testResolvConf)
	if d.host4 != cfg.dnsHost4 || d.host6 != cfg.dnsHost6 {
		t.Errorf("host resolvers %v, %v; want --dns-host's", d.host4, d.host6)
	}
	if d := resolveDNS(&config{}, &ipConf{}, &ipConf{}, resolvConf{}); d.host4.IsValid() || d.host6.IsValid() {
		t.Errorf("no resolv.conf: host resolvers %v, %v", d.host4, d.host6)
	}
}

func TestResolveDNSKeepsFourPerFamily(t *testing.T) {
	rc := resolvConf{nameservers: addrs("192.0.2.51", "192.0.2.52", "192.0.2.53", "192.0.2.54", "192.0.2.55", "2001:db8::51")}
	d := resolveDNS(&config{dhcpDNS: true}, &ipConf{}, &ipConf{}, rc)
	if !slices.Equal(d.guest4, rc.nameservers[:4]) || !slices.Equal(d.guest6, rc.nameservers[5:]) {
		t.Errorf("advertised %v and %v", d.guest4, d.guest6)
	}
}

func TestResolveSearchList(t *testing.T) {
	long := strings.Repeat("a", 64) + ".example"
	for _, tc := range []struct {
		name string
		cfg  config
		rc   resolvConf
		want []string
	}{
		{"not asked for", config{}, testResolvConf, nil},
		{"from resolv.conf", config{dhcpSearch: true}, testResolvConf, testResolvConf.search},
		{"-S", config{dhcpSearch: true, search: []string{"s.example."}}, testResolvConf, []string{"s.example."}},
		{"-S none", config{dhcpSearch: true, searchNone: true}, testResolvConf, nil},
		{"invalid skipped", config{dhcpSearch: true, search: []string{"a..b", long, ".", "ok.example"}}, resolvConf{}, []string{"ok.example"}},
		{"six at most", config{dhcpSearch: true, search: strings.Fields("a b c d e f g")}, resolvConf{}, strings.Fields("a b c d e f")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := resolveDNS(&tc.cfg, &ipConf{}, &ipConf{}, tc.rc)
			if got := decodeDomainNames(t, d.searchWire); !slices.Equal(got, trimDots(tc.want)) {
				t.Errorf("search list %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAppendDomainName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []byte // nil: invalid
	}{
		{"example.com", []byte("\x07example\x03com\x00")},
		{"example.com.", []byte("\x07example\x03com\x00")},
		{"x", []byte("\x01x\x00")},
		{"", nil},
		{".", nil},
		{"a..b", nil},
		{".a", nil},
		{strings.Repeat("a", 63), append(append([]byte{63}, strings.Repeat("a", 63)...), 0)},
		{strings.Repeat("a", 64), nil},
		{strings.Repeat("abcdefg.", 31) + "abcdef", nil}, // 254 characters: 256 octets encoded
	} {
		got, ok := appendDomainName([]byte{0xaa}, tc.name)
		if ok != (tc.want != nil) || (ok && !bytes.Equal(got[1:], tc.want)) || (!ok && !bytes.Equal(got, []byte{0xaa})) {
			t.Errorf("%q: got %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
	longest := strings.Repeat("abcdefg.", 31) + "abcde" // 253 characters: 255 octets
	if b, ok := appendDomainName(nil, longest); !ok || len(b) != maxDomainWireLen {
		t.Errorf("253-character name: %d octets, %v", len(b), ok)
	}
}

// decodeDomainNames decodes a list of uncompressed domain names in wire
// format (RFC 1035 section 3.1), as RFC 3397, RFC 3646 and RFC 8106 carry
// them, ignoring trailing zero padding (RFC 8106 section 5.2).
func decodeDomainNames(t *testing.T, b []byte) []string {
	t.Helper()
	var names []string
	var labels []string
	for len(b) > 0 {
		n := int(b[0])
		switch {
		case n == 0 && len(labels) == 0:
			b = b[1:] // padding
		case n == 0:
			names, labels = append(names, strings.Join(labels, ".")), nil
			b = b[1:]
		case n > maxLabelLen || n+1 > len(b):
			t.Fatalf("bad label length %d in % x", n, b)
		default:
			labels = append(labels, string(b[1:1+n]))
			b = b[1+n:]
		}
	}
	if len(labels) > 0 {
		t.Fatalf("unterminated name %q", labels)
	}
	return names
}

func trimDots(list []string) []string {
	var out []string
	for _, s := range list {
		out = append(out, strings.TrimSuffix(s, "."))
	}
	return out
}
