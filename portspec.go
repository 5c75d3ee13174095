package main

// Parsing of the port forwarding specs given to -t, -u, -T and -U.
//
// A spec is a keyword ("none", "auto", "all") or a port list:
//
//	[ADDR[%IF]/ | %IF/] ITEM[,ITEM]...
//
// where ITEM is P, P1-P2, P:T, P1-P2:T1-T2 (a target range as long as the
// range), or an exclusion ~P / ~P1-P2. A single target port is a range of
// one (pasta(1): "If last is omitted, assume the same as first"), so
// P1-P2:T with P1 != P2 is refused by the parser, like any target range
// of another length.

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
)

const (
	maxPort = 65535

	// ephemeralRangeFile holds the kernel's range of ports for automatic
	// (ephemeral) binding, shared by TCP and UDP.
	ephemeralRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"
	defaultEphemeralLo = 32768
	defaultEphemeralHi = 60999
)

// modeKeywords are the specs that select a mode rather than list ports.
var modeKeywords = map[fwdMode]string{
	fwdNone: "none",
	fwdAuto: "auto",
	fwdAll:  "all",
}

// portItem is one comma-separated element of a port list.
type portItem struct {
	exclude     bool
	first, last int
	target      int // port that first maps to; unused for exclusions
}

// portMap maps each listening port to its target port; 0 means the port is
// not forwarded (port 0 is never a valid target).
type portMap [maxPort + 1]uint16

// bindKey identifies the socket binding of a range: ranges with different
// keys may cover the same ports.
type bindKey struct {
	addr   netip.Addr
	ifname string
}

func bindKeyOf(r fwdRange) bindKey { return bindKey{r.bindAddr, r.bindIf} }

// parsePortSpec parses one -t/-u/-T/-U argument. The second argument says
// whether the spec is for TCP; TCP and UDP currently share the grammar and
// the ephemeral port range, so it does not change the result.
func parsePortSpec(spec string, _ bool) (fwdSpec, error) {
	for mode, kw := range modeKeywords {
		if spec != kw {
			continue
		}
		if mode == fwdAll {
			return fwdSpec{mode: fwdAll, ranges: nonEphemeralRanges(), bestEffort: true}, nil
		}
		return fwdSpec{mode: mode}, nil
	}
	ranges, onlyExclusions, err := parsePortList(spec)
	if err != nil {
		return fwdSpec{}, fmt.Errorf("invalid port spec '%s': %w", spec, err)
	}
	return fwdSpec{mode: fwdPorts, ranges: ranges, bestEffort: onlyExclusions}, nil
}

// addPortSpec parses spec and merges it into dst, which holds what the
// earlier occurrences of the same option gave. Port lists accumulate; a
// keyword must be the only spec, though repeating it is harmless.
func addPortSpec(dst *fwdSpec, spec string, tcp bool) error {
	next, err := parsePortSpec(spec, tcp)
	if err != nil {
		return err
	}
	switch {
	case dst.mode == fwdUnset:
		*dst = next
		return nil
	case dst.mode != next.mode:
		kw := modeKeywords[next.mode]
		if next.mode == fwdPorts {
			kw = modeKeywords[dst.mode]
		}
		return fmt.Errorf("'%s' can't be combined with other port specs", kw)
	case dst.mode != fwdPorts:
		return nil // the same keyword again
	}
	merged, err := normalizeRanges(slices.Concat(dst.ranges, next.ranges))
	if err != nil {
		return fmt.Errorf("invalid port spec '%s': %w", spec, err)
	}
	dst.ranges = merged
	dst.bestEffort = dst.bestEffort && next.bestEffort
	return nil
}

// untranslatedCopy returns the same listening ports and bindings as s, each
// forwarded to the same port number: how UDP follows an explicit TCP list.
func untranslatedCopy(s fwdSpec) fwdSpec {
	ranges := make([]fwdRange, len(s.ranges))
	for i, r := range s.ranges {
		r.target = r.first
		ranges[i] = r
	}
	return fwdSpec{mode: s.mode, ranges: coalesceRanges(ranges), bestEffort: s.bestEffort}
}

// parsePortList parses a spec that is not a keyword into maximal ranges,
// and tells whether it had only exclusions.
func parsePortList(spec string) ([]fwdRange, bool, error) {
	addr, ifname, list, err := splitBindPrefix(spec)
	if err != nil {
		return nil, false, err
	}
	if list == "" {
		return nil, false, errors.New("no ports given")
	}
	var m portMap
	var exclusions []portItem
	onlyExclusions := true
	for field := range strings.SplitSeq(list, ",") {
		it, err := parsePortItem(field)
		if err != nil {
			return nil, false, err
		}
		if it.exclude {
			exclusions = append(exclusions, it)
			continue
		}
		onlyExclusions = false
		if err := m.add(it); err != nil {
			return nil, false, err
		}
	}
	if onlyExclusions {
		m.addNonEphemeral()
	}
	for _, it := range exclusions {
		clear(m[it.first : it.last+1])
	}
	return m.ranges(addr, ifname), onlyExclusions, nil
}

// splitBindPrefix splits the optional "ADDR/", "ADDR%IF/" or "%IF/" prefix
// off spec. An invalid address means any address.
func splitBindPrefix(spec string) (addr netip.Addr, ifname, list string, err error) {
	prefix, list, found := strings.Cut(spec, "/")
	if !found {
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

// parsePortItem parses one list element: [~]P[-P2][:T[-T2]].
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

// add maps the ports of a forwarding item, refusing ports already mapped.
func (m *portMap) add(it portItem) error {
	for p := it.first; p <= it.last; p++ {
		if m[p] != 0 {
			return fmt.Errorf("port %d given more than once", p)
		}
		m[p] = uint16(it.target + p - it.first)
	}
	return nil
}

// addNonEphemeral maps every port outside the ephemeral range to itself.
func (m *portMap) addNonEphemeral() {
	lo, hi := ephemeralPortRange()
	for p := 1; p <= maxPort; p++ {
		if p < lo || p > hi {
			m[p] = uint16(p)
		}
	}
}

// ranges turns the map into maximal runs with a constant target offset.
func (m *portMap) ranges(addr netip.Addr, ifname string) []fwdRange {
	var out []fwdRange
	for p := 1; p <= maxPort; p++ {
		t := m[p]
		if t == 0 {
			continue
		}
		r := fwdRange{bindAddr: addr, bindIf: ifname, first: uint16(p), last: uint16(p), target: t}
		if n := len(out); n > 0 && rangeContinues(out[n-1], r) {
			out[n-1].last = r.last
			continue
		}
		out = append(out, r)
	}
	return out
}

// continues reports whether next starts right after prev ends, with the same
// binding and target offset, so that the two can be a single range.
func rangeContinues(prev, next fwdRange) bool {
	return bindKeyOf(prev) == bindKeyOf(next) &&
		int(prev.last)+1 == int(next.first) &&
		int(next.target)-int(next.first) == int(prev.target)-int(prev.first)
}

// nonEphemeralRanges lists every port outside the ephemeral range, not
// translated and not bound to an address: what "all" forwards.
func nonEphemeralRanges() []fwdRange {
	var m portMap
	m.addNonEphemeral()
	return m.ranges(netip.Addr{}, "")
}

// ephemeralPortRange reads the kernel's ephemeral port range, falling back
// to the kernel default if it can't be read.
func ephemeralPortRange() (lo, hi int) {
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

// normalizeRanges sorts ranges from several specs by first port, refuses a
// port listed twice for the same binding, and joins ranges that continue
// each other.
func normalizeRanges(ranges []fwdRange) ([]fwdRange, error) {
	slices.SortStableFunc(ranges, func(a, b fwdRange) int { return cmp.Compare(a.first, b.first) })
	if p, found := firstOverlap(ranges); found {
		return nil, fmt.Errorf("port %d given more than once", p)
	}
	return coalesceRanges(ranges), nil
}

// firstOverlap finds a port covered twice for the same binding in ranges,
// which must be sorted by first port.
func firstOverlap(ranges []fwdRange) (port uint16, found bool) {
	end := map[bindKey]uint16{} // highest port covered so far, per binding
	for _, r := range ranges {
		k := bindKeyOf(r)
		if last, seen := end[k]; seen && r.first <= last {
			return r.first, true
		}
		end[k] = max(end[k], r.last)
	}
	return 0, false
}

// coalesceRanges joins ranges that continue the latest earlier range with
// the same binding. ranges must be sorted by first port, without overlaps
// per binding; the result keeps that order.
func coalesceRanges(ranges []fwdRange) []fwdRange {
	var out []fwdRange
	latest := map[bindKey]int{} // index in out of the latest range per binding
	for _, r := range ranges {
		k := bindKeyOf(r)
		if i, seen := latest[k]; seen && rangeContinues(out[i], r) {
			out[i].last = r.last
			continue
		}
		latest[k] = len(out)
		out = append(out, r)
	}
	return out
}
