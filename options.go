package main

// The option table: the one source of the parser, --help, the man page and
// the bash completion (internal/cmdline). Facts about each option come from
// pasta(1); the words are ours.

import (
	"net"
	"net/netip"

	"gopasta/internal/cmdline"
)

// optDef is one row of the table.
type optDef = cmdline.Option[config]

// pastaCommand is pasta's command line.
var pastaCommand = cmdline.Command[config]{
	Name: "pasta",
	Synopsis: []string{
		"[OPTION]... [COMMAND [ARG]...]",
		"[OPTION]... PID",
		"[OPTION]... --netns [PATH|NAME]",
	},
	Description: "Connect a network namespace to the host network through a tap device, " +
		"translating its traffic to ordinary sockets. Without PID or --netns, run " +
		"COMMAND (by default the user's shell) in new user and network namespaces.",
	Groups: []*cmdline.Group{
		groupLogging, groupAddresses, groupProtocols, groupMapping, groupPorts, groupNamespaces, groupPasstOnly,
	},
	Options:  cmdOptions,
	Operands: cmdline.CompleteCommand,
}

var (
	groupLogging   = &cmdline.Group{Title: "Logging and process control"}
	groupAddresses = &cmdline.Group{Title: "Addresses and interfaces"}
	groupProtocols = &cmdline.Group{Title: "Protocols"}
	groupMapping   = &cmdline.Group{Title: "Address mapping"}
	groupPorts     = &cmdline.Group{
		Title: "Port forwarding",
		Note: "SPEC: none, or [ADDR[%IF]/]LIST, where LIST is comma-separated " +
			"PORT[-PORT][:TARGET[-TARGET]], ~PORT[-PORT] exclusions, all, and auto. Each defaults to auto, " +
			"except that UDP follows an explicit TCP port list.",
	}
	groupNamespaces = &cmdline.Group{Title: "Namespaces"}
	groupPasstOnly  = &cmdline.Group{Title: "passt-only options (refused)", Refused: true}
)

// Keywords offered by completion.
var (
	portKeywords = []string{"none", "auto", "all"}
	noneKeyword  = []string{"none"}
)

// cmdOptions lists every option pasta accepts, passt-only ones included so
// that they get a clear error. The order is the one of the ambiguity
// messages; --help and the man page list the options by group, in this
// order within each.
var cmdOptions = []optDef{
	// Logging and process control.
	{
		Long: "debug", Short: 'd', Group: groupLogging,
		Set:  setFlag(func(c *config) { c.debug, c.quiet = true, false }),
		Help: "verbose output, not to the system logger",
		Man: `Be verbose: log debugging messages too. In the background, messages
go to the --log-file if one is given and are dropped otherwise: never to
the system logger.`,
	},
	{
		Long: "trace", Group: groupLogging,
		Set:  setFlag(func(c *config) { c.trace, c.debug, c.quiet = true, true, false }),
		Help: "also show every packet (implies --debug)",
		Man:  `Be even more verbose, down to single packets. Implies --debug.`,
	},
	{
		Long: "quiet", Short: 'q', Group: groupLogging,
		Set:  setFlag(func(c *config) { c.quiet, c.debug, c.trace = true, false, false }),
		Help: "print no informational messages",
		Man:  `Log only warnings and errors.`,
	},
	{
		Long: "foreground", Short: 'f', Group: groupLogging,
		Set:  setFlag(func(c *config) { c.foreground = true }),
		Help: "stay in the foreground instead of daemonizing",
		Man: `With a PID or --netns, stay in the foreground instead of going to
the background once the namespace is connected. pasta always stays in the
foreground when it runs a command.`,
	},
	{
		Long: "stats", Arg: "DELAY", Group: groupLogging,
		Set:  setStats,
		Help: "print event counts, at most every DELAY seconds",
		Man: `Print on standard error how many events of each kind pasta has
handled since it started: a header naming the kinds of descriptors once,
then a line of counts at most every DELAY seconds, and only when there
were events since the last line. 0, the default, prints nothing. Needs
the foreground: a command, or --foreground with a PID or --netns.`,
	},
	{
		Long: "stderr", Short: 'e', Group: groupLogging,
		Set:  setFlag(func(c *config) { c.stderr = true }),
		Help: "no effect, kept for compatibility",
		Man: `No effect: accepted because older versions of pasta(1) had it.
Messages go to standard error while pasta is in the foreground anyway.`,
	},
	{
		Long: "log-file", Short: 'l', Arg: "PATH", Group: groupLogging, Complete: cmdline.CompleteFile,
		Set:  setPath(func(c *config) *string { return &c.logFile }),
		Help: "write log messages to PATH",
		Man: `Write log messages to the file PATH, and nowhere else. The file is
created or emptied at start, and kept under --log-size bytes. Given
several times, the last one counts.`,
	},
	{
		Long: "log-size", Arg: "SIZE", Group: groupLogging,
		Set:  setLogSize,
		Help: "maximum log file size in bytes (default 1048576)",
		Man: `Keep the --log-file under SIZE bytes, a positive number: when a
message would make it larger, the file starts over, with a line saying
that older messages were dropped. The default is 1048576 (1 MiB).`,
	},
	{
		Long: "runas", Arg: "UID[:GID]|LOGIN[:GROUP]", Group: groupLogging, Complete: cmdline.CompleteUser,
		Set:  setRunas,
		Help: "user (and group) to switch to when started as root",
		Man: `Once set up, switch to this user, given as a number or a login
name, and to its group or to the group given after a colon. This needs
root (or CAP_SETUID). Started as root without this option, pasta
switches to the user nobody.`,
	},
	{
		Long: "help", Short: 'h', Group: groupLogging,
		Set:  setFlag(func(c *config) { c.showHelp = true }),
		Help: "show this help and exit",
		Man:  `Show a summary of the options and exit.`,
	},
	{
		Long: "version", Group: groupLogging,
		Set:  setFlag(func(c *config) { c.showVersion = true }),
		Help: "show the version and exit",
		Man:  `Show the version, on one line, and exit.`,
	},
	{
		Long: "pcap", Short: 'p', Arg: "FILE", Group: groupLogging, Complete: cmdline.CompleteFile,
		Set:  setPath(func(c *config) *string { return &c.pcapFile }),
		Help: "capture namespace-side packets to FILE (pcap)",
		Man: `Capture the frames pasta exchanges with the namespace on the tap
device, in both directions, to FILE in pcap format, which tcpdump(8) and
wireshark(1) read. Given several times, the last one counts.`,
	},
	{
		Long: "pid", Short: 'P', Arg: "FILE", Group: groupLogging, Complete: cmdline.CompleteFile,
		Set:  setPath(func(c *config) *string { return &c.pidFile }),
		Help: "write the process ID to FILE once ready",
		Man: `Write the process ID of pasta to FILE once the namespace is
connected: the ID of the process that keeps running, in the background
unless --foreground is given.`,
	},
	{
		Long: "conf-path", Short: 'c', Arg: "PATH", Group: groupLogging, Complete: cmdline.CompleteFile,
		Set:  setPath(func(c *config) *string { return &c.confPath }),
		Help: "control socket for pesto(1) at PATH",
		Man: `Create a UNIX domain socket at PATH, before the namespace is reported
ready, through which pesto(1) shows and changes the port forwarding rules
of -t, -u, -T and -U while pasta runs. The socket has mode 0600, and only
the user who started pasta may use it (checked with the peer's
credentials). A socket left at PATH by a pasta that is gone is replaced;
anything else there is an error. The socket file stays when pasta exits.`,
	},

	// Addresses and interfaces.
	{
		Long: "mtu", Short: 'm', Arg: "MTU", Group: groupAddresses,
		Set:  setMTU,
		Help: "MTU to advertise (68-65520, 0: none)",
		Man: `Set the MTU of the tap device (with --config-net) and advertise it
through DHCP (option 26) and router advertisements (MTU option): a number
from 68 to 65520, or 0 to advertise none. The default is 65520, the
largest 802.3 MTU minus the header, rounded to 32-bit words.`,
	},
	{
		Long: "address", Short: 'a', Arg: "ADDR[/LEN]", Group: groupAddresses,
		Set:  setAddress,
		Help: "IPv4 or IPv6 address for the namespace",
		Man: `Give the namespace the IPv4 or IPv6 address ADDR: through DHCP and
--config-net for IPv4, through DHCPv6, router advertisements and
--config-net for IPv6. An IPv4 prefix length after a slash sets the
netmask, like --netmask; an IPv6 one is accepted and ignored (the prefix
is 64). Give it once per IP version.

By default the namespace gets the addresses of the host's interface with
the default route (see --interface), so that it sees the host's own
address; with no such interface, 169.254.2.1 for IPv4 and no IPv6
address (local mode).`,
	},
	{
		Long: "netmask", Short: 'n', Arg: "MASK", Group: groupAddresses,
		Set:  setNetmask,
		Help: "IPv4 netmask, dotted or as a prefix length",
		Man: `Set the IPv4 netmask, in dotted form (255.255.255.0) or as a prefix
length (24). By default, the netmask of the host address the namespace
gets; for an address given with --address and no prefix length, the
netmask of the same host address if there is one, else that of its
class.`,
	},
	{
		Long: "mac-addr", Short: 'M', Arg: "ADDR", Group: groupAddresses,
		Set:  setMAC(func(c *config) *net.HardwareAddr { return &c.ourMAC }),
		Help: "our MAC address as seen from the namespace",
		Man: `Use ADDR (xx:xx:xx:xx:xx:xx) as pasta's own MAC address, the one
the namespace sees for its gateway and every other host. The default is
9a:55:9a:55:9a:55, a locally administered address.`,
	},
	{
		Long: "gateway", Short: 'g', Arg: "ADDR", Group: groupAddresses,
		Set:  setAddrByFamily(unicastOnly, func(c *config) (*netip.Addr, *netip.Addr) { return &c.gw4, &c.gw6 }),
		Help: "IPv4 or IPv6 default gateway for the namespace",
		Man: `Give the namespace ADDR as its IPv4 or IPv6 default gateway, through
DHCP (option 3), router advertisements (as their source) and
--config-net, which then sets up only the default route for that IP
version. Give it once per IP version. By default, the gateway of the
host's default route; in local mode, 169.254.2.2 and fe80::1.

Unless --no-map-gw is given, connections to the gateway address reach the
host itself (see ADDRESS MAPPING).`,
	},
	{
		Long: "interface", Short: 'i', Arg: "NAME", Group: groupAddresses, Complete: cmdline.CompleteInterface,
		Set:  setIfname(func(c *config) *string { return &c.ifname }),
		Help: "host interface to copy addresses and routes from",
		Man: `Copy the addresses and routes the namespace gets from the host
interface NAME. By default, the interfaces given by --outbound-if4 and
--outbound-if6, else, for each IP version, the interface of the first
default route, else the only interface with any route.`,
	},
	{
		Long: "outbound", Short: 'o', Arg: "ADDR", Group: groupAddresses,
		Set:  setAddrByFamily(unicastOnly, func(c *config) (*netip.Addr, *netip.Addr) { return &c.outAddr4, &c.outAddr6 }),
		Help: "source address for outbound IPv4 or IPv6 sockets",
		Man: `Bind the host sockets of outbound TCP connections, UDP flows and
echo requests to ADDR, an IPv4 or IPv6 address of the host, so that they
leave with it as their source. Give it once per IP version. By default,
the routing tables choose.`,
	},
	{
		Long: "outbound-if4", Arg: "NAME", Group: groupAddresses, Complete: cmdline.CompleteInterface,
		Set:  setIfname(func(c *config) *string { return &c.outIf4 }),
		Help: "host interface for outbound IPv4 traffic",
		Man: `Bind the host sockets of outbound IPv4 traffic to the interface NAME
(SO_BINDTODEVICE), and copy IPv4 addresses and routes from it unless
--interface says otherwise.`,
	},
	{
		Long: "outbound-if6", Arg: "NAME", Group: groupAddresses, Complete: cmdline.CompleteInterface,
		Set:  setIfname(func(c *config) *string { return &c.outIf6 }),
		Help: "host interface for outbound IPv6 traffic",
		Man:  `As --outbound-if4, for IPv6.`,
	},
	{
		Long: "dns", Short: 'D', Arg: "ADDR", Group: groupAddresses, Words: noneKeyword,
		Set:  setDNS,
		Help: "nameserver to advertise (repeatable; none: no DNS)",
		Man: `Advertise ADDR, an IPv4 or IPv6 address, as a nameserver (with
--dhcp-dns), instead of the nameservers of the host's /etc/resolv.conf.
Give it several times for several nameservers. The address goes to the
namespace as it is: "-D 127.0.0.1" means the namespace's own loopback.
"-D none" advertises no nameserver at all.`,
	},
	{
		Long: "dns-forward", Arg: "ADDR", Group: groupAddresses,
		Set:  setAddrByFamily(unicastOnly, func(c *config) (*netip.Addr, *netip.Addr) { return &c.dnsForward4, &c.dnsForward6 }),
		Help: "address in the namespace redirected to --dns-host",
		Man: `Redirect DNS traffic (UDP and TCP to ports 53 and 853) that the
namespace sends to ADDR to the host's nameserver (see --dns-host), and
make the answers come back from ADDR. Give it once per IP version.
Podman uses it to give containers a nameserver address of their own.`,
	},
	{
		Long: "dns-host", Arg: "ADDR", Group: groupAddresses,
		Set:  setAddrByFamily(loopbackToo, func(c *config) (*netip.Addr, *netip.Addr) { return &c.dnsHost4, &c.dnsHost6 }),
		Help: "host-side nameserver for --dns-forward",
		Man: `Send what reaches the --dns-forward address to the nameserver ADDR
(loopback allowed) instead of the first nameserver of the host's
/etc/resolv.conf for that IP version. Give it once per IP version.`,
	},
	{
		Long: "search", Short: 'S', Arg: "LIST", Group: groupAddresses, Words: noneKeyword,
		Set:  setSearch,
		Help: "space-separated search domains (none: no list)",
		Man: `Advertise the space-separated domains of LIST as the DNS search list
(with --dhcp-search), instead of the host's /etc/resolv.conf. Given
several times, the lists add up. "-S none" advertises no search list.`,
	},
	{
		Long: "no-dhcp-dns", Group: groupAddresses,
		Set:  setFlag(func(c *config) { c.noDHCPDNS, c.dhcpDNS = true, false }),
		Help: "don't advertise nameservers",
		Man:  `Advertise no nameservers: pasta's default, undoing an earlier --dhcp-dns.`,
	},
	{
		Long: "dhcp-dns", Group: groupAddresses,
		Set:  setFlag(func(c *config) { c.dhcpDNS, c.noDHCPDNS = true, false }),
		Help: "advertise nameservers via DHCP, DHCPv6 and NDP",
		Man: `Advertise nameservers through DHCP (option 6), DHCPv6 (option 23)
and router advertisements (RDNSS): those of --dns, else the host's. A
loopback nameserver of the host, such as systemd-resolved's 127.0.0.53,
is advertised as the --dns-forward address of its IP version, else as
the --map-host-loopback address. By default pasta advertises none: the
namespace usually shares the host's /etc/resolv.conf.`,
	},
	{
		Long: "no-dhcp-search", Group: groupAddresses,
		Set:  setFlag(func(c *config) { c.noDHCPSearch, c.dhcpSearch = true, false }),
		Help: "don't advertise the search list",
		Man:  `Advertise no search list: pasta's default, undoing an earlier --dhcp-search.`,
	},
	{
		Long: "dhcp-search", Group: groupAddresses,
		Set:  setFlag(func(c *config) { c.dhcpSearch, c.noDHCPSearch = true, false }),
		Help: "advertise the search list via DHCP, DHCPv6 and NDP",
		Man: `Advertise the DNS search list, that of --search or else the host's,
through DHCP (option 119), DHCPv6 (option 24) and router advertisements
(DNSSL). By default pasta advertises none.`,
	},

	// Protocol handlers.
	{
		Long: "no-tcp", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.noTCP = true }),
		Help: "drop all TCP traffic",
		Man:  `Forward no TCP: drop the namespace's TCP packets and listen on no TCP port.`,
	},
	{
		Long: "no-udp", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.noUDP = true }),
		Help: "drop all UDP traffic",
		Man:  `Forward no UDP: drop the namespace's UDP packets and listen on no UDP port.`,
	},
	{
		Long: "no-icmp", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.noICMP = true }),
		Help: "drop ICMP and ICMPv6 echo requests",
		Man:  `Drop the namespace's ICMP and ICMPv6 echo requests instead of sending them out.`,
	},
	{
		Long: "no-dhcp", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.noDHCP = true }),
		Help: "don't answer DHCP requests",
		Man:  `Answer no DHCP requests from the namespace.`,
	},
	{
		Long: "no-ndp", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.noNDP = true }),
		Help: "don't answer NDP messages",
		Man: `Ignore the namespace's neighbour discovery messages and send none,
router advertisements included.`,
	},
	{
		Long: "no-dhcpv6", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.noDHCPv6 = true }),
		Help: "don't answer DHCPv6 requests",
		Man:  `Answer no DHCPv6 requests from the namespace.`,
	},
	{
		Long: "no-ra", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.noRA = true }),
		Help: "don't send router advertisements",
		Man:  `Send no router advertisements, and ignore router solicitations.`,
	},
	{
		Long: "freebind", Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.freebind = true }),
		Help: "allow binding forwarded ports to absent addresses",
		Man: `Let -t and -u listen on addresses the host does not have (yet),
with IP_FREEBIND and IPV6_FREEBIND: forwarding starts working when the
address appears.`,
	},

	// Address mapping.
	{
		Long: "map-host-loopback", Arg: "ADDR", Group: groupMapping, Words: noneKeyword,
		Set: setMappedAddr(func(c *config) (*netip.Addr, *netip.Addr, *bool) {
			return &c.mapHostLoopback4, &c.mapHostLoopback6, &c.mapHostLoopbackNone
		}),
		Help: "namespace traffic to ADDR reaches the host's loopback (none: no mapping)",
		Man: `Make the namespace's traffic to ADDR reach the host's loopback
(127.0.0.1 or ::1), and show host loopback traffic to the namespace as
coming from ADDR. Give it once per IP version. The default is the
gateway address, unless --no-map-gw is given; "none" maps nothing. See
ADDRESS MAPPING.`,
	},
	{
		Long: "no-map-gw", Group: groupMapping,
		Set:  setFlag(func(c *config) { c.noMapGW = true }),
		Help: "don't map the gateway address to the host",
		Man: `Don't map the gateway address to the host's loopback: traffic to the
gateway goes out to the real gateway.`,
	},
	{
		Long: "map-gw", Group: groupMapping,
		Set:  setFlag(func(c *config) { c.noMapGW = false }),
		Help: "map the gateway address to the host (default)",
		Man:  `Map the gateway address to the host's loopback: the default, undoing an earlier --no-map-gw.`,
	},
	{
		Long: "map-guest-addr", Arg: "ADDR", Group: groupMapping, Words: noneKeyword,
		Set: setMappedAddr(func(c *config) (*netip.Addr, *netip.Addr, *bool) {
			return &c.mapGuestAddr4, &c.mapGuestAddr6, &c.mapGuestAddrNone
		}),
		Help: "namespace traffic to ADDR reaches the host's own address (none: no mapping)",
		Man: `Make the namespace's traffic to ADDR reach the host at the address
the namespace was given (by default the host's own address, which the
namespace's copy of it hides). Give it once per IP version; "none" maps
nothing, the default. Podman uses it for host.containers.internal.`,
	},
	{
		Long: "ipv4-only", Short: '4', Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.ipv4Only = true }),
		Help: "use IPv4 only",
		Man: `Handle IPv4 only, and ignore IPv6. By default pasta handles each IP
version for which the host has an interface with an address and a route.`,
	},
	{
		Long: "ipv6-only", Short: '6', Group: groupProtocols,
		Set:  setFlag(func(c *config) { c.ipv6Only = true }),
		Help: "use IPv6 only",
		Man:  `Handle IPv6 only, and ignore IPv4.`,
	},
	{
		Long: "hostname", Short: 'H', Arg: "NAME", Group: groupAddresses,
		Set:  setDomain(func(c *config) *string { return &c.hostname }),
		Help: "hostname to send via DHCP",
		Man:  `Send NAME as the host name in DHCP answers (option 12).`,
	},
	{
		Long: "fqdn", Arg: "NAME", Group: groupAddresses,
		Set:  setDomain(func(c *config) *string { return &c.fqdn }),
		Help: "fully qualified name to send via DHCP and DHCPv6",
		Man:  `Send NAME as the client's fully qualified domain name, in DHCP (option 81) and DHCPv6 (option 39).`,
	},

	// passt-only options, refused.
	{Long: "socket", Short: 's', Arg: "PATH", Group: groupPasstOnly, Set: passtOnly, Help: "passt only"},
	{Long: "socket-path", Short: 's', Arg: "PATH", Group: groupPasstOnly, Set: passtOnly, Help: "passt only"},
	{Long: "vhost-user", Group: groupPasstOnly, Set: passtOnly, Help: "passt only"},
	{Long: "print-capabilities", Group: groupPasstOnly, Set: passtOnly, Help: "passt only"},
	{Long: "repair-path", Arg: "PATH", Group: groupPasstOnly, Set: passtOnly, Help: "passt only"},
	{Long: "fd", Short: 'F', Arg: "FD", Group: groupPasstOnly, Set: passtOnly, Help: "passt only"},
	{Long: "one-off", Short: '1', Group: groupPasstOnly, Set: passtOnly, Help: "passt only"},

	// Port forwarding.
	{
		Long: "tcp-ports", Short: 't', Arg: "SPEC", Group: groupPorts, Words: portKeywords,
		Set:  setPorts(true, func(c *config) *fwdSpec { return &c.tcpFwd }),
		Help: "TCP ports to forward into the namespace",
		Man: `Listen on the host's TCP ports given by SPEC and forward the
connections into the namespace, with the client's address as their
source. See PORT SPECIFICATIONS. Given several times, the lists add up.
The default is auto.`,
	},
	{
		Long: "udp-ports", Short: 'u', Arg: "SPEC", Group: groupPorts, Words: portKeywords,
		Set:  setPorts(false, func(c *config) *fwdSpec { return &c.udpFwd }),
		Help: "UDP ports to forward into the namespace",
		Man: `As -t, for UDP. Without -u, UDP follows a port list given to -t:
the same ports, untranslated. Otherwise the default is auto.`,
	},
	{
		Long: "tcp-ns", Short: 'T', Arg: "SPEC", Group: groupPorts, Words: portKeywords,
		Set:  setPorts(true, func(c *config) *fwdSpec { return &c.tcpNsFwd }),
		Help: "TCP ports to forward out to the host",
		Man: `Listen on the namespace's loopback TCP ports given by SPEC and forward
the connections to the same (or the target) port on the host's loopback.
The default is auto.`,
	},
	{
		Long: "udp-ns", Short: 'U', Arg: "SPEC", Group: groupPorts, Words: portKeywords,
		Set:  setPorts(false, func(c *config) *fwdSpec { return &c.udpNsFwd }),
		Help: "UDP ports to forward out to the host",
		Man: `As -T, for UDP. Without -U, it follows a port list given to -T, as
-u follows -t. Otherwise the default is auto.`,
	},
	{
		Long: "host-lo-to-ns-lo", Group: groupMapping,
		Set:  setFlag(func(c *config) { c.hostLoToNsLo = true }),
		Help: "traffic from the host's loopback arrives on the namespace's loopback",
		Man: `Deliver connections and datagrams that reach a -t or -u port through
the host's loopback to the namespace's loopback too. By default they
arrive at the namespace's own address, so that services the namespace
binds to its loopback stay private.`,
	},

	// Namespaces.
	{
		Long: "ns-ifname", Short: 'I', Arg: "NAME", Group: groupNamespaces,
		Set:  setIfname(func(c *config) *string { return &c.nsIfname }),
		Help: "name of the tap interface in the namespace",
		Man: `Call the tap device in the namespace NAME. By default it takes the
name of the host interface the addresses come from, else tap0.`,
	},
	{
		Long: "userns", Arg: "PATH", Group: groupNamespaces, Complete: cmdline.CompleteFile,
		Set:  setPath(func(c *config) *string { return &c.userns }),
		Help: "user namespace to join",
		Man: `Join the user namespace of the file PATH (such as /proc/PID/ns/user)
before the network namespace. With a PID and without this option, pasta
joins the user namespace of that process.`,
	},
	{
		Long: "netns", Arg: "PATH|NAME", Group: groupNamespaces, Complete: cmdline.CompleteFile,
		Set:  setNetns,
		Help: "network namespace to join (NAME: /run/netns/NAME)",
		Man: `Connect the network namespace of the file PATH, or a NAME as
ip-netns(8) gives it, meaning /run/netns/NAME, instead of running a
command. pasta exits when the file is removed, unless --no-netns-quit
is given. Not with a PID or a command.`,
	},
	{
		Long: "netns-only", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.netnsOnly = true }),
		Help: "join the network namespace only, no user namespace",
		Man: `Join only the network namespace, not a user namespace: with a PID,
not the process's user namespace. Implied by --netns without --userns.`,
	},
	{
		Long: "no-netns-quit", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.noNetnsQuit = true }),
		Help: "keep running after the namespace goes away",
		Man: `Keep running when the namespace file of --netns is removed, or the
process of PID exits. By default pasta exits then.`,
	},
	{
		Long: "chroot-fallback", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.chrootFallback = true }),
		Help: "chroot to the empty filesystem where pivot_root fails",
		Man: `Once set up, pasta moves to an empty, read-only filesystem with
pivot_root(2). That fails where the root is no mount point (pasta in a
chroot) or can't be moved (a tmpfs or initramfs root, EINVAL); pasta then
exits with an error, unless this option is given: then it chroot(2)s into
the empty filesystem instead, and the old mounts, unreachable, stay in its
mount namespace.`,
	},
	{
		Long: "config-net", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.configNet = true }),
		Help: "set up addresses, routes and link in the namespace",
		Man: `Configure the tap device in the namespace: bring it up with its MTU,
and add the addresses and routes copied from the host or given by
options, so that the namespace needs no DHCP client.`,
	},
	{
		Long: "no-pidns", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.noPidns = true }),
		Help: "run the command in pasta's PID namespace, with its /proc",
		Man: `Run the command in the PID namespace pasta itself runs in, and mount
no /proc for it, instead of making it PID 1 of a new PID namespace with a
/proc of its own: for places where procfs can't be mounted, such as
inside a container. Processes the command leaves behind then keep running
after it exits. Not with a PID or --netns.`,
	},
	{
		Long: "splice-only", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.spliceOnly = true }),
		Help: "make no tap device: only forward loopback traffic",
		Man: `Make no tap device in the namespace, which then has only its loopback
interface: pasta only joins local traffic socket to socket, from the
host's loopback to the namespace's loopback for -t and -u, and from the
namespace's loopback to the host's for -T and -U. Other clients of -t and
-u ports are refused (reset; datagrams dropped). --config-net then only
brings up lo.`,
	},
	{
		Long: "no-copy-routes", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.noCopyRoutes = true }),
		Help: "only set up the default route (deprecated)",
		Man: `Deprecated. With --config-net, add only the default route instead of
copying every route of the host interface. Implied by --gateway, for its
IP version.`,
	},
	{
		Long: "no-copy-addrs", Group: groupNamespaces,
		Set:  setFlag(func(c *config) { c.noCopyAddrs = true }),
		Help: "only set up one address (deprecated)",
		Man: `Deprecated. With --config-net, add only one address instead of
copying every address of the host interface. Implied by --address, for
its IP version.`,
	},
	{
		Long: "ns-mac-addr", Arg: "ADDR", Group: groupNamespaces,
		Set:  setMAC(func(c *config) *net.HardwareAddr { return &c.nsMAC }),
		Help: "MAC address of the tap interface in the namespace",
		Man: `Give the tap device in the namespace the MAC address ADDR
(xx:xx:xx:xx:xx:xx). By default the kernel picks a random one.`,
	},
	{
		Long: "no-splice", Group: groupMapping,
		Set:  setFlag(func(c *config) { c.noSplice = true }),
		Help: "don't bypass the tap device for local traffic",
		Man: `Send all traffic through the tap device, local traffic of -t, -u, -T
and -U included, which pasta otherwise joins socket to socket (see
ADDRESS MAPPING).`,
	},
}
