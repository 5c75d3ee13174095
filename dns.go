package main

import (
	"bufio"
	"io"
	"net/netip"
	"os"
	"strings"
)

// DNS configuration: the nameservers and search list the guest is told
// about through DHCP, DHCPv6 and router advertisements, and the host's own
// resolver, where --dns-forward sends queries.
//
// In pasta mode (pasta(1), --dhcp-dns, --dhcp-search) nothing about DNS is
// advertised unless --dhcp-dns or --dhcp-search asks for it: the guest
// normally shares the host's resolv.conf. When it is advertised, -D and -S
// replace what resolv.conf says; "none" disables them. Addresses from -D go
// to the guest as they are; a loopback resolver from resolv.conf (such as
// systemd-resolved's 127.0.0.53) can't be reached from the guest as such,
// so C pasta advertises the --dns-forward address of its family instead,
// else the --map-host-loopback address (by default the gateway), else
// nothing. We do the same.

const (
	resolvConfPath   = "/etc/resolv.conf"
	maxNameservers   = 4 // per IP version: as many as C pasta advertises
	maxSearchDomains = 6 // MAXDNSRCH of <resolv.h>, C pasta's limit too
	maxDomainWireLen = 255
	maxLabelLen      = 63
)

// dnsConf is the resolved DNS configuration.
type dnsConf struct {
	guest4, guest6 []netip.Addr // nameservers advertised to the guest
	searchWire     []byte       // search domains advertised, in DNS wire format (RFC 1035 section 3.1)
	host4, host6   netip.Addr   // the host's resolver: --dns-host, else resolv.conf's first of the family
}

// resolvConf holds the parts of resolv.conf(5) pasta uses.
type resolvConf struct {
	nameservers []netip.Addr
	search      []string
}

// readResolvConf reads path; a file that can't be read means no
// nameservers and no search list.
func readResolvConf(path string) resolvConf {
	f, err := os.Open(path)
	if err != nil {
		if debugOn() {
			debugf("DNS: %v", err)
		}
		return resolvConf{}
	}
	defer f.Close()
	return parseResolvConf(f)
}

// parseResolvConf reads "nameserver" lines, and the search list from the
// last "search" or "domain" line, which is what resolv.conf(5) says the
// resolver uses (C pasta takes the first "search" line instead). Comments
// start with '#' or ';'; unparseable addresses are skipped.
func parseResolvConf(r io.Reader) resolvConf {
	var rc resolvConf
	s := bufio.NewScanner(r)
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), "#")
		line, _, _ = strings.Cut(line, ";")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(fields[1]); err == nil {
				rc.nameservers = append(rc.nameservers, a.Unmap())
			}
		case "search", "domain":
			rc.search = fields[1:]
		}
	}
	return rc
}

// resolveDNS works out the DNS configuration from the options, the guest's
// address configuration and the host's resolv.conf.
func resolveDNS(cfg *config, ip4, ip6 *ipConf, rc resolvConf) dnsConf {
	d := dnsConf{
		host4: firstOrGiven(cfg.dnsHost4, rc.nameservers, netip.Addr.Is4),
		host6: firstOrGiven(cfg.dnsHost6, rc.nameservers, netip.Addr.Is6),
	}
	if cfg.dhcpDNS && !cfg.dnsNone {
		d.guest4, d.guest6 = guestNameservers(cfg, ip4, ip6, rc.nameservers)
	}
	if cfg.dhcpSearch && !cfg.searchNone {
		search := cfg.search
		if len(search) == 0 {
			search = rc.search
		}
		d.searchWire = encodeSearchList(search)
	}
	return d
}

// firstOrGiven returns given if valid, else the first address of list in
// the family is selects.
func firstOrGiven(given netip.Addr, list []netip.Addr, is func(netip.Addr) bool) netip.Addr {
	if given.IsValid() {
		return given
	}
	for _, a := range list {
		if is(a) {
			return a
		}
	}
	return netip.Addr{}
}

// guestNameservers returns the nameservers to advertise for each IP
// version: -D's as given, else the host's as the guest reaches them.
func guestNameservers(cfg *config, ip4, ip6 *ipConf, hostNS []netip.Addr) (v4, v6 []netip.Addr) {
	given := len(cfg.dns) > 0
	list := cfg.dns
	if !given {
		list = hostNS
	}
	for _, a := range list {
		if !given {
			a = guestViewOfResolver(cfg, ip4, ip6, a)
		}
		switch {
		case a.Is4() && len(v4) < maxNameservers:
			v4 = append(v4, a)
		case a.Is6() && len(v6) < maxNameservers:
			v6 = append(v6, a)
		}
	}
	return v4, v6
}

// guestViewOfResolver returns the address through which the guest reaches
// the host's resolver a, or an invalid address if it can't.
func guestViewOfResolver(cfg *config, ip4, ip6 *ipConf, a netip.Addr) netip.Addr {
	if !a.IsLoopback() {
		return a.WithZone("") // a zone means nothing to the guest; its one link is ours
	}
	if a.Is4() {
		return firstValid(cfg.dnsForward4, ip4.mapHostLoopback)
	}
	return firstValid(cfg.dnsForward6, ip6.mapHostLoopback)
}

func firstValid(a, b netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return b
}

// encodeSearchList returns the wire encoding of the valid domains of list,
// at most maxSearchDomains of them, one after the other, uncompressed.
func encodeSearchList(list []string) []byte {
	var wire []byte
	valid := 0
	for _, d := range list {
		if valid == maxSearchDomains {
			break
		}
		enc, ok := appendDomainName(wire, d)
		if !ok {
			if debugOn() {
				debugf("DNS: skipping invalid search domain %q", d)
			}
			continue
		}
		wire, valid = enc, valid+1
	}
	return wire
}

// appendDomainName appends name, with or without its final dot, in DNS
// wire format (RFC 1035 section 3.1: length-prefixed labels of 1 to 63
// octets, ending with the root's empty label, 255 octets at most). It
// reports false, leaving b as it was, for a name that can't be encoded.
func appendDomainName(b []byte, name string) ([]byte, bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name)+2 > maxDomainWireLen {
		return b, false
	}
	start := len(b)
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > maxLabelLen {
			return b[:start], false
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0), true
}
