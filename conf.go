package main

import (
	"net"
	"net/netip"
)

// fwdRange is one forwarding rule: a contiguous range of ports bound on one
// side, after exclusions have been applied. Port first+i is forwarded to
// target+i on the other side.
type fwdRange struct {
	bindAddr netip.Addr // address to listen on; invalid means any address
	bindIf   string     // interface to bind to (SO_BINDTODEVICE); "" means any
	first    uint16     // first listening port, inclusive
	last     uint16     // last listening port, inclusive
	target   uint16     // port on the other side that first maps to
	// targetAddr is the address on the other side ("toaddr" in pasta(1));
	// invalid means the namespace's address (or the host's loopback for -T
	// and -U).
	targetAddr netip.Addr
	// auto: a port gets a socket only while its target port is bound on
	// the other side ("auto" in the spec, pasta(1)).
	auto bool
	// bestEffort: ports that can't be bound are skipped, unless none can:
	// the rules of "all", "auto" and specs with only exclusions (pasta(1)).
	bestEffort bool
}

// fwdSpec is the parsed form of all -t (or -u, -T, -U) options given.
type fwdSpec struct {
	given  bool       // the option was given; if not, pasta's default applies
	ranges []fwdRange // the rules, in the order given; "none" gives none
}

// config is the whole parsed command line. The zero value of a field means
// "not given"; defaults that depend on the host are filled in later.
type config struct {
	// Logging and process control.
	debug       bool   // -d, --debug
	trace       bool   // --trace (implies debug)
	quiet       bool   // -q, --quiet
	stderr      bool   // -e, --stderr (deprecated, accepted)
	logFile     string // -l, --log-file
	logSize     int64  // --log-size, default 1 MiB
	foreground  bool   // -f, --foreground
	pcapFile    string // -p, --pcap
	pidFile     string // -P, --pid
	statsDelay  int    // --stats DELAY, in seconds; 0: no statistics
	confPath    string // -c, --conf-path: the control socket for pesto
	runas       string // --runas, as given (resolved later)
	showHelp    bool   // -h, --help
	showVersion bool   // --version

	// Addresses and interfaces.
	mtu          int              // -m, --mtu; -1 when not given (default 65520)
	addr4        netip.Addr       // -a with an IPv4 address
	prefix4      int              // -n, --netmask, or a /len on -a; 0 when not given
	addr6        netip.Addr       // -a with an IPv6 address
	ourMAC       net.HardwareAddr // -M, --mac-addr; nil: 9a:55:9a:55:9a:55
	gw4          netip.Addr       // -g with an IPv4 address
	gw6          netip.Addr       // -g with an IPv6 address
	ifname       string           // -i, --interface
	outIf4       string           // --outbound-if4
	outIf6       string           // --outbound-if6
	outAddr4     netip.Addr       // -o with an IPv4 address
	outAddr6     netip.Addr       // -o with an IPv6 address
	dns          []netip.Addr     // -D, --dns (in order)
	dnsNone      bool             // -D none
	dnsForward4  netip.Addr       // --dns-forward, IPv4
	dnsForward6  netip.Addr       // --dns-forward, IPv6
	dnsHost4     netip.Addr       // --dns-host, IPv4
	dnsHost6     netip.Addr       // --dns-host, IPv6
	search       []string         // -S, --search
	searchNone   bool             // -S none
	noDHCPDNS    bool             // --no-dhcp-dns
	dhcpDNS      bool             // --dhcp-dns
	noDHCPSearch bool             // --no-dhcp-search
	dhcpSearch   bool             // --dhcp-search
	hostname     string           // -H, --hostname
	fqdn         string           // --fqdn

	// Protocol handlers.
	noTCP    bool // --no-tcp
	noUDP    bool // --no-udp
	noICMP   bool // --no-icmp
	noDHCP   bool // --no-dhcp
	noNDP    bool // --no-ndp
	noDHCPv6 bool // --no-dhcpv6
	noRA     bool // --no-ra
	ipv4Only bool // -4, --ipv4-only
	ipv6Only bool // -6, --ipv6-only
	freebind bool // --freebind

	// Address mapping.
	noMapGW             bool       // --no-map-gw
	mapHostLoopback4    netip.Addr // --map-host-loopback, IPv4
	mapHostLoopback6    netip.Addr // --map-host-loopback, IPv6
	mapHostLoopbackNone bool       // --map-host-loopback none
	mapGuestAddr4       netip.Addr // --map-guest-addr, IPv4
	mapGuestAddr6       netip.Addr // --map-guest-addr, IPv6
	mapGuestAddrNone    bool       // --map-guest-addr none
	hostLoToNsLo        bool       // --host-lo-to-ns-lo
	noSplice            bool       // --no-splice

	// Port forwarding.
	tcpFwd   fwdSpec // -t, --tcp-ports (host to namespace)
	udpFwd   fwdSpec // -u, --udp-ports
	tcpNsFwd fwdSpec // -T, --tcp-ns (namespace to host)
	udpNsFwd fwdSpec // -U, --udp-ns

	// Namespaces.
	nsIfname     string           // -I, --ns-ifname
	nsMAC        net.HardwareAddr // --ns-mac-addr
	userns       string           // --userns PATH
	netns        string           // --netns PATH (a NAME is expanded to /run/netns/NAME)
	netnsOnly    bool             // --netns-only
	noNetnsQuit  bool             // --no-netns-quit
	configNet    bool             // --config-net
	noCopyRoutes bool             // --no-copy-routes (deprecated)
	noCopyAddrs  bool             // --no-copy-addrs (deprecated)
	noPidns      bool             // --no-pidns
	spliceOnly   bool             // --splice-only
	targetPID    int              // PID given as the only positional argument; 0 if none
	command      []string         // command to run in a new namespace; empty: the user's shell

	// Confinement.
	chrootFallback bool // --chroot-fallback
}
