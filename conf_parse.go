package main

// Command-line parsing: the options are in options.go and parsed by
// internal/cmdline; here are their handlers, the operands and the checks of
// the whole command line.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

const (
	defaultLogSize = 1 << 20 // --log-size default: 1 MiB
	minMTU         = 68      // smallest IPv4 MTU (RFC 791)
	maxMTU         = 65520   // 65535 minus an 802.3 header, in 32-bit words
	maxIfnameLen   = 15      // IFNAMSIZ - 1
	maxDomainLen   = 253     // longest domain name in text form
	maxPathLen     = 4095    // PATH_MAX - 1
	netnsDir       = "/run/netns/"
)

// optHandler applies an option to the configuration (see cmdline.Option.Set).
type optHandler func(c *config, arg string) error

// parseArgs parses the command line, without argv[0]. On error, the config
// returned holds what was parsed before the error, so that the caller can
// still see a --help given earlier.
func parseArgs(args []string) (*config, error) {
	c := &config{logSize: defaultLogSize, mtu: -1}
	positional, err := pastaCommand.Parse(c, args)
	if err != nil {
		return c, err
	}
	if err := setPositional(c, positional); err != nil {
		return c, err
	}
	if err := checkConflicts(c); err != nil {
		return c, err
	}
	applyUDPDefaults(c)
	return c, nil
}

// setPositional interprets what follows the options: a lone number is the
// PID of a process whose namespaces to join, anything else a command.
func setPositional(c *config, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if len(args) != 1 || !allDigits(args[0]) {
		c.command = args
		return nil
	}
	pid, err := strconv.ParseInt(args[0], 10, 32)
	if err != nil || pid <= 0 {
		return fmt.Errorf("invalid PID '%s'", args[0])
	}
	c.targetPID = int(pid)
	return nil
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// checkConflicts refuses combinations of options that make no sense
// together, once the whole command line is known.
func checkConflicts(c *config) error {
	switch {
	case c.ipv4Only && c.ipv6Only:
		return errors.New("--ipv4-only: conflicts with --ipv6-only")
	case c.netns != "" && c.targetPID != 0:
		return errors.New("--netns: can't be given with a PID")
	case c.netns != "" && len(c.command) > 0:
		return errors.New("--netns: can't be given with a command")
	case c.userns != "" && c.netns == "" && c.targetPID == 0:
		return errors.New("--userns: needs --netns or a PID")
	case c.userns != "" && c.netnsOnly:
		return errors.New("--userns: conflicts with --netns-only")
	case c.spliceOnly && c.noSplice:
		return errors.New("--splice-only: conflicts with --no-splice")
	case c.noPidns && (c.netns != "" || c.targetPID != 0):
		return errors.New("--no-pidns: can't be given with a PID or --netns")
	case c.statsDelay > 0 && !commandMode(c) && !c.foreground:
		// A daemon's standard error is /dev/null.
		return errors.New("--stats: needs the foreground: --foreground, or a command")
	}
	return nil
}

// applyUDPDefaults makes UDP follow an explicit TCP port list, without port
// translation, in each direction where no UDP spec was given.
func applyUDPDefaults(c *config) {
	if !c.udpFwd.given && explicitPorts(c.tcpFwd) {
		c.udpFwd = untranslatedCopy(c.tcpFwd)
	}
	if !c.udpNsFwd.given && explicitPorts(c.tcpNsFwd) {
		c.udpNsFwd = untranslatedCopy(c.tcpNsFwd)
	}
}

// Option handlers and handler builders.

func setFlag(set func(c *config)) optHandler {
	return func(c *config, _ string) error {
		set(c)
		return nil
	}
}

func passtOnly(*config, string) error {
	return errors.New("passt mode only, not in pasta")
}

func setPath(field func(c *config) *string) optHandler {
	return func(c *config, arg string) error {
		if !validPath(arg) {
			return fmt.Errorf("invalid path '%s'", arg)
		}
		*field(c) = arg
		return nil
	}
}

func validPath(s string) bool {
	return s != "" && len(s) <= maxPathLen
}

func setLogSize(c *config, arg string) error {
	n, err := strconv.ParseInt(arg, 10, 64)
	if !allDigits(arg) || err != nil || n < 1 {
		return fmt.Errorf("invalid size '%s'", arg)
	}
	c.logSize = n
	return nil
}

// maxStatsDelay bounds --stats: a day, more than anyone waits for a line.
const maxStatsDelay = 86400

// setStats handles --stats DELAY, whole seconds (0 prints nothing).
func setStats(c *config, arg string) error {
	n, err := strconv.Atoi(arg)
	if !allDigits(arg) || err != nil || n > maxStatsDelay {
		return fmt.Errorf("invalid delay '%s' (seconds, 0-%d)", arg, maxStatsDelay)
	}
	c.statsDelay = n
	return nil
}

func setRunas(c *config, arg string) error {
	if arg == "" {
		return fmt.Errorf("invalid user '%s'", arg)
	}
	c.runas = arg
	return nil
}

func setMTU(c *config, arg string) error {
	n, err := strconv.Atoi(arg)
	if !allDigits(arg) || err != nil || (n != 0 && (n < minMTU || n > maxMTU)) {
		return fmt.Errorf("invalid MTU '%s' (must be %d-%d, or 0)", arg, minMTU, maxMTU)
	}
	c.mtu = n
	return nil
}

// setAddress handles -a ADDR or ADDR/LEN. The prefix length of an IPv4
// address sets the netmask; the one of an IPv6 address is accepted and
// ignored, as C pasta does.
func setAddress(c *config, arg string) error {
	addrText, lenText, hasLen := strings.Cut(arg, "/")
	addr, ok := parseHostAddr(addrText, unicastOnly)
	if !ok {
		return invalidAddress(arg)
	}
	prefixLen := 0
	if hasLen {
		var err error
		prefixLen, err = strconv.Atoi(lenText)
		if !allDigits(lenText) || err != nil || prefixLen > addr.BitLen() {
			return invalidAddress(arg)
		}
	}
	if addr.Is6() {
		c.addr6 = addr
		return nil
	}
	c.addr4 = addr
	if hasLen {
		c.prefix4 = prefixLen
	}
	return nil
}

// setNetmask handles -n as a dotted-quad mask or a prefix length.
func setNetmask(c *config, arg string) error {
	if n, err := strconv.Atoi(arg); allDigits(arg) && err == nil && n <= 32 {
		c.prefix4 = n
		return nil
	}
	mask, err := netip.ParseAddr(arg)
	if err != nil || !mask.Is4() {
		return fmt.Errorf("invalid netmask '%s'", arg)
	}
	ones, bits := net.IPMask(mask.AsSlice()).Size()
	if bits == 0 { // not a contiguous mask
		return fmt.Errorf("invalid netmask '%s'", arg)
	}
	c.prefix4 = ones
	return nil
}

func setMAC(field func(c *config) *net.HardwareAddr) optHandler {
	return func(c *config, arg string) error {
		mac, ok := parseMAC(arg)
		if !ok {
			return fmt.Errorf("invalid MAC address '%s'", arg)
		}
		*field(c) = mac
		return nil
	}
}

// parseMAC parses exactly the xx:xx:xx:xx:xx:xx form.
func parseMAC(s string) (net.HardwareAddr, bool) {
	const macTextLen = len("xx:xx:xx:xx:xx:xx")
	if len(s) != macTextLen || strings.Count(s, ":") != 5 {
		return nil, false
	}
	mac, err := net.ParseMAC(s)
	return mac, err == nil && len(mac) == 6
}

// addrPolicy says which special addresses an option accepts.
type addrPolicy bool

const (
	unicastOnly addrPolicy = false // a unicast, non-loopback address
	loopbackToo addrPolicy = true  // a unicast address, loopback included
)

// parseAddr parses an IPv4 or IPv6 address (no zone, no IPv4-mapped IPv6)
// usable as the address of a host: not unspecified, multicast or the IPv4
// broadcast address, and loopback only if the policy allows it.
func parseHostAddr(s string, policy addrPolicy) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, false
	}
	broadcast := a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
	if a.IsUnspecified() || a.IsMulticast() || broadcast {
		return netip.Addr{}, false
	}
	if a.IsLoopback() && policy == unicastOnly {
		return netip.Addr{}, false
	}
	return a, true
}

// setAddrByFamily builds a handler for options given once per IP version:
// the address goes to the IPv4 or IPv6 field returned by fields.
func setAddrByFamily(policy addrPolicy, fields func(c *config) (v4, v6 *netip.Addr)) optHandler {
	return func(c *config, arg string) error {
		addr, ok := parseHostAddr(arg, policy)
		if !ok {
			return invalidAddress(arg)
		}
		v4, v6 := fields(c)
		storeByFamily(addr, v4, v6)
		return nil
	}
}

// setMappedAddr builds a handler for --map-host-loopback and
// --map-guest-addr: an address per IP version, or "none" to map nothing.
func setMappedAddr(fields func(c *config) (v4, v6 *netip.Addr, none *bool)) optHandler {
	return func(c *config, arg string) error {
		v4, v6, none := fields(c)
		if arg == "none" {
			*v4, *v6, *none = netip.Addr{}, netip.Addr{}, true
			return nil
		}
		addr, ok := parseHostAddr(arg, unicastOnly)
		if !ok {
			return invalidAddress(arg)
		}
		storeByFamily(addr, v4, v6)
		*none = false
		return nil
	}
}

func storeByFamily(addr netip.Addr, v4, v6 *netip.Addr) {
	if addr.Is4() {
		*v4 = addr
	} else {
		*v6 = addr
	}
}

func invalidAddress(arg string) error {
	return fmt.Errorf("invalid address '%s'", arg)
}

// setDNS handles -D: each address is added to the list; "none" empties it
// and disables DNS.
func setDNS(c *config, arg string) error {
	if arg == "none" {
		c.dns, c.dnsNone = nil, true
		return nil
	}
	addr, ok := parseHostAddr(arg, loopbackToo)
	if !ok {
		return invalidAddress(arg)
	}
	c.dns, c.dnsNone = append(c.dns, addr), false
	return nil
}

// setSearch handles -S: a space-separated list of domains, added to the
// list; "none" empties it and disables the search list.
func setSearch(c *config, arg string) error {
	if arg == "none" {
		c.search, c.searchNone = nil, true
		return nil
	}
	domains := strings.Fields(arg)
	if len(domains) == 0 {
		return fmt.Errorf("invalid search list '%s'", arg)
	}
	for _, d := range domains {
		if len(d) > maxDomainLen {
			return fmt.Errorf("invalid domain '%s'", d)
		}
	}
	c.search, c.searchNone = append(c.search, domains...), false
	return nil
}

// setDomain builds a handler for -H and --fqdn.
func setDomain(field func(c *config) *string) optHandler {
	return func(c *config, arg string) error {
		if arg == "" || len(arg) > maxDomainLen {
			return fmt.Errorf("invalid name '%s'", arg)
		}
		*field(c) = arg
		return nil
	}
}

func setIfname(field func(c *config) *string) optHandler {
	return func(c *config, arg string) error {
		if !validIfname(arg) {
			return fmt.Errorf("invalid interface name '%s'", arg)
		}
		*field(c) = arg
		return nil
	}
}

// validIfname applies the kernel's rules for network interface names.
func validIfname(s string) bool {
	if s == "" || len(s) > maxIfnameLen || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r == '/' || r == ':' || unicode.IsSpace(r)
	})
}

func setPorts(tcp bool, field func(c *config) *fwdSpec) optHandler {
	return func(c *config, arg string) error {
		return addPortSpec(field(c), arg, tcp)
	}
}

// setNetns handles --netns: a path, or a name under /run/netns as with
// ip-netns(8).
func setNetns(c *config, arg string) error {
	path := arg
	if !strings.Contains(arg, "/") {
		path = netnsDir + arg
	}
	if arg == "" || arg == "." || arg == ".." || len(path) > maxPathLen {
		return fmt.Errorf("invalid namespace '%s'", arg)
	}
	c.netns = path
	return nil
}
