package main

// Parsing of the port forwarding specs given to -t, -u, -T and -U (and to
// pesto, at run time).
//
// A spec is "none" or a port list:
//
//	[ADDR[%IF]/ | %IF/] ITEM[,ITEM]...
//
// where ITEM is P, P1-P2, P:T, P1-P2:T1-T2 (a target range as long as the
// range), an exclusion ~P / ~P1-P2, "all" or "auto". A single target port
// is a range of one (pasta(1): "If last is omitted, assume the same as
// first"), so P1-P2:T with P1 != P2 is refused by the parser, like any
// target range of another length. Each included item is a rule of its
// own, cut where exclusions fall into it; without included items ("all",
// "auto", or only exclusions), the rules cover every non-ephemeral port
// and are best effort. "auto" makes every rule of the spec follow the
// ports bound on the other side (pasta(1), -t). Rules are kept in the
// order given, one per item, as the C pasta keeps them: pesto deletes
// rules by their exact ports.

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
)

const (
	maxPort = 65535

	// ephemeralRangeFile holds the kernel's range of ports for automatic
	// (ephemeral) binding, shared by TCP and UDP.
	ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"
	defaultEphemeralLo = 32768
	defaultEphemeralHi = 60999
)

// portItem is one comma-separated element of a port list.
type portItem struct {
	exclude     bool
	first, last int
	target      int        // port that first maps to; unused for exclusions
	toAddr      netip.Addr // target address, if given
}

// portSet is a set of port numbers.
type portSet [(maxPort + 1) / 64]uint64

func (s *portSet) add(p int)      { s[p/64] |= 1 << (p % 64) }
func (s *portSet) remove(p int)   { s[p/64] &^= 1 << (p % 64) }
func (s *portSet) has(p int) bool { return s[p/64]&(1<<(p%64)) != 0 }
func (s *portSet) addRange(lo, hi int) {
	for p := lo; p <= hi; p++ {
		s.add(p)
	}
}

// parsePortSpec parses one -t/-u/-T/-U argument. The second argument says
// whether the spec is for TCP; TCP and UDP currently share the grammar and
// the ephemeral port range, so it does not change the result.
func parsePortSpec(spec string, _ bool) (fwdSpec, error) {
	if spec == "none" {
		return fwdSpec{given: true}, nil
	}
	ranges, err := parsePortList(spec)
	if err != nil {
		return fwdSpec{}, fmt.Errorf("invalid port spec '%s': %w", spec, err)
	}
	return fwdSpec{given: true, ranges: ranges}, nil
}

// addPortSpec parses spec and adds its rules to dst, which holds what the
// earlier occurrences of the same option gave. A rule may not overlap an
// earlier one (see rangesConflict).
func addPortSpec(dst *fwdSpec, spec string, tcp bool) error {
	next, err := parsePortSpec(spec, tcp)
	if err != nil {
		return err
	}
	for _, r := range next.ranges {
		if p, clash := firstConflict(dst.ranges, r); clash {
			return fmt.Errorf("invalid port spec '%s': port %d given more than once", spec, p)
		}
	}
	dst.given = true
	dst.ranges = append(dst.ranges, next.ranges...)
	return nil
}

// firstConflict finds the first port of r that a rule of ranges already
// covers for an overlapping binding.
func firstConflict(ranges []fwdRange, r fwdRange) (uint16, bool) {
	for _, o := range ranges {
		if rangesConflict(o, r) {
			return max(o.first, r.first), true
		}
	}
	return 0, false
}

// rangesConflict tells whether two rules of one table would need the same
// socket: their ports overlap, and so do their bindings.
func rangesConflict(a, b fwdRange) bool {
	return a.first <= b.last && b.first <= a.last && bindingsOverlap(a, b)
}

// bindingsOverlap tells whether sockets bound as a and b could take the
// same connections: the same interface (or either any), and the same
// address, or either is any address (of its family, or of both).
func bindingsOverlap(a, b fwdRange) bool {
	if a.bindIf != "" && b.bindIf != "" && a.bindIf != b.bindIf {
		return false
	}
	x, y := a.bindAddr, b.bindAddr
	switch {
	case !x.IsValid() || !y.IsValid() || x == y:
		return true
	case x.Is4() != y.Is4():
		return false
	}
	return x.IsUnspecified() || y.IsUnspecified()
}

// untranslatedCopy returns the rules of s that list ports explicitly (not
// auto, not best effort), each forwarded to the same port number: how UDP
// follows an explicit TCP list.
func untranslatedCopy(s fwdSpec) fwdSpec {
	out := fwdSpec{given: true}
	for _, r := range s.ranges {
		if !r.auto && !r.bestEffort {
			r.target = r.first
			out.ranges = append(out.ranges, r)
		}
	}
	return out
}

// explicitPorts tells whether s lists ports for UDP to follow.
func explicitPorts(s fwdSpec) bool {
	return len(untranslatedCopy(s).ranges) > 0
}

// parsePortList parses a spec that is not "none" into its rules.
func parsePortList(spec string) ([]fwdRange, error) {
	addr, ifname, list, err := splitBindPrefix(spec)
	if err != nil {
		return nil, err
	}
	if list == "" {
		return nil, errors.New("no ports given")
	}
	var includes []portItem
	var excluded portSet
	auto, all := false, false
	var allTo netip.Addr // all:ADDR
	for field := range strings.SplitSeq(list, ",") {
		if rest, isAll := strings.CutPrefix(field, "all"); isAll && (rest == "" || rest[0] == ':') {
			all = true
			if rest != "" {
				var ok bool
				if allTo, ok = parseBindAddr(rest[1:]); !ok {
					return nil, fmt.Errorf("invalid target address '%s'", rest[1:])
				}
			}
			continue
		}
		if field == "auto" {
			auto = true
			continue
		}
		it, err := parsePortItem(field)
		switch {
		case err != nil:
			return nil, err
		case it.exclude:
			excluded.addRange(it.first, it.last)
		default:
			includes = append(includes, it)
		}
	}
	if all && (auto || len(includes) > 0) {
		return nil, errors.New("'all' can't be combined with ports or 'auto'")
	}
	bestEffort := len(includes) == 0
	if bestEffort {
		includes = nonEphemeralItems(allTo)
	}
	var seen portSet
	var ranges []fwdRange
	for _, it := range includes {
		if err := checkTargetAddr(addr, it.toAddr); err != nil {
			return nil, err
		}
		for p := it.first; p <= it.last; p++ {
			if seen.has(p) {
				return nil, fmt.Errorf("port %d given more than once", p)
			}
			seen.add(p)
		}
		base := fwdRange{bindAddr: addr, bindIf: ifname, targetAddr: it.toAddr, auto: auto, bestEffort: bestEffort}
		ranges = append(ranges, itemRanges(it, &excluded, base)...)
	}
	return ranges, nil
}

// itemRanges returns the rules of an included item: its ports minus the
// excluded ones, in maximal runs, with the bindings and flags of base.
func itemRanges(it portItem, excluded *portSet, base fwdRange) []fwdRange {
	var out []fwdRange
	for p := it.first; p <= it.last; p++ {
		if excluded.has(p) {
			continue
		}
		if n := len(out); n > 0 && int(out[n-1].last)+1 == p {
			out[n-1].last = uint16(p)
			continue
		}
		r := base
		r.first, r.last, r.target = uint16(p), uint16(p), uint16(it.target+p-it.first)
		out = append(out, r)
	}
	return out
}

// nonEphemeralItems lists the ports outside the ephemeral range: what
// "all" and "auto" cover; to a target address, if given.
func nonEphemeralItems(to netip.Addr) []portItem {
	lo, hi := ephemeralPortRange()
	var items []portItem
	if lo > 1 {
		items = append(items, portItem{first: 1, last: lo - 1, target: 1, toAddr: to})
	}
	if hi < maxPort {
		items = append(items, portItem{first: hi + 1, last: maxPort, target: hi + 1, toAddr: to})
	}
	return items
}

// checkTargetAddr refuses a target address whose family the binding does
// not fix: a socket bound to any address of both families takes clients
// of both, and a connection can't change family on its way (the C pasta
// refuses these too).
func checkTargetAddr(bind, to netip.Addr) error {
	switch {
	case !to.IsValid():
		return nil
	case !bind.IsValid():
		return fmt.Errorf("target address %s needs a listening address of its family (0.0.0.0/ or [::]/)", to)
	case bind.Is4() != to.Is4():
		return fmt.Errorf("target address %s and listening address %s are of different families", to, bind)
	}
	return nil
}

// splitBindPrefix splits the optional "ADDR/", "ADDR%IF/" or "%IF/" prefix
// off spec. An invalid address means any address.
func splitBindPrefix(spec string) (addr netip.Addr, ifname, list string, err error) {
	prefix, list, found := strings.Cut(spec, "/")
	if !found || targetWithoutBinding(prefix) {
		return netip.Addr{}, "", spec, nil
	}
	addrText, ifname, hasIf := strings.Cut(prefix, "%")
	if hasIf && !validIfname(ifname) {
		return netip.Addr{}, "", "", fmt.Errorf("invalid interface name '%s'", ifname)
	}
	if addrText == "" {
		if !hasIf {
			return netip.Addr{}, "", "", errors.New("missing address before '/'")
		}
		return netip.Addr{}, ifname, list, nil
	}
	addr, ok := parseBindAddr(addrText)
	if !ok {
		return netip.Addr{}, "", "", fmt.Errorf("invalid address '%s'", addrText)
	}
	return addr, ifname, list, nil
}

// targetWithoutBinding tells whether the text before the first '/' of a
// spec is the start of an item with a target address ("8080:10.0.0.2" of
// "8080:10.0.0.2/80") rather than a binding: it has a colon, isn't an
// address, and has no brackets or interface. Like the C pasta, text that
// is an IPv6 address is a binding: "8080:fd00::2/80" binds 8080:fd00::2.
func targetWithoutBinding(prefix string) bool {
	if !strings.Contains(prefix, ":") || strings.ContainsAny(prefix, "[]%") {
		return false
	}
	_, isAddr := parseBindAddr(prefix)
	return !isAddr
}

// parseBindAddr parses an IPv4 or IPv6 address, optionally in brackets.
func parseBindAddr(s string) (netip.Addr, bool) {
	if inner, bracketed := strings.CutPrefix(s, "["); bracketed {
		if s, bracketed = strings.CutSuffix(inner, "]"); !bracketed {
			return netip.Addr{}, false
		}
	}
	addr, err := netip.ParseAddr(s)
	return addr, err == nil && addr.Zone() == ""
}

// parsePortItem parses one list element: [~]P[-P2][:[ADDR/]T[-T2]] or
// P[-P2]:ADDR (pasta(1): the target ports, address, or both).
func parsePortItem(field string) (portItem, error) {
	var it portItem
	ports, exclude := strings.CutPrefix(field, "~")
	it.exclude = exclude
	src, dst, hasTarget := strings.Cut(ports, ":")
	if exclude && hasTarget {
		return it, fmt.Errorf("excluded ports '%s' can't have a target", field)
	}
	var err error
	if it.first, it.last, err = parsePortRange(src); err != nil {
		return it, err
	}
	it.target = it.first
	if !hasTarget {
		return it, nil
	}
	var portsGiven bool
	if it.toAddr, dst, portsGiven, err = splitTargetAddr(dst); err != nil || !portsGiven {
		return it, err // an error, or a target address alone: the same ports there
	}
	tFirst, tLast, err := parsePortRange(dst)
	if err != nil {
		return it, err
	}
	n := it.last - it.first
	if tLast-tFirst != n {
		return it, fmt.Errorf("target range '%s' doesn't match the length of '%s'", dst, src)
	}
	it.target = tFirst
	return it, nil
}

// splitTargetAddr splits the target of an item, after the ':', into its
// address (optionally in brackets) and its ports: "ADDR/PORTS", "PORTS",
// or "ADDR" alone (then portsGiven is false: the listening ports go there).
func splitTargetAddr(target string) (addr netip.Addr, ports string, portsGiven bool, err error) {
	if i := strings.LastIndexByte(target, '/'); i >= 0 {
		addr, ok := parseBindAddr(target[:i])
		if !ok {
			return netip.Addr{}, "", false, fmt.Errorf("invalid target address '%s'", target[:i])
		}
		return addr, target[i+1:], true, nil
	}
	if addr, ok := parseBindAddr(target); ok {
		return addr, "", false, nil
	}
	return netip.Addr{}, target, true, nil
}

// parsePortRange parses P or P1-P2.
func parsePortRange(s string) (first, last int, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if first, err = parsePort(lo); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return first, first, nil
	}
	if last, err = parsePort(hi); err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, errors.New("range end before start")
	}
	return first, last, nil
}

// parsePort parses a decimal port number, 1 to 65535.
func parsePort(s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("invalid port '%s'", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("port '%s' out of range (1-%d)", s, maxPort)
	}
	return int(n), nil
}

// ephemeralPortRange returns the kernel's ephemeral port range, read once:
// pesto's specs are parsed after set-up, when pasta may no longer open
// files.
func ephemeralPortRange() (lo, hi int) {
	ephemeralOnce.Do(func() { ephemeralLo, ephemeralHi = readEphemeralPortRange() })
	return ephemeralLo, ephemeralHi
}

var (
	ephemeralOnce            sync.Once
	ephemeralLo, ephemeralHi int
)

// readEphemeralPortRange reads the kernel's ephemeral port range, falling
// back to the kernel default if it can't be read.
func readEphemeralPortRange() (lo, hi int) {
	data, err := os.ReadFile(ephemeralRangeFile)
	if err != nil {
		return defaultEphemeralLo, defaultEphemeralHi
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return defaultEphemeralLo, defaultEphemeralHi
	}
	lo, errLo := strconv.Atoi(f[0])
	hi, errHi := strconv.Atoi(f[1])
	if errLo != nil || errHi != nil || lo < 1 || hi > maxPort || lo > hi {
		return defaultEphemeralLo, defaultEphemeralHi
	}
	return lo, hi
}
