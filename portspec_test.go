package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// rng is a range bound to any address.
func fwdR(first, last, target uint16) fwdRange {
	return fwdRange{first: first, last: last, target: target}
}

// brng is a range bound to an address (may be "") and an interface.
func boundR(addr, ifname string, first, last, target uint16) fwdRange {
	r := fwdR(first, last, target)
	if addr != "" {
		r.bindAddr = netip.MustParseAddr(addr)
	}
	r.bindIf = ifname
	return r
}

func portList(ranges ...fwdRange) fwdSpec {
	return fwdSpec{given: true, ranges: ranges}
}

// noneSpec is what "none" gives.
var noneSpec = fwdSpec{given: true}

// autoSpec is what "auto" gives.
func autoSpec(t *testing.T) fwdSpec {
	t.Helper()
	s, err := parsePortSpec("auto", true)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// toR sets a rule's target address.
func toR(r fwdRange, addr string) fwdRange {
	r.targetAddr = netip.MustParseAddr(addr)
	return r
}

// autoR and effortR set a rule's flags.
func autoR(r fwdRange) fwdRange   { r.auto = true; return r }
func effortR(r fwdRange) fwdRange { r.bestEffort = true; return r }

// showRanges formats ranges for failure messages, in port spec syntax.
func showRanges(ranges []fwdRange) string {
	var parts []string
	for _, r := range ranges {
		where := ""
		if r.bindAddr.IsValid() || r.bindIf != "" {
			where = fmt.Sprintf("%v%%%s/", r.bindAddr, r.bindIf)
		}
		flags := ""
		if r.auto {
			flags += ",auto"
		}
		if r.bestEffort {
			flags += ",best-effort"
		}
		if r.targetAddr.IsValid() {
			flags += ",to=" + r.targetAddr.String()
		}
		parts = append(parts, fmt.Sprintf("%s%d-%d:%d%s", where, r.first, r.last, r.target, flags))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func sameSpec(a, b fwdSpec) bool {
	return a.given == b.given && slices.Equal(a.ranges, b.ranges)
}

// ephemeralOrSkip returns the host's ephemeral range, skipping tests whose
// expectations assume it doesn't touch low or top ports.
func ephemeralOrSkip(t *testing.T) (lo, hi uint16) {
	t.Helper()
	l, h := ephemeralPortRange()
	if l <= 3010 || h >= maxPort {
		t.Skipf("unusual ephemeral port range %d-%d", l, h)
	}
	return uint16(l), uint16(h)
}

func TestParsePortSpec(t *testing.T) {
	tests := []struct {
		spec string
		want fwdSpec
	}{
		{"none", noneSpec},
		{"22", portList(fwdR(22, 22, 22))},
		{"022", portList(fwdR(22, 22, 22))},
		{"1", portList(fwdR(1, 1, 1))},
		{"65535", portList(fwdR(65535, 65535, 65535))},
		{"22:23", portList(fwdR(22, 22, 23))},
		{"22,25", portList(fwdR(22, 22, 22), fwdR(25, 25, 25))},
		{"25,22", portList(fwdR(25, 25, 25), fwdR(22, 22, 22))},
		{"22,23,24", portList(fwdR(22, 22, 22), fwdR(23, 23, 23), fwdR(24, 24, 24))},
		{"22-80", portList(fwdR(22, 80, 22))},
		{"80-80", portList(fwdR(80, 80, 80))},
		{"22-80:32-90", portList(fwdR(22, 80, 32))},
		{"8080:80,8081:81", portList(fwdR(8080, 8080, 80), fwdR(8081, 8081, 81))},
		{"8080:80,8081:82", portList(fwdR(8080, 8080, 80), fwdR(8081, 8081, 82))},
		{"1-65535", portList(fwdR(1, 65535, 1))},
		{"65535:1", portList(fwdR(65535, 65535, 1))},
		{"1-10:65526-65535", portList(fwdR(1, 10, 65526))},
		{"2000-5000,~3000-3010", portList(fwdR(2000, 2999, 2000), fwdR(3011, 5000, 3011))},
		{"~3000-3010,2000-5000", portList(fwdR(2000, 2999, 2000), fwdR(3011, 5000, 3011))},
		{"20-30,~25", portList(fwdR(20, 24, 20), fwdR(26, 30, 26))},
		{"20-30:120-130,~25", portList(fwdR(20, 24, 120), fwdR(26, 30, 126))},
		{"3005-3007:4005-4007,~3006,3000", portList(fwdR(3005, 3005, 4005), fwdR(3007, 3007, 4007), fwdR(3000, 3000, 3000))},
		{"20-30,~20-30", portList()},
		{"20-30,~100", portList(fwdR(20, 30, 20))},
		{"20-30,~25,~25", portList(fwdR(20, 24, 20), fwdR(26, 30, 26))},
		{"8000-8010,auto", portList(autoR(fwdR(8000, 8010, 8000)))},
		{"auto,22", portList(autoR(fwdR(22, 22, 22)))},
		{"10,auto,~5,auto", portList(autoR(fwdR(10, 10, 10)))},
		{"192.0.2.1/8000-8010:9000-9010,auto", portList(autoR(boundR("192.0.2.1", "", 8000, 8010, 9000)))},
		{"192.0.2.1/22", portList(boundR("192.0.2.1", "", 22, 22, 22))},
		{"192.0.2.1/20-30,~25", portList(boundR("192.0.2.1", "", 20, 24, 20), boundR("192.0.2.1", "", 26, 30, 26))},
		{"192.0.2.1%eth0/22", portList(boundR("192.0.2.1", "eth0", 22, 22, 22))},
		{"%eth0/22", portList(boundR("", "eth0", 22, 22, 22))},
		{"127.0.0.1/8082-8082:80-80", portList(boundR("127.0.0.1", "", 8082, 8082, 80))},
		{"::1/8084-8084:80-80", portList(boundR("::1", "", 8084, 8084, 80))},
		{"[::1]/8084", portList(boundR("::1", "", 8084, 8084, 8084))},
		{"fe80::1%eth0/22", portList(boundR("fe80::1", "eth0", 22, 22, 22))},
		{"0.0.0.0/22", portList(boundR("0.0.0.0", "", 22, 22, 22))},
		{"::/22", portList(boundR("::", "", 22, 22, 22))},
		{"[::]/8080", portList(boundR("::", "", 8080, 8080, 8080))},
		// Target addresses (pasta(1) 2026: "toaddr"), as Podman 6 gives them.
		{"0.0.0.0/8080:10.89.0.2/80", portList(toR(boundR("0.0.0.0", "", 8080, 8080, 80), "10.89.0.2"))},
		{"[::]/8080:fd00::2/80", portList(toR(boundR("::", "", 8080, 8080, 80), "fd00::2"))},
		{"[::]/8080:[fd00::2]/80", portList(toR(boundR("::", "", 8080, 8080, 80), "fd00::2"))},
		{"0.0.0.0/8000-8004:10.0.0.2/80-84", portList(toR(boundR("0.0.0.0", "", 8000, 8004, 80), "10.0.0.2"))},
		{"0.0.0.0/8000-8001:10.0.0.2", portList(toR(boundR("0.0.0.0", "", 8000, 8001, 8000), "10.0.0.2"))},
		{"0.0.0.0/8000,8001:10.0.0.3", portList(boundR("0.0.0.0", "", 8000, 8000, 8000), toR(boundR("0.0.0.0", "", 8001, 8001, 8001), "10.0.0.3"))},
		{"127.0.0.1/443:10.0.0.2/443,~443", portList()},
		{"8080:fd00::2/80", portList(boundR("8080:fd00::2", "", 80, 80, 80))}, // an address, as in the C pasta
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := parsePortSpec(tt.spec, true)
			if err != nil {
				t.Fatalf("parsePortSpec(%q): %v", tt.spec, err)
			}
			if !sameSpec(got, tt.want) {
				t.Errorf("parsePortSpec(%q) = %s, want %s",
					tt.spec, showRanges(got.ranges), showRanges(tt.want.ranges))
			}
		})
	}
}

func TestParsePortSpecUDPSameAsTCP(t *testing.T) {
	for _, spec := range []string{"22", "20-30:40-50,~25", "::1/53"} {
		tcp, errTCP := parsePortSpec(spec, true)
		udp, errUDP := parsePortSpec(spec, false)
		if errTCP != nil || errUDP != nil || !sameSpec(tcp, udp) {
			t.Errorf("%q: TCP %s %v, UDP %s %v", spec, showRanges(tcp.ranges), errTCP, showRanges(udp.ranges), errUDP)
		}
	}
}

func TestParsePortSpecAllAndExclusionsOnly(t *testing.T) {
	lo, hi := ephemeralOrSkip(t)
	tests := []struct {
		spec string
		want fwdSpec
	}{
		{"all", portList(effortR(fwdR(1, lo-1, 1)), effortR(fwdR(hi+1, maxPort, hi+1)))},
		{"auto", portList(autoR(effortR(fwdR(1, lo-1, 1))), autoR(effortR(fwdR(hi+1, maxPort, hi+1))))},
		{"::1/all", portList(effortR(boundR("::1", "", 1, lo-1, 1)), effortR(boundR("::1", "", hi+1, maxPort, hi+1)))},
		{"127.0.0.6/all:192.0.2.6", portList(toR(effortR(boundR("127.0.0.6", "", 1, lo-1, 1)), "192.0.2.6"),
			toR(effortR(boundR("127.0.0.6", "", hi+1, maxPort, hi+1)), "192.0.2.6"))},
		{"192.0.2.2/auto", portList(autoR(effortR(boundR("192.0.2.2", "", 1, lo-1, 1))), autoR(effortR(boundR("192.0.2.2", "", hi+1, maxPort, hi+1))))},
		{"auto,~22", portList(autoR(effortR(fwdR(1, 21, 1))), autoR(effortR(fwdR(23, lo-1, 23))), autoR(effortR(fwdR(hi+1, maxPort, hi+1))))},
		{"~22", portList(effortR(fwdR(1, 21, 1)), effortR(fwdR(23, lo-1, 23)), effortR(fwdR(hi+1, maxPort, hi+1)))},
		{"~1-1024,~65535", portList(effortR(fwdR(1025, lo-1, 1025)), effortR(fwdR(hi+1, maxPort-1, hi+1)))},
		{"~22,~25-30", portList(effortR(fwdR(1, 21, 1)), effortR(fwdR(23, 24, 23)), effortR(fwdR(31, lo-1, 31)), effortR(fwdR(hi+1, maxPort, hi+1)))},
		{"127.0.0.1/~22", portList(
			effortR(boundR("127.0.0.1", "", 1, 21, 1)),
			effortR(boundR("127.0.0.1", "", 23, lo-1, 23)),
			effortR(boundR("127.0.0.1", "", hi+1, maxPort, hi+1)))},
	}
	for _, tt := range tests {
		got, err := parsePortSpec(tt.spec, false)
		if err != nil {
			t.Errorf("parsePortSpec(%q): %v", tt.spec, err)
		} else if !sameSpec(got, tt.want) {
			t.Errorf("parsePortSpec(%q) = %s, want %s",
				tt.spec, showRanges(got.ranges), showRanges(tt.want.ranges))
		}
	}
}

func TestParsePortSpecErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", "invalid port spec '': no ports given"},
		{"0", "invalid port spec '0': port '0' out of range (1-65535)"},
		{"70000", "invalid port spec '70000': port '70000' out of range (1-65535)"},
		{"65536", "invalid port spec '65536': port '65536' out of range (1-65535)"},
		{"99999999999999999999999", "invalid port spec '99999999999999999999999': port '99999999999999999999999' out of range (1-65535)"},
		{"80-70", "invalid port spec '80-70': range end before start"},
		{"abc", "invalid port spec 'abc': invalid port 'abc'"},
		{"+22", "invalid port spec '+22': invalid port '+22'"},
		{"-22", "invalid port spec '-22': invalid port ''"},
		{"22-", "invalid port spec '22-': invalid port ''"},
		{"22-23-24", "invalid port spec '22-23-24': invalid port '23-24'"},
		{"22,", "invalid port spec '22,': invalid port ''"},
		{",22", "invalid port spec ',22': invalid port ''"},
		{"22,,23", "invalid port spec '22,,23': invalid port ''"},
		{" 22", "invalid port spec ' 22': invalid port ' 22'"},
		{"22:", "invalid port spec '22:': invalid port ''"},
		{"22:0", "invalid port spec '22:0': port '0' out of range (1-65535)"},
		{"22:23:24", "invalid port spec '22:23:24': invalid port '23:24'"},
		{"~", "invalid port spec '~': invalid port ''"},
		{"~~22", "invalid port spec '~~22': invalid port '~22'"},
		{"~22:23", "invalid port spec '~22:23': excluded ports '~22:23' can't have a target"},
		{"22-80:32-89", "invalid port spec '22-80:32-89': target range '32-89' doesn't match the length of '22-80'"},
		{"22:32-33", "invalid port spec '22:32-33': target range '32-33' doesn't match the length of '22'"},
		{"22-80:65500-65558", "invalid port spec '22-80:65500-65558': port '65558' out of range (1-65535)"},
		{"1-2:3", "invalid port spec '1-2:3': target range '3' doesn't match the length of '1-2'"},
		{"1-65535:1", "invalid port spec '1-65535:1': target range '1' doesn't match the length of '1-65535'"},
		{"20-30,25", "invalid port spec '20-30,25': port 25 given more than once"},
		{"22,22", "invalid port spec '22,22': port 22 given more than once"},
		{"10-20:100-110,15-25:200-210", "invalid port spec '10-20:100-110,15-25:200-210': port 15 given more than once"},
		{"1.2.3.4/", "invalid port spec '1.2.3.4/': no ports given"},
		{"/22", "invalid port spec '/22': missing address before '/'"},
		{"1.2.3/22", "invalid port spec '1.2.3/22': invalid address '1.2.3'"},
		{"[::1/22", "invalid port spec '[::1/22': invalid address '[::1'"},
		{"::1]/22", "invalid port spec '::1]/22': invalid address '::1]'"},
		{"1.2.3.4%/22", "invalid port spec '1.2.3.4%/22': invalid interface name ''"},
		{"%/22", "invalid port spec '%/22': invalid interface name ''"},
		{"%averyveryverylongname/22", "invalid port spec '%averyveryverylongname/22': invalid interface name 'averyveryverylongname'"},
		{"1.2.3.4/22/23", "invalid port spec '1.2.3.4/22/23': invalid port '22/23'"},
		{"NONE", "invalid port spec 'NONE': invalid port 'NONE'"},
		{"AUTO", "invalid port spec 'AUTO': invalid port 'AUTO'"},
		{"all,22", "invalid port spec 'all,22': 'all' can't be combined with ports or 'auto'"},
		{"8080:10.0.0.2/80", "invalid port spec '8080:10.0.0.2/80': target address 10.0.0.2 needs a listening address of its family (0.0.0.0/ or [::]/)"},
		{"22:192.0.2.5", "invalid port spec '22:192.0.2.5': target address 192.0.2.5 needs a listening address of its family (0.0.0.0/ or [::]/)"},
		{"all:192.0.2.6", "invalid port spec 'all:192.0.2.6': target address 192.0.2.6 needs a listening address of its family (0.0.0.0/ or [::]/)"},
		{"%eth0/22:192.0.2.5", "invalid port spec '%eth0/22:192.0.2.5': target address 192.0.2.5 needs a listening address of its family (0.0.0.0/ or [::]/)"},
		{"0.0.0.0/8080:fd00::2/80", "invalid port spec '0.0.0.0/8080:fd00::2/80': target address fd00::2 and listening address 0.0.0.0 are of different families"},
		{"0.0.0.0/8080:10.0.0/80", "invalid port spec '0.0.0.0/8080:10.0.0/80': invalid target address '10.0.0'"},
		{"0.0.0.0/8080:10.0.0.2/", "invalid port spec '0.0.0.0/8080:10.0.0.2/': invalid port ''"},
		{"0.0.0.0/all:x", "invalid port spec '0.0.0.0/all:x': invalid target address 'x'"},
		{"0.0.0.0/~80:10.0.0.2", "invalid port spec '0.0.0.0/~80:10.0.0.2': excluded ports '~80:10.0.0.2' can't have a target"},
		{"0.0.0.0/8000-8001:10.0.0.2/80", "invalid port spec '0.0.0.0/8000-8001:10.0.0.2/80': target range '80' doesn't match the length of '8000-8001'"},
		{"auto,all", "invalid port spec 'auto,all': 'all' can't be combined with ports or 'auto'"},
		{"none,22", "invalid port spec 'none,22': invalid port 'none'"},
	}
	for _, tt := range tests {
		got, err := parsePortSpec(tt.spec, true)
		if err == nil {
			t.Errorf("parsePortSpec(%q) = %s, want error %q", tt.spec, showRanges(got.ranges), tt.want)
		} else if err.Error() != tt.want {
			t.Errorf("parsePortSpec(%q) error:\n got %q\nwant %q", tt.spec, err, tt.want)
		}
	}
}

func TestAddPortSpec(t *testing.T) {
	tests := []struct {
		name  string
		specs []string
		want  fwdSpec
	}{
		{"nothing", nil, fwdSpec{}},
		{"none twice", []string{"none", "none"}, noneSpec},
		{"none, then ports", []string{"none", "22"}, portList(fwdR(22, 22, 22))},
		{"ports, then none", []string{"22", "none"}, portList(fwdR(22, 22, 22))},
		{"lists accumulate in order", []string{"30", "10-12:20-22"}, portList(fwdR(30, 30, 30), fwdR(10, 12, 20))},
		{"adjacent lists stay apart", []string{"22", "23"}, portList(fwdR(22, 22, 22), fwdR(23, 23, 23))},
		{"auto and explicit ports apart", []string{"8000-8010,auto", "9000"}, portList(autoR(fwdR(8000, 8010, 8000)), fwdR(9000, 9000, 9000))},
		{"podman", []string{"127.0.0.1/8082-8082:80-80", "9000-9001:9000-9001", "::1/8084-8084:80-80"},
			portList(boundR("127.0.0.1", "", 8082, 8082, 80), fwdR(9000, 9001, 9000), boundR("::1", "", 8084, 8084, 80))},
		{"podman 6, both families", []string{"0.0.0.0/8080", "[::]/8080"},
			portList(boundR("0.0.0.0", "", 8080, 8080, 8080), boundR("::", "", 8080, 8080, 8080))},
		{"same port, addresses and interfaces apart", []string{"127.0.0.1/80", "::1/80", "192.0.2.1/80", "%eth0/81", "%lo/81"},
			portList(boundR("127.0.0.1", "", 80, 80, 80), boundR("::1", "", 80, 80, 80), boundR("192.0.2.1", "", 80, 80, 80),
				boundR("", "eth0", 81, 81, 81), boundR("", "lo", 81, 81, 81))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got fwdSpec
			for _, spec := range tt.specs {
				if err := addPortSpec(&got, spec, true); err != nil {
					t.Fatalf("addPortSpec(%q): %v", spec, err)
				}
			}
			if !sameSpec(got, tt.want) {
				t.Errorf("got %s, want %s", showRanges(got.ranges), showRanges(tt.want.ranges))
			}
		})
	}
}

func TestAddPortSpecErrors(t *testing.T) {
	tests := []struct {
		specs []string
		want  string
	}{
		{[]string{"auto", "auto"}, "invalid port spec 'auto': port 1 given more than once"},
		{[]string{"auto", "22"}, "invalid port spec '22': port 22 given more than once"},
		{[]string{"22", "auto"}, "invalid port spec 'auto': port 22 given more than once"},
		{[]string{"all", "~22"}, "invalid port spec '~22': port 1 given more than once"},
		{[]string{"0.0.0.0/22", "22"}, "invalid port spec '22': port 22 given more than once"},
		{[]string{"22", "::/20-30"}, "invalid port spec '::/20-30': port 22 given more than once"},
		{[]string{"%eth0/22", "127.0.0.1/22"}, "invalid port spec '127.0.0.1/22': port 22 given more than once"},
		{[]string{"20-30", "25"}, "invalid port spec '25': port 25 given more than once"},
		{[]string{"::1/20-30", "::1/10-20"}, "invalid port spec '::1/10-20': port 20 given more than once"},
		{[]string{"22", "0"}, "invalid port spec '0': port '0' out of range (1-65535)"},
	}
	for _, tt := range tests {
		var s fwdSpec
		var err error
		for _, spec := range tt.specs {
			if err = addPortSpec(&s, spec, false); err != nil {
				break
			}
		}
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q: error %v, want %q", tt.specs, err, tt.want)
		}
	}
}

func TestUntranslatedCopy(t *testing.T) {
	src := portList(boundR("::1", "", 80, 80, 8080), fwdR(8080, 8080, 80), fwdR(8081, 8081, 82), fwdR(9000, 9010, 100),
		autoR(fwdR(7000, 7010, 7000)), effortR(fwdR(6000, 6010, 6000)))
	want := portList(boundR("::1", "", 80, 80, 80), fwdR(8080, 8080, 8080), fwdR(8081, 8081, 8081), fwdR(9000, 9010, 9000))
	got := untranslatedCopy(src)
	if !sameSpec(got, want) {
		t.Errorf("untranslatedCopy = %s, want %s", showRanges(got.ranges), showRanges(want.ranges))
	}
	if src.ranges[0].target != 8080 {
		t.Error("untranslatedCopy modified its argument")
	}
}

func TestRangesConflict(t *testing.T) {
	tests := []struct {
		a, b fwdRange
		want bool
	}{
		{fwdR(1, 10, 1), fwdR(11, 20, 11), false},
		{fwdR(1, 10, 1), fwdR(10, 20, 10), true},
		{fwdR(1, 10, 1), boundR("0.0.0.0", "", 5, 5, 5), true},
		{boundR("0.0.0.0", "", 5, 5, 5), boundR("::", "", 5, 5, 5), false},
		{boundR("0.0.0.0", "", 5, 5, 5), boundR("192.0.2.1", "", 5, 5, 5), true},
		{boundR("::", "", 5, 5, 5), boundR("::1", "", 5, 5, 5), true},
		{boundR("192.0.2.1", "", 5, 5, 5), boundR("192.0.2.2", "", 5, 5, 5), false},
		{boundR("192.0.2.1", "", 5, 5, 5), boundR("::1", "", 5, 5, 5), false},
		{boundR("", "eth0", 5, 5, 5), boundR("", "lo", 5, 5, 5), false},
		{boundR("", "eth0", 5, 5, 5), fwdR(5, 5, 5), true},
		{boundR("127.0.0.1", "lo", 5, 5, 5), boundR("", "eth0", 5, 5, 5), false},
	}
	for _, tt := range tests {
		if got := rangesConflict(tt.a, tt.b); got != tt.want {
			t.Errorf("rangesConflict(%s, %s) = %v, want %v", showRanges([]fwdRange{tt.a}), showRanges([]fwdRange{tt.b}), got, tt.want)
		}
		if got := rangesConflict(tt.b, tt.a); got != tt.want {
			t.Errorf("rangesConflict(%s, %s) = %v, want %v", showRanges([]fwdRange{tt.b}), showRanges([]fwdRange{tt.a}), got, tt.want)
		}
	}
}

// checkRanges reports what makes the rules of one spec an invalid parse
// result, if anything: they share a binding, so no two may overlap.
func checkRanges(ranges []fwdRange) error {
	for i, r := range ranges {
		switch {
		case r.first == 0 || r.first > r.last:
			return fmt.Errorf("bad range %s", showRanges(ranges[i:i+1]))
		case r.target == 0 || int(r.target)+int(r.last-r.first) > maxPort:
			return fmt.Errorf("bad target in %s", showRanges(ranges[i:i+1]))
		case r.bindAddr != ranges[0].bindAddr || r.bindIf != ranges[0].bindIf:
			return fmt.Errorf("%s: binding differs from the first rule's", showRanges(ranges[i:i+1]))
		}
		if _, clash := firstConflict(ranges[:i], r); clash {
			return fmt.Errorf("%s overlaps a previous range", showRanges(ranges[i:i+1]))
		}
	}
	return nil
}

func FuzzParsePortSpec(f *testing.F) {
	// More seeds are in testdata/fuzz/FuzzParsePortSpec.
	for _, seed := range []string{"22", "all", "none", "8000-8010,auto", "[::]/8080"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		got, err := parsePortSpec(spec, true)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "invalid port spec '") {
				t.Errorf("parsePortSpec(%q): error %q doesn't name the spec", spec, err)
			}
			return
		}
		if err := checkRanges(got.ranges); err != nil {
			t.Errorf("parsePortSpec(%q): %v", spec, err)
		}
		var merged fwdSpec
		if err := addPortSpec(&merged, spec, true); err != nil {
			t.Fatalf("addPortSpec(%q) failed after parsePortSpec succeeded: %v", spec, err)
		}
		if !sameSpec(merged, got) {
			t.Errorf("addPortSpec(%q) into nothing = %s, want %s", spec, showRanges(merged.ranges), showRanges(got.ranges))
		}
	})
}
