package main

import (
	"fmt"
	"net/netip"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// Addresses of pasta's "local mode" (pasta(1), NOTES): with no usable host
// interface, the guest gets link-local addresses.
var (
	localModeAddr4 = netip.MustParseAddr("169.254.2.1")
	localModeGW4   = netip.MustParseAddr("169.254.2.2")
	localModeGW6   = netip.MustParseAddr("fe80::1")
)

const localModePrefix4 = 16

// familyOptions gathers the per-family command line options, so that IPv4
// and IPv6 are resolved by one function.
type familyOptions struct {
	family          int
	ifname          string // -i or --outbound-if4/6
	outIf           string
	addr            netip.Addr
	prefixLen       int
	gw              netip.Addr
	outAddr         netip.Addr
	mapHostLoopback netip.Addr
	mapGuestAddr    netip.Addr
}

func optionsFor(cfg *config, family int) familyOptions {
	if family == unix.AF_INET {
		return familyOptions{family, firstNonEmpty(cfg.ifname, cfg.outIf4), cfg.outIf4, cfg.addr4, cfg.prefix4,
			cfg.gw4, cfg.outAddr4, cfg.mapHostLoopback4, cfg.mapGuestAddr4}
	}
	return familyOptions{family, firstNonEmpty(cfg.ifname, cfg.outIf6), cfg.outIf6, cfg.addr6, 0,
		cfg.gw6, cfg.outAddr6, cfg.mapHostLoopback6, cfg.mapGuestAddr6}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// resolveIPConf works out the guest's configuration for one IP version from
// the options and the host's upstream interface.
func resolveIPConf(cfg *config, conn *rtnetlink.Conn, family int) (ipConf, error) {
	o := optionsFor(cfg, family)
	ic := ipConf{outAddr: o.outAddr, outIf: o.outIf, mapGuestAddr: o.mapGuestAddr}
	if (family == unix.AF_INET && cfg.ipv6Only) || (family == unix.AF_INET6 && cfg.ipv4Only) {
		return ic, nil
	}
	host, err := discoverUpstream(conn, family, o.ifname)
	if err != nil {
		return ic, err
	}
	ic.enabled = true
	if host != nil {
		ic.hostIf, ic.hostIfIndex = host.name, host.index
	}
	ic.addr, ic.prefixLen, ic.addrs = guestAddresses(cfg, o, host)
	ic.gw, ic.routes = guestRoutes(cfg, o, host)
	switch {
	case o.mapHostLoopback.IsValid():
		ic.mapHostLoopback = o.mapHostLoopback
	case !cfg.noMapGW && !cfg.mapHostLoopbackNone:
		ic.mapHostLoopback = ic.gw
	}
	if family == unix.AF_INET && !ic.addr.IsValid() {
		return ic, fmt.Errorf("no IPv4 address for the namespace")
	}
	return ic, nil
}

// guestAddresses returns the guest's address, its prefix length and the
// addresses --config-net adds: all of the host interface's (C pasta copies
// them), or just the one from -a or --no-copy-addrs.
func guestAddresses(cfg *config, o familyOptions, host *hostLink) (netip.Addr, int, []netip.Prefix) {
	var hostAddrs []netip.Prefix
	if host != nil {
		hostAddrs = host.addrs
	}
	if o.addr.IsValid() {
		bits := o.prefixLen
		if bits == 0 {
			bits = prefixForAddr(o.addr, hostAddrs)
		}
		return o.addr, bits, []netip.Prefix{netip.PrefixFrom(o.addr, bits)}
	}
	if len(hostAddrs) == 0 {
		if o.family == unix.AF_INET {
			return localModeAddr4, localModePrefix4, []netip.Prefix{netip.PrefixFrom(localModeAddr4, localModePrefix4)}
		}
		return netip.Addr{}, 0, nil
	}
	first := hostAddrs[0]
	bits := first.Bits()
	if o.family == unix.AF_INET && o.prefixLen != 0 {
		bits = o.prefixLen
	}
	if cfg.noCopyAddrs || bits != first.Bits() {
		return first.Addr(), bits, []netip.Prefix{netip.PrefixFrom(first.Addr(), bits)}
	}
	return first.Addr(), bits, hostAddrs
}

// prefixForAddr returns the prefix length of a host address equal to a,
// else the classful default (RFC 4632 section 3.1) for IPv4 and 64 for IPv6.
func prefixForAddr(a netip.Addr, hostAddrs []netip.Prefix) int {
	for _, p := range hostAddrs {
		if p.Addr() == a {
			return p.Bits()
		}
	}
	if a.Is6() {
		return 64
	}
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	default:
		return 24
	}
}

// guestRoutes returns the guest's default gateway and the routes
// --config-net adds: the host interface's routes, or only a default route
// through the gateway given with -g (or --no-copy-routes).
func guestRoutes(cfg *config, o familyOptions, host *hostLink) (netip.Addr, []hostRoute) {
	gw := o.gw
	if !gw.IsValid() && host != nil {
		gw = host.gw
	}
	if !gw.IsValid() {
		if host != nil && len(host.routes) > 0 {
			return gw, host.routes
		}
		gw = localModeGW4
		if o.family == unix.AF_INET6 {
			gw = localModeGW6
		}
	}
	defaultDst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if o.family == unix.AF_INET6 {
		defaultDst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	onlyDefault := []hostRoute{{dst: defaultDst, gw: gw}}
	if o.gw.IsValid() || cfg.noCopyRoutes || host == nil {
		return gw, onlyDefault
	}
	for _, r := range host.routes {
		if r.dst.Bits() == 0 {
			return gw, host.routes
		}
	}
	return gw, append(onlyDefault, host.routes...)
}
