package main

import (
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"gopasta/internal/cmdline/cmdlinetest"
)

// defaultConfig is what parseArgs returns for an empty command line.
func defaultConfig() *config {
	return &config{logSize: defaultLogSize, mtu: -1}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// expectConfig returns the default configuration changed by edit.
func expectConfig(edit func(c *config)) *config {
	c := defaultConfig()
	edit(c)
	return c
}

// checkParse parses args and compares the result with want.
func checkParse(t *testing.T, args []string, want *config) {
	t.Helper()
	got, err := parseArgs(args)
	if err != nil {
		t.Errorf("parseArgs(%q): %v", args, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseArgs(%q):\n got %+v\nwant %+v", args, *got, *want)
	}
}

func TestParseArgsEmpty(t *testing.T) {
	checkParse(t, nil, defaultConfig())
	checkParse(t, []string{}, defaultConfig())
	checkParse(t, []string{"--"}, defaultConfig())
}

// TestParseArgsOptions checks each option in all its spellings: every form
// in a row must give the same configuration.
func TestParseArgsOptions(t *testing.T) {
	tests := []struct {
		forms [][]string
		edit  func(c *config)
	}{
		// Logging and process control.
		{[][]string{{"-d"}, {"--debug"}, {"--deb"}, {"-q", "-d"}}, func(c *config) { c.debug = true }},
		{[][]string{{"--trace"}, {"--tr"}, {"-q", "--trace"}}, func(c *config) { c.trace, c.debug = true, true }},
		{[][]string{{"-q"}, {"--quiet"}, {"--q"}, {"--trace", "-q"}, {"-d", "-q"}}, func(c *config) { c.quiet = true }},
		{[][]string{{"-f"}, {"--foreground"}, {"--fo"}, {"-ff"}}, func(c *config) { c.foreground = true }},
		{[][]string{{"-e"}, {"--stderr"}, {"--std"}}, func(c *config) { c.stderr = true }},
		{[][]string{{"--stats", "5"}, {"--stats=5"}, {"--sta", "5"}, {"--stats", "1", "--stats", "5"}}, func(c *config) { c.statsDelay = 5 }},
		{[][]string{{"--stats", "0"}}, func(c *config) {}},
		{[][]string{{"--stats", "86400"}}, func(c *config) { c.statsDelay = 86400 }},
		// In the foreground whatever the order, unlike C pasta's -f before --stats.
		{[][]string{{"--stats", "2", "-f", "1234"}, {"-f", "--stats", "2", "1234"}},
			func(c *config) { c.statsDelay, c.foreground, c.targetPID = 2, true, 1234 }},
		{[][]string{{"--stats", "2", "--netns", "x", "-f"}}, func(c *config) { c.statsDelay, c.foreground, c.netns = 2, true, "/run/netns/x" }},
		{[][]string{{"--stats", "2", "--", "sh"}}, func(c *config) { c.statsDelay, c.command = 2, []string{"sh"} }},
		{[][]string{{"-l", "/tmp/log"}, {"-l/tmp/log"}, {"--log-file", "/tmp/log"}, {"--log-file=/tmp/log"}, {"--log-f", "/tmp/log"}, {"-l", "x", "-l", "/tmp/log"}},
			func(c *config) { c.logFile = "/tmp/log" }},
		{[][]string{{"--log-size", "4096"}, {"--log-size=4096"}, {"--log-s", "4096"}}, func(c *config) { c.logSize = 4096 }},
		{[][]string{{"--log-size", "1"}}, func(c *config) { c.logSize = 1 }},
		{[][]string{{"--runas", "1000:1000"}, {"--runas=1000:1000"}, {"--ru", "1000:1000"}}, func(c *config) { c.runas = "1000:1000" }},
		{[][]string{{"--runas", "nobody"}}, func(c *config) { c.runas = "nobody" }},
		{[][]string{{"-h"}, {"--help"}, {"--he"}}, func(c *config) { c.showHelp = true }},
		{[][]string{{"--version"}, {"--ver"}}, func(c *config) { c.showVersion = true }},
		{[][]string{{"-p", "x.pcap"}, {"-px.pcap"}, {"--pcap", "x.pcap"}, {"--pcap=x.pcap"}, {"--pc", "x.pcap"}},
			func(c *config) { c.pcapFile = "x.pcap" }},
		{[][]string{{"-P", "/run/p.pid"}, {"-P/run/p.pid"}, {"--pid", "/run/p.pid"}, {"--pid=/run/p.pid"}, {"--pi", "/run/p.pid"}},
			func(c *config) { c.pidFile = "/run/p.pid" }},
		{[][]string{{"-p", "-d"}}, func(c *config) { c.pcapFile = "-d" }},

		// Addresses and interfaces.
		{[][]string{{"-m", "1500"}, {"-m1500"}, {"--mtu", "1500"}, {"--mtu=1500"}, {"--mt", "1500"}}, func(c *config) { c.mtu = 1500 }},
		{[][]string{{"-m", "0"}}, func(c *config) { c.mtu = 0 }},
		{[][]string{{"-m", "68"}}, func(c *config) { c.mtu = 68 }},
		{[][]string{{"-m", "65520"}}, func(c *config) { c.mtu = 65520 }},
		{[][]string{{"-a", "10.0.2.15"}, {"-a10.0.2.15"}, {"--address", "10.0.2.15"}, {"--address=10.0.2.15"}, {"--ad", "10.0.2.15"}},
			func(c *config) { c.addr4 = mustAddr("10.0.2.15") }},
		{[][]string{{"-a", "10.0.2.15/24"}, {"-n", "16", "-a", "10.0.2.15/24"}, {"-a", "10.0.2.15/16", "-a", "10.0.2.15/24"}},
			func(c *config) { c.addr4, c.prefix4 = mustAddr("10.0.2.15"), 24 }},
		{[][]string{{"-n", "24", "-a", "10.0.2.15"}, {"-a", "10.0.2.15", "-n", "24"}},
			func(c *config) { c.addr4, c.prefix4 = mustAddr("10.0.2.15"), 24 }},
		{[][]string{{"-a", "2001:db8::2"}, {"-a", "2001:db8::2/64"}, {"-a", "2001:db8::1", "-a", "2001:db8::2/128"}},
			func(c *config) { c.addr6 = mustAddr("2001:db8::2") }},
		{[][]string{{"-a", "10.0.2.15", "-a", "2001:db8::2"}, {"-a", "2001:db8::2", "-a", "10.0.2.15"}},
			func(c *config) { c.addr4, c.addr6 = mustAddr("10.0.2.15"), mustAddr("2001:db8::2") }},
		{[][]string{{"-n", "24"}, {"-n24"}, {"--netmask", "24"}, {"--netmask=255.255.255.0"}, {"--netm", "255.255.255.0"}},
			func(c *config) { c.prefix4 = 24 }},
		{[][]string{{"-n", "32"}, {"-n", "255.255.255.255"}}, func(c *config) { c.prefix4 = 32 }},
		{[][]string{{"-n", "0"}, {"-n", "0.0.0.0"}}, func(c *config) {}},
		{[][]string{{"-n", "255.128.0.0"}}, func(c *config) { c.prefix4 = 9 }},
		{[][]string{{"-M", "9a:55:9a:55:9a:56"}, {"-M9a:55:9a:55:9a:56"}, {"--mac-addr", "9A:55:9A:55:9A:56"}, {"--mac-addr=9a:55:9a:55:9a:56"}, {"--mac", "9a:55:9a:55:9a:56"}},
			func(c *config) { c.ourMAC = mustMAC("9a:55:9a:55:9a:56") }},
		{[][]string{{"-g", "10.0.2.2"}, {"-g10.0.2.2"}, {"--gateway", "10.0.2.2"}, {"--gateway=10.0.2.2"}, {"--ga", "10.0.2.2"}},
			func(c *config) { c.gw4 = mustAddr("10.0.2.2") }},
		{[][]string{{"-g", "fe80::1", "-g", "10.0.2.2"}, {"-g", "10.0.2.3", "-g", "fe80::2", "-g", "10.0.2.2", "-g", "fe80::1"}},
			func(c *config) { c.gw4, c.gw6 = mustAddr("10.0.2.2"), mustAddr("fe80::1") }},
		{[][]string{{"-i", "eth0"}, {"-ieth0"}, {"--interface", "eth0"}, {"--interface=eth0"}, {"--int", "eth0"}},
			func(c *config) { c.ifname = "eth0" }},
		{[][]string{{"-o", "192.0.2.1"}, {"-o192.0.2.1"}, {"--outbound", "192.0.2.1"}, {"--outbound=192.0.2.1"}, {"--outbound", "192.0.2.9", "-o", "192.0.2.1"}},
			func(c *config) { c.outAddr4 = mustAddr("192.0.2.1") }},
		{[][]string{{"-o", "2001:db8::1", "-o", "192.0.2.1"}}, func(c *config) { c.outAddr4, c.outAddr6 = mustAddr("192.0.2.1"), mustAddr("2001:db8::1") }},
		{[][]string{{"--outbound-if4", "eth0"}, {"--outbound-if4=eth0"}, {"--outbound-if4", "wlan0", "--outbound-if4", "eth0"}},
			func(c *config) { c.outIf4 = "eth0" }},
		{[][]string{{"--outbound-if6", "eth1"}, {"--outbound-if6=eth1"}, {"--outbound-if6", "eth1"}},
			func(c *config) { c.outIf6 = "eth1" }},
		{[][]string{{"-D", "192.0.2.53", "-D", "::1"}, {"-D192.0.2.53", "--dns=::1"}, {"--dns", "none", "--dns", "192.0.2.53", "--dns", "::1"}},
			func(c *config) { c.dns = []netip.Addr{mustAddr("192.0.2.53"), mustAddr("::1")} }},
		{[][]string{{"-D", "none"}, {"--dns=none"}, {"-D", "1.1.1.1", "-D", "none"}}, func(c *config) { c.dnsNone = true }},
		{[][]string{{"--dns-forward", "169.254.1.1"}, {"--dns-forward=169.254.1.1"}, {"--dns-f", "169.254.1.1"}},
			func(c *config) { c.dnsForward4 = mustAddr("169.254.1.1") }},
		{[][]string{{"--dns-forward", "fd00::53", "--dns-forward", "169.254.1.1"}},
			func(c *config) { c.dnsForward4, c.dnsForward6 = mustAddr("169.254.1.1"), mustAddr("fd00::53") }},
		{[][]string{{"--dns-host", "127.0.0.53"}, {"--dns-host=127.0.0.53"}, {"--dns-h", "127.0.0.53"}},
			func(c *config) { c.dnsHost4 = mustAddr("127.0.0.53") }},
		{[][]string{{"--dns-host", "::1"}}, func(c *config) { c.dnsHost6 = mustAddr("::1") }},
		{[][]string{{"-S", "example.com lab.example.com"}, {"-Sexample.com", "--search", "lab.example.com"}, {"--search=none", "--se", " example.com  lab.example.com "}},
			func(c *config) { c.search = []string{"example.com", "lab.example.com"} }},
		{[][]string{{"-S", "none"}, {"--search", "example.com", "--search", "none"}}, func(c *config) { c.searchNone = true }},
		{[][]string{{"-S", "none."}, {"-S", "none. "}}, func(c *config) { c.search = []string{"none."} }},
		{[][]string{{"--no-dhcp-dns"}, {"--dhcp-dns", "--no-dhcp-dns"}}, func(c *config) { c.noDHCPDNS = true }},
		{[][]string{{"--dhcp-dns"}, {"--no-dhcp-dns", "--dhcp-dns"}, {"--dhcp-d"}}, func(c *config) { c.dhcpDNS = true }},
		{[][]string{{"--no-dhcp-search"}, {"--no-dhcp-s"}}, func(c *config) { c.noDHCPSearch = true }},
		{[][]string{{"--dhcp-search"}, {"--dhcp-s"}, {"--no-dhcp-search", "--dhcp-search"}}, func(c *config) { c.dhcpSearch = true }},
		{[][]string{{"-H", "box"}, {"-Hbox"}, {"--hostname", "box"}, {"--hostname=box"}, {"--hostn", "box"}}, func(c *config) { c.hostname = "box" }},
		{[][]string{{"--fqdn", "box.example.com"}, {"--fqdn=box.example.com"}, {"--fq", "box.example.com"}},
			func(c *config) { c.fqdn = "box.example.com" }},

		// Protocol handlers.
		{[][]string{{"--no-tcp"}, {"--no-t"}}, func(c *config) { c.noTCP = true }},
		{[][]string{{"--no-udp"}, {"--no-u"}}, func(c *config) { c.noUDP = true }},
		{[][]string{{"--no-icmp"}, {"--no-i"}}, func(c *config) { c.noICMP = true }},
		{[][]string{{"--no-dhcp"}}, func(c *config) { c.noDHCP = true }},
		{[][]string{{"--no-ndp"}, {"--no-nd"}}, func(c *config) { c.noNDP = true }},
		{[][]string{{"--no-dhcpv6"}, {"--no-dhcpv"}}, func(c *config) { c.noDHCPv6 = true }},
		{[][]string{{"--no-ra"}, {"--no-r"}}, func(c *config) { c.noRA = true }},
		{[][]string{{"--freebind"}, {"--fr"}}, func(c *config) { c.freebind = true }},
		{[][]string{{"-4"}, {"--ipv4-only"}, {"--ipv4"}, {"-44"}}, func(c *config) { c.ipv4Only = true }},
		{[][]string{{"-6"}, {"--ipv6-only"}, {"--ipv6"}}, func(c *config) { c.ipv6Only = true }},

		// Address mapping.
		{[][]string{{"--map-host-loopback", "169.254.1.2"}, {"--map-host-loopback=169.254.1.2"}, {"--map-h", "169.254.1.2"}, {"--map-host-loopback", "none", "--map-host-loopback", "169.254.1.2"}},
			func(c *config) { c.mapHostLoopback4 = mustAddr("169.254.1.2") }},
		{[][]string{{"--map-host-loopback", "fd00::2", "--map-host-loopback", "169.254.1.2"}},
			func(c *config) { c.mapHostLoopback4, c.mapHostLoopback6 = mustAddr("169.254.1.2"), mustAddr("fd00::2") }},
		{[][]string{{"--map-host-loopback", "none"}, {"--map-host-loopback", "fd00::2", "--map-host-loopback", "none"}},
			func(c *config) { c.mapHostLoopbackNone = true }},
		{[][]string{{"--no-map-gw"}, {"--no-m"}, {"--map-gw", "--no-map-gw"}}, func(c *config) { c.noMapGW = true }},
		{[][]string{{"--map-gw"}, {"--no-map-gw", "--map-gw"}, {"--map-gw"}}, func(c *config) {}},
		{[][]string{{"--map-guest-addr", "169.254.1.2"}, {"--map-guest-addr=169.254.1.2"}, {"--map-gu", "169.254.1.2"}},
			func(c *config) { c.mapGuestAddr4 = mustAddr("169.254.1.2") }},
		{[][]string{{"--map-guest-addr", "fd00::3"}}, func(c *config) { c.mapGuestAddr6 = mustAddr("fd00::3") }},
		{[][]string{{"--map-guest-addr", "none"}, {"--map-guest-addr", "169.254.1.2", "--map-guest-addr", "none"}},
			func(c *config) { c.mapGuestAddrNone = true }},
		{[][]string{{"--host-lo-to-ns-lo"}, {"--host-"}, {"--host-lo"}}, func(c *config) { c.hostLoToNsLo = true }},
		{[][]string{{"--no-splice"}, {"--no-sp"}}, func(c *config) { c.noSplice = true }},

		// Namespaces.
		{[][]string{{"-I", "tap0"}, {"-Itap0"}, {"--ns-ifname", "tap0"}, {"--ns-ifname=tap0"}, {"--ns-i", "tap0"}},
			func(c *config) { c.nsIfname = "tap0" }},
		{[][]string{{"-I", "abcdefghijklmno"}}, func(c *config) { c.nsIfname = "abcdefghijklmno" }},
		{[][]string{{"--userns", "/proc/42/ns/user", "--netns", "/proc/42/ns/net"}, {"--userns=/proc/42/ns/user", "--netns=/proc/42/ns/net"}, {"--us", "/proc/42/ns/user", "--netns", "/proc/42/ns/net"}},
			func(c *config) { c.userns, c.netns = "/proc/42/ns/user", "/proc/42/ns/net" }},
		{[][]string{{"--netns", "/run/user/1000/netns/netns-abc"}, {"--netns=/run/user/1000/netns/netns-abc"}},
			func(c *config) { c.netns = "/run/user/1000/netns/netns-abc" }},
		{[][]string{{"--netns", "blue"}, {"--netns=blue"}, {"--netns", "/run/netns/blue"}}, func(c *config) { c.netns = "/run/netns/blue" }},
		{[][]string{{"--netns", "./blue"}}, func(c *config) { c.netns = "./blue" }},
		{[][]string{{"--netns-only"}, {"--netns-o"}}, func(c *config) { c.netnsOnly = true }},
		{[][]string{{"--no-netns-quit"}, {"--no-ne"}}, func(c *config) { c.noNetnsQuit = true }},
		{[][]string{{"--config-net"}, {"--config"}}, func(c *config) { c.configNet = true }},
		{[][]string{{"-c", "/run/p.sock"}, {"--conf-path=/run/p.sock"}, {"--conf-", "/run/p.sock"}}, func(c *config) { c.confPath = "/run/p.sock" }},
		{[][]string{{"--no-copy-routes"}, {"--no-copy-r"}}, func(c *config) { c.noCopyRoutes = true }},
		{[][]string{{"--no-copy-addrs"}, {"--no-copy-a"}}, func(c *config) { c.noCopyAddrs = true }},
		{[][]string{{"--no-pidns"}, {"--no-pi"}}, func(c *config) { c.noPidns = true }},
		{[][]string{{"--no-pidns", "--", "sh"}}, func(c *config) { c.noPidns, c.command = true, []string{"sh"} }},
		{[][]string{{"--splice-only"}, {"--spl"}}, func(c *config) { c.spliceOnly = true }},
		{[][]string{{"--splice-only", "--config-net"}}, func(c *config) { c.spliceOnly, c.configNet = true, true }},
		{[][]string{{"--ns-mac-addr", "02:00:00:00:00:01"}, {"--ns-mac-addr=02:00:00:00:00:01"}, {"--ns-m", "02:00:00:00:00:01"}},
			func(c *config) { c.nsMAC = mustMAC("02:00:00:00:00:01") }},
		{[][]string{{"--ns-mac-addr", "01:00:5e:00:00:01"}}, func(c *config) { c.nsMAC = mustMAC("01:00:5e:00:00:01") }},

		// Bundles.
		{[][]string{{"-fd"}, {"-df"}, {"-f", "-d"}, {"-f", "--debug"}}, func(c *config) { c.foreground, c.debug = true, true }},
		{[][]string{{"-fdp", "x.pcap"}, {"-fdpx.pcap"}, {"-f", "-d", "-p", "x.pcap"}},
			func(c *config) { c.foreground, c.debug, c.pcapFile = true, true, "x.pcap" }},
		{[][]string{{"-fpd"}}, func(c *config) { c.foreground, c.pcapFile = true, "d" }},
	}
	for _, tt := range tests {
		want := expectConfig(tt.edit)
		for _, args := range tt.forms {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				checkParse(t, args, want)
			})
		}
	}
}

func TestParseArgsPortOptions(t *testing.T) {
	spec := portList(fwdR(22, 22, 22), fwdR(80, 81, 8080))
	untranslated := portList(fwdR(22, 22, 22), fwdR(80, 81, 80))
	tests := []struct {
		args []string
		edit func(c *config)
	}{
		{[]string{"-t", "22,80-81:8080-8081"}, func(c *config) { c.tcpFwd, c.udpFwd = spec, untranslated }},
		{[]string{"-t22", "--tcp-ports=80-81:8080-8081"}, func(c *config) { c.tcpFwd, c.udpFwd = spec, untranslated }},
		{[]string{"--tcp-p", "22,80-81:8080-8081"}, func(c *config) { c.tcpFwd, c.udpFwd = spec, untranslated }},
		{[]string{"-t", "22,80-81:8080-8081", "-u", "none"}, func(c *config) { c.tcpFwd, c.udpFwd = spec, noneSpec }},
		{[]string{"-u", "22,80-81:8080-8081"}, func(c *config) { c.udpFwd = spec }},
		{[]string{"--udp-ports", "22", "--udp-p=80-81:8080-8081"}, func(c *config) { c.udpFwd = spec }},
		{[]string{"-T", "22,80-81:8080-8081"}, func(c *config) { c.tcpNsFwd, c.udpNsFwd = spec, untranslated }},
		{[]string{"--tcp-ns", "22", "--tcp-n=80-81:8080-8081"}, func(c *config) { c.tcpNsFwd, c.udpNsFwd = spec, untranslated }},
		{[]string{"-U", "22,80-81:8080-8081"}, func(c *config) { c.udpNsFwd = spec }},
		{[]string{"--udp-ns", "22,80-81:8080-8081", "-T", "auto"}, func(c *config) { c.udpNsFwd, c.tcpNsFwd = spec, autoSpec(t) }},
		{[]string{"-t", "auto"}, func(c *config) { c.tcpFwd = autoSpec(t) }},
		{[]string{"-t", "none", "-t", "none"}, func(c *config) { c.tcpFwd = noneSpec }},
		{[]string{"-t", "127.0.0.1%lo/53"}, func(c *config) {
			c.tcpFwd = portList(boundR("127.0.0.1", "lo", 53, 53, 53))
			c.udpFwd = c.tcpFwd
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			checkParse(t, tt.args, expectConfig(tt.edit))
		})
	}
}

func TestParseArgsPositional(t *testing.T) {
	tests := []struct {
		args []string
		edit func(c *config)
	}{
		{[]string{"1234"}, func(c *config) { c.targetPID = 1234 }},
		{[]string{"-f", "1234"}, func(c *config) { c.foreground, c.targetPID = true, 1234 }},
		{[]string{"--", "1234"}, func(c *config) { c.targetPID = 1234 }},
		{[]string{"2147483647"}, func(c *config) { c.targetPID = 2147483647 }},
		{[]string{"--userns", "/proc/7/ns/user", "7"}, func(c *config) { c.userns, c.targetPID = "/proc/7/ns/user", 7 }},
		{[]string{"-f", "ip", "a"}, func(c *config) { c.foreground, c.command = true, []string{"ip", "a"} }},
		{[]string{"ip", "-d", "a"}, func(c *config) { c.command = []string{"ip", "-d", "a"} }},
		{[]string{"--config-net", "--", "sh", "-c", "--debug"}, func(c *config) { c.configNet, c.command = true, []string{"sh", "-c", "--debug"} }},
		{[]string{"--", "-d"}, func(c *config) { c.command = []string{"-d"} }},
		{[]string{"--", "--"}, func(c *config) { c.command = []string{"--"} }},
		{[]string{"-"}, func(c *config) { c.command = []string{"-"} }},
		{[]string{"-d", "-", "-f"}, func(c *config) { c.debug, c.command = true, []string{"-", "-f"} }},
		{[]string{"sleep", "1"}, func(c *config) { c.command = []string{"sleep", "1"} }},
		{[]string{"123", "456"}, func(c *config) { c.command = []string{"123", "456"} }},
		{[]string{"1234", "--netns", "x"}, func(c *config) { c.command = []string{"1234", "--netns", "x"} }},
		{[]string{"12a"}, func(c *config) { c.command = []string{"12a"} }},
		{[]string{"+12"}, func(c *config) { c.command = []string{"+12"} }},
		{[]string{"-m", "1500", "--", "true"}, func(c *config) { c.mtu, c.command = 1500, []string{"true"} }},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			checkParse(t, tt.args, expectConfig(tt.edit))
		})
	}
}

// TestParseArgsPodman checks command lines as Podman builds them.
func TestParseArgsPodman(t *testing.T) {
	args := []string{
		"--config-net",
		"-t", "127.0.0.1/8082-8082:80-80", "-t", "9000-9001:9000-9001", "-t", "::1/8084-8084:80-80",
		"--dns-forward", "169.254.1.1",
		"-u", "none", "-T", "none", "-U", "none",
		"--no-map-gw", "--quiet",
		"--netns", "/run/user/1000/netns/netns-abc",
		"--map-guest-addr", "169.254.1.2",
	}
	want := expectConfig(func(c *config) {
		c.configNet = true
		c.tcpFwd = portList(
			boundR("127.0.0.1", "", 8082, 8082, 80),
			fwdR(9000, 9001, 9000),
			boundR("::1", "", 8084, 8084, 80))
		c.dnsForward4 = mustAddr("169.254.1.1")
		c.udpFwd = noneSpec
		c.tcpNsFwd = noneSpec
		c.udpNsFwd = noneSpec
		c.noMapGW = true
		c.quiet = true
		c.netns = "/run/user/1000/netns/netns-abc"
		c.mapGuestAddr4 = mustAddr("169.254.1.2")
	})
	checkParse(t, args, want)

	// podman run --network pasta:-I,tap0,-a,10.0.2.15,-n,24,-g,10.0.2.2
	args = []string{
		"--config-net", "-I", "tap0", "-a", "10.0.2.15", "-n", "24", "-g", "10.0.2.2",
		"--dns-forward", "169.254.1.1", "-t", "none", "-u", "none", "-T", "none", "-U", "none",
		"--no-map-gw", "--quiet", "--netns", "/run/user/1000/netns/netns-def",
		"--map-guest-addr", "169.254.1.2",
	}
	want = expectConfig(func(c *config) {
		c.configNet = true
		c.nsIfname = "tap0"
		c.addr4, c.prefix4, c.gw4 = mustAddr("10.0.2.15"), 24, mustAddr("10.0.2.2")
		c.dnsForward4 = mustAddr("169.254.1.1")
		c.tcpFwd, c.udpFwd = noneSpec, noneSpec
		c.tcpNsFwd, c.udpNsFwd = noneSpec, noneSpec
		c.noMapGW, c.quiet = true, true
		c.netns = "/run/user/1000/netns/netns-def"
		c.mapGuestAddr4 = mustAddr("169.254.1.2")
	})
	checkParse(t, args, want)

	// Rootless network namespace for a pod, with the command form.
	args = []string{"--config-net", "--pid", "/run/user/1000/pasta.pid", "--dns-forward", "169.254.1.1",
		"-t", "8080", "--map-guest-addr", "169.254.1.2", "--", "sleep", "infinity"}
	want = expectConfig(func(c *config) {
		c.configNet = true
		c.pidFile = "/run/user/1000/pasta.pid"
		c.dnsForward4 = mustAddr("169.254.1.1")
		c.tcpFwd = portList(fwdR(8080, 8080, 8080))
		c.udpFwd = c.tcpFwd
		c.mapGuestAddr4 = mustAddr("169.254.1.2")
		c.command = []string{"sleep", "infinity"}
	})
	checkParse(t, args, want)
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		// getopt wording.
		{[]string{"--foo"}, "unrecognized option '--foo'"},
		{[]string{"--foo=bar"}, "unrecognized option '--foo=bar'"},
		{[]string{"--debugx"}, "unrecognized option '--debugx'"},
		{[]string{"--=x"}, "unrecognized option '--=x'"},
		{[]string{"-z"}, "invalid option -- 'z'"},
		{[]string{"-dz"}, "invalid option -- 'z'"},
		{[]string{"-d-"}, "invalid option -- '-'"},
		{[]string{"-d:"}, "invalid option -- ':'"},
		{[]string{"-é"}, "invalid option -- 'é'"},
		{[]string{"--pcap"}, "option '--pcap' requires an argument"},
		{[]string{"--pc"}, "option '--pcap' requires an argument"},
		{[]string{"-p"}, "option requires an argument -- 'p'"},
		{[]string{"-fdp"}, "option requires an argument -- 'p'"},
		{[]string{"-t"}, "option requires an argument -- 't'"},
		{[]string{"--debug=1"}, "option '--debug' doesn't allow an argument"},
		{[]string{"--deb=1"}, "option '--debug' doesn't allow an argument"},
		{[]string{"--debug="}, "option '--debug' doesn't allow an argument"},
		{[]string{"--no"}, "option '--no' is ambiguous; possibilities: '--no-dhcp-dns' '--no-dhcp-search' '--no-tcp' '--no-udp' " +
			"'--no-icmp' '--no-dhcp' '--no-ndp' '--no-dhcpv6' '--no-ra' '--no-map-gw' '--no-netns-quit' '--no-pidns' '--no-copy-routes' " +
			"'--no-copy-addrs' '--no-splice'"},
		{[]string{"--no-c"}, "option '--no-c' is ambiguous; possibilities: '--no-copy-routes' '--no-copy-addrs'"},
		{[]string{"--tcp=22"}, "option '--tcp=22' is ambiguous; possibilities: '--tcp-ports' '--tcp-ns'"},
		{[]string{"--map-g", "x"}, "option '--map-g' is ambiguous; possibilities: '--map-gw' '--map-guest-addr'"},
		{[]string{"--v"}, "option '--v' is ambiguous; possibilities: '--version' '--vhost-user'"},
		{[]string{"--ho"}, "option '--ho' is ambiguous; possibilities: '--hostname' '--host-lo-to-ns-lo'"},

		// Errors come in command line order.
		{[]string{"--foo", "--bar"}, "unrecognized option '--foo'"},
		{[]string{"-m", "0x10", "--foo"}, "--mtu: invalid MTU '0x10' (must be 68-65520, or 0)"},
		{[]string{"--help", "--foo"}, "unrecognized option '--foo'"},

		// Values, named with the long option even when given in short form.
		{[]string{"-a", "1.2.3"}, "--address: invalid address '1.2.3'"},
		{[]string{"--address", "1.2.3"}, "--address: invalid address '1.2.3'"},
		{[]string{"-a", "10.0.0.1/33"}, "--address: invalid address '10.0.0.1/33'"},
		{[]string{"-a", "10.0.0.1/"}, "--address: invalid address '10.0.0.1/'"},
		{[]string{"-a", "10.0.0.1/+8"}, "--address: invalid address '10.0.0.1/+8'"},
		{[]string{"-a", "2001:db8::1/129"}, "--address: invalid address '2001:db8::1/129'"},
		{[]string{"-a", "0.0.0.0"}, "--address: invalid address '0.0.0.0'"},
		{[]string{"-a", "127.0.0.1"}, "--address: invalid address '127.0.0.1'"},
		{[]string{"-a", "224.0.0.1"}, "--address: invalid address '224.0.0.1'"},
		{[]string{"-a", "255.255.255.255"}, "--address: invalid address '255.255.255.255'"},
		{[]string{"-a", "::"}, "--address: invalid address '::'"},
		{[]string{"-a", "::1"}, "--address: invalid address '::1'"},
		{[]string{"-a", "ff02::1"}, "--address: invalid address 'ff02::1'"},
		{[]string{"-a", "::ffff:10.0.0.1"}, "--address: invalid address '::ffff:10.0.0.1'"},
		{[]string{"-a", "fe80::1%eth0"}, "--address: invalid address 'fe80::1%eth0'"},
		{[]string{"-a", ""}, "--address: invalid address ''"},
		{[]string{"-m", "70000"}, "--mtu: invalid MTU '70000' (must be 68-65520, or 0)"},
		{[]string{"--mtu", "67"}, "--mtu: invalid MTU '67' (must be 68-65520, or 0)"},
		{[]string{"-m", "65521"}, "--mtu: invalid MTU '65521' (must be 68-65520, or 0)"},
		{[]string{"-m", "-1"}, "--mtu: invalid MTU '-1' (must be 68-65520, or 0)"},
		{[]string{"-m", "+1500"}, "--mtu: invalid MTU '+1500' (must be 68-65520, or 0)"},
		{[]string{"-m", "abc"}, "--mtu: invalid MTU 'abc' (must be 68-65520, or 0)"},
		{[]string{"-m", "99999999999999999999"}, "--mtu: invalid MTU '99999999999999999999' (must be 68-65520, or 0)"},
		{[]string{"-M", "zz"}, "--mac-addr: invalid MAC address 'zz'"},
		{[]string{"-M", "9a:55:9a:55:9a"}, "--mac-addr: invalid MAC address '9a:55:9a:55:9a'"},
		{[]string{"-M", "9a-55-9a-55-9a-55"}, "--mac-addr: invalid MAC address '9a-55-9a-55-9a-55'"},
		{[]string{"-M", "9a:55:9a:55:9a:5g"}, "--mac-addr: invalid MAC address '9a:55:9a:55:9a:5g'"},
		{[]string{"--ns-mac-addr", "00:00:5e:00:53:00:00:01"}, "--ns-mac-addr: invalid MAC address '00:00:5e:00:53:00:00:01'"},
		{[]string{"-n", "33"}, "--netmask: invalid netmask '33'"},
		{[]string{"-n", "255.0.255.0"}, "--netmask: invalid netmask '255.0.255.0'"},
		{[]string{"-n", "-1"}, "--netmask: invalid netmask '-1'"},
		{[]string{"-n", "ffff::"}, "--netmask: invalid netmask 'ffff::'"},
		{[]string{"-g", "10.0.0"}, "--gateway: invalid address '10.0.0'"},
		{[]string{"-g", "127.0.0.1"}, "--gateway: invalid address '127.0.0.1'"},
		{[]string{"-o", "224.0.0.1"}, "--outbound: invalid address '224.0.0.1'"},
		{[]string{"-D", "nameserver"}, "--dns: invalid address 'nameserver'"},
		{[]string{"-D", "0.0.0.0"}, "--dns: invalid address '0.0.0.0'"},
		{[]string{"--dns-forward", "::"}, "--dns-forward: invalid address '::'"},
		{[]string{"--dns-host", "none"}, "--dns-host: invalid address 'none'"},
		{[]string{"--map-host-loopback", "127.0.0.1"}, "--map-host-loopback: invalid address '127.0.0.1'"},
		{[]string{"--map-guest-addr", "None"}, "--map-guest-addr: invalid address 'None'"},
		{[]string{"-S", " "}, "--search: invalid search list ' '"},
		{[]string{"-S", "a " + strings.Repeat("b", 254)}, "--search: invalid domain '" + strings.Repeat("b", 254) + "'"},
		{[]string{"-H", ""}, "--hostname: invalid name ''"},
		{[]string{"--fqdn", strings.Repeat("a", 254)}, "--fqdn: invalid name '" + strings.Repeat("a", 254) + "'"},
		{[]string{"--log-size", "1M"}, "--log-size: invalid size '1M'"},
		{[]string{"--log-size", "0"}, "--log-size: invalid size '0'"},
		{[]string{"--log-size", "-4096"}, "--log-size: invalid size '-4096'"},
		{[]string{"--runas", ""}, "--runas: invalid user ''"},
		{[]string{"-l", ""}, "--log-file: invalid path ''"},
		{[]string{"-p", ""}, "--pcap: invalid path ''"},
		{[]string{"--pid="}, "--pid: invalid path ''"},
		{[]string{"-P", "/" + strings.Repeat("x", 4095)}, "--pid: invalid path '/" + strings.Repeat("x", 4095) + "'"},
		{[]string{"--userns", ""}, "--userns: invalid path ''"},
		{[]string{"--netns", ""}, "--netns: invalid namespace ''"},
		{[]string{"--netns", ".."}, "--netns: invalid namespace '..'"},

		// Interface names.
		{[]string{"-I", ""}, "--ns-ifname: invalid interface name ''"},
		{[]string{"-I", "abcdefghijklmnop"}, "--ns-ifname: invalid interface name 'abcdefghijklmnop'"},
		{[]string{"-I", "tap/0"}, "--ns-ifname: invalid interface name 'tap/0'"},
		{[]string{"-I", "tap 0"}, "--ns-ifname: invalid interface name 'tap 0'"},
		{[]string{"-I", "tap:0"}, "--ns-ifname: invalid interface name 'tap:0'"},
		{[]string{"-I", ".."}, "--ns-ifname: invalid interface name '..'"},
		{[]string{"-i", "a\tb"}, "--interface: invalid interface name 'a\tb'"},
		{[]string{"--outbound-if4", ""}, "--outbound-if4: invalid interface name ''"},
		{[]string{"--outbound-if6", "x/y"}, "--outbound-if6: invalid interface name 'x/y'"},

		// Port forwarding.
		{[]string{"-t", "80-70"}, "--tcp-ports: invalid port spec '80-70': range end before start"},
		{[]string{"-t", "0"}, "--tcp-ports: invalid port spec '0': port '0' out of range (1-65535)"},
		{[]string{"-u", "70000"}, "--udp-ports: invalid port spec '70000': port '70000' out of range (1-65535)"},
		{[]string{"-T", "abc"}, "--tcp-ns: invalid port spec 'abc': invalid port 'abc'"},
		{[]string{"-U", "1.2.3.4/"}, "--udp-ns: invalid port spec '1.2.3.4/': no ports given"},
		{[]string{"-t", "8080", "-t", "0.0.0.0/8080"}, "--tcp-ports: invalid port spec '0.0.0.0/8080': port 8080 given more than once"},
		{[]string{"-U", "auto", "-U", "53"}, "--udp-ns: invalid port spec '53': port 53 given more than once"},
		{[]string{"--con"}, "option '--con' is ambiguous; possibilities: '--conf-path' '--config-net'"},
		{[]string{"-c", ""}, "--conf-path: invalid path ''"},
		{[]string{"-t", "20-30", "-t", "25"}, "--tcp-ports: invalid port spec '25': port 25 given more than once"},

		// passt-only options.
		{[]string{"-s", "/tmp/s"}, "--socket: passt mode only, not in pasta"},
		{[]string{"--socket", "/tmp/s"}, "--socket: passt mode only, not in pasta"},
		{[]string{"--sock", "/tmp/s"}, "--socket: passt mode only, not in pasta"},
		{[]string{"--socket-path=/tmp/s"}, "--socket-path: passt mode only, not in pasta"},
		{[]string{"-F", "3"}, "--fd: passt mode only, not in pasta"},
		{[]string{"--fd=3"}, "--fd: passt mode only, not in pasta"},
		{[]string{"-1"}, "--one-off: passt mode only, not in pasta"},
		{[]string{"-f1"}, "--one-off: passt mode only, not in pasta"},
		{[]string{"--one-off"}, "--one-off: passt mode only, not in pasta"},
		{[]string{"--vhost-user"}, "--vhost-user: passt mode only, not in pasta"},
		{[]string{"--print-capabilities"}, "--print-capabilities: passt mode only, not in pasta"},
		{[]string{"--repair-path", "none"}, "--repair-path: passt mode only, not in pasta"},
		{[]string{"-s"}, "option requires an argument -- 's'"},

		// Positional arguments and conflicts.
		{[]string{"0"}, "invalid PID '0'"},
		{[]string{"00"}, "invalid PID '00'"},
		{[]string{"2147483648"}, "invalid PID '2147483648'"},
		{[]string{"99999999999999999999999"}, "invalid PID '99999999999999999999999'"},
		{[]string{"--netns", "/run/netns/x", "1234"}, "--netns: can't be given with a PID"},
		{[]string{"--netns", "x", "sh"}, "--netns: can't be given with a command"},
		{[]string{"--netns", "x", "--", "sh", "-c", "true"}, "--netns: can't be given with a command"},
		{[]string{"-4", "-6"}, "--ipv4-only: conflicts with --ipv6-only"},
		{[]string{"-6", "-4"}, "--ipv4-only: conflicts with --ipv6-only"},
		{[]string{"-q46"}, "--ipv4-only: conflicts with --ipv6-only"},
		{[]string{"--userns", "/proc/1/ns/user"}, "--userns: needs --netns or a PID"},
		{[]string{"--userns", "/proc/1/ns/user", "--netns-only", "1"}, "--userns: conflicts with --netns-only"},
		{[]string{"--st"}, "option '--st' is ambiguous; possibilities: '--stats' '--stderr'"},
		{[]string{"--stats", "x"}, "--stats: invalid delay 'x' (seconds, 0-86400)"},
		{[]string{"--stats", "-1"}, "--stats: invalid delay '-1' (seconds, 0-86400)"},
		{[]string{"--stats", "1.5"}, "--stats: invalid delay '1.5' (seconds, 0-86400)"},
		{[]string{"--stats", "86401"}, "--stats: invalid delay '86401' (seconds, 0-86400)"},
		{[]string{"--stats", ""}, "--stats: invalid delay '' (seconds, 0-86400)"},
		{[]string{"--stats", "1", "1234"}, "--stats: needs the foreground: --foreground, or a command"},
		{[]string{"--netns", "x", "--stats", "1"}, "--stats: needs the foreground: --foreground, or a command"},
		{[]string{"--no-pidns", "1234"}, "--no-pidns: can't be given with a PID or --netns"},
		{[]string{"--netns", "x", "--no-pidns"}, "--no-pidns: can't be given with a PID or --netns"},
		{[]string{"--splice-only", "--no-splice"}, "--splice-only: conflicts with --no-splice"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseArgs(tt.args)
			switch {
			case err == nil:
				t.Errorf("parseArgs(%q) succeeded, want error %q", tt.args, tt.want)
			case err.Error() != tt.want:
				t.Errorf("parseArgs(%q) error:\n got %q\nwant %q", tt.args, err, tt.want)
			case strings.Contains(err.Error(), "\n"):
				t.Errorf("parseArgs(%q) error %q spans several lines", tt.args, err)
			}
		})
	}
}

// TestOptionTable checks the table (names, groups, help and man text), then
// every option through the parser: its long form, its short form if any,
// and getopt's wording for a missing or unexpected argument.
func TestOptionTable(t *testing.T) {
	if err := pastaCommand.Check(); err != nil {
		t.Error(err)
	}
	for i := range cmdOptions {
		opt := &cmdOptions[i]
		takesArg := opt.Arg != ""
		var wantErr string
		if takesArg {
			wantErr = fmt.Sprintf("option '--%s' requires an argument", opt.Long)
		} else {
			wantErr = fmt.Sprintf("option '--%s' doesn't allow an argument", opt.Long)
		}
		args := []string{"--" + opt.Long}
		if !takesArg {
			args[0] += "=x"
		}
		if _, err := parseArgs(args); err == nil || err.Error() != wantErr {
			t.Errorf("parseArgs(%q): error %v, want %q", args, err, wantErr)
		}
		if opt.Short != 0 && takesArg {
			wantErr = fmt.Sprintf("option requires an argument -- '%c'", opt.Short)
			if _, err := parseArgs([]string{"-" + string(opt.Short)}); err == nil || err.Error() != wantErr {
				t.Errorf("parseArgs(-%c): error %v, want %q", opt.Short, err, wantErr)
			}
		}
	}
}

// firstWithShort returns the first option of the table with short name ch:
// the one the parser applies for -ch.
func firstWithShort(ch rune) *optDef {
	for i := range cmdOptions {
		if cmdOptions[i].Short == ch {
			return &cmdOptions[i]
		}
	}
	return nil
}

// TestShortMatchesLong checks that each short option has the effect of its
// long form, whatever the outcome.
func TestShortMatchesLong(t *testing.T) {
	values := []string{"10.0.2.15", "24", "1500", "9a:55:9a:55:9a:56", "eth0", "22", "none", "/tmp/x"}
	for i := range cmdOptions {
		opt := &cmdOptions[i]
		if opt.Short == 0 || firstWithShort(opt.Short) != opt {
			continue // no short form, or an alias such as --socket-path
		}
		tails := [][]string{nil}
		if opt.Arg != "" {
			tails = nil
			for _, v := range values {
				tails = append(tails, []string{v})
			}
		}
		for _, tail := range tails {
			long := append([]string{"--" + opt.Long}, tail...)
			short := append([]string{"-" + string(opt.Short)}, tail...)
			cl, errL := parseArgs(long)
			cs, errS := parseArgs(short)
			if fmt.Sprint(errL) != fmt.Sprint(errS) || !reflect.DeepEqual(cl, cs) {
				t.Errorf("%q and %q differ: errors %v and %v", long, short, errL, errS)
			}
		}
	}
}

func TestParseArgsHelpVersion(t *testing.T) {
	c, err := parseArgs([]string{"-d", "--help", "--version"})
	if err != nil || !c.showHelp || !c.showVersion || !c.debug {
		t.Errorf("parseArgs(-d --help --version) = %+v, %v", c, err)
	}
	// The config parsed before an error comes back with it, so that the
	// caller can still honour --help.
	c, err = parseArgs([]string{"-h", "--mtu", "1"})
	if err == nil || c == nil || !c.showHelp {
		t.Errorf("parseArgs(-h --mtu 1) = %+v, %v; want showHelp and an error", c, err)
	}
	c, err = parseArgs([]string{"--bogus", "-h"})
	if err == nil || c == nil || c.showHelp {
		t.Errorf("parseArgs(--bogus -h) = %+v, %v; want an error before -h", c, err)
	}
}

// TestUsageText checks that --help shows the usage lines and every option,
// in lines of at most 80 columns.
func TestUsageText(t *testing.T) {
	text := pastaCommand.Usage()
	for _, want := range []string{
		"Usage: pasta [OPTION]... [COMMAND [ARG]...]\n",
		"       pasta [OPTION]... PID\n",
		"       pasta [OPTION]... --netns [PATH|NAME]\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("usage text lacks %q", want)
		}
	}
	for _, opt := range cmdOptions {
		if !cmdlinetest.HasOptionHelp(text, opt.Short, opt.Long) {
			t.Errorf("usage text lacks --%s", opt.Long)
		}
	}
	for i, line := range strings.Split(text, "\n") {
		if len(line) > 80 {
			t.Errorf("usage line %d is longer than 80 columns: %q", i+1, line)
		}
	}
}
