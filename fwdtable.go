package main

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"gopasta/internal/control"
)

// The forwarding rules of -t, -u, -T and -U, as run-time state that pesto
// changes through the control socket (ctl.go).
//
// Rules live in two tables, named as the C pasta names them (pesto(1),
// --clear): HOST holds -t and -u (ports bound on the host, forwarded into
// the namespace), SPLICE holds -T and -U (ports bound on the namespace's
// loopback, forwarded to the host). A rule is a range of ports with a
// binding (address, interface), a target range, and two flags: auto (a
// port gets a socket only while its target is bound on the other side)
// and best effort (ports that can't be bound are skipped, unless none
// can). Each socket bound for a rule is a listener (fwd.go); each flow made
// from a listener remembers its rule, for the rule's counters.
//
// A request (a list of additions, deletions and clears) is applied all or
// nothing: the resulting tables are worked out and checked first (no two
// rules of a table may need the same socket, a deleted rule must exist),
// then every socket the new rules need is bound, and only if all of that
// worked do old rules go and new ones take effect. A socket of a rule that
// goes is handed to a new rule that needs the same one, rather than closed
// and bound again, so replacing a rule never loses its port to another
// process. Deleting a rule closes its sockets: no new connections;
// connections already accepted through it (TCP, tap or spliced) are
// separate sockets and carry on. A UDP socket that flows still reply
// through is retired instead: it serves those flows only, and closes once
// they are gone (or goes back into service if a rule needs it again).

// fwdTable is one of the two tables.
type fwdTable uint8

const (
	tableHost   fwdTable = iota // -t, -u
	tableSplice                 // -T, -U
)

// tableNames are the tables' names, as pesto(1) --clear takes them.
var tableNames = [...]string{tableHost: "HOST", tableSplice: "SPLICE"}

// tableOf returns the table of a direction.
func tableOf(d fwdDir) fwdTable {
	if d.inNs {
		return tableSplice
	}
	return tableHost
}

// fwdDirs are the four directions, in the order of their options.
var fwdDirs = [...]fwdDir{dirTCP, dirUDP, dirTCPNs, dirUDPNs}

// dirByOption finds a direction by its long option name ("tcp-ports").
func dirByOption(name string) (fwdDir, bool) {
	for _, d := range fwdDirs {
		if d.option == "--"+name {
			return d, true
		}
	}
	return fwdDir{}, false
}

// rule is a forwarding rule in force, or a free slot.
type rule struct {
	fwdRange
	dir   fwdDir
	live  bool
	seq   uint64 // order of addition: tables list rules in it
	stats ruleStats
}

// ruleStats are a rule's counters. "In" is from the clients of its ports
// to the other side, "out" is back to the clients.
type ruleStats struct {
	connections  uint64 // TCP connections accepted
	flows        uint64 // UDP senders, each a flow
	bytesIn      uint64
	bytesOut     uint64
	datagramsIn  uint64
	datagramsOut uint64
}

// ruleRef refers to a rule from a listener or a flow: the rule's slot plus
// one, so that zero (a flow's initial value) refers to none.
type ruleRef int32

func refOf(slot int) ruleRef { return ruleRef(slot + 1) }

// stats returns the counters of the rule r refers to, or nil.
func (c *ctx) ruleStats(r ruleRef) *ruleStats {
	if r <= 0 {
		return nil
	}
	return &c.rules[r-1].stats
}

// countTraffic adds a flow's traffic to what the current batch moved (the
// loop's spin rule, runOnce) and, for a forwarded flow, to its rule's
// counters; in says which way (see ruleStats).
func (c *ctx) countTraffic(f *flow, in bool, bytes, datagrams int) {
	c.batchBytes += bytes
	s := c.ruleStats(f.rule)
	if s == nil {
		return
	}
	if in {
		s.bytesIn += uint64(bytes)
		s.datagramsIn += uint64(datagrams)
		return
	}
	s.bytesOut += uint64(bytes)
	s.datagramsOut += uint64(datagrams)
}

// opKind is what a ruleOp does.
type opKind uint8

const (
	opAdd opKind = iota
	opDelete
	opClear
)

// ruleOp is one step of a request.
type ruleOp struct {
	kind  opKind
	dir   fwdDir   // opAdd, opDelete
	r     fwdRange // opAdd, opDelete
	table fwdTable // opClear
}

// plannedRule is a rule of the tables a request leads to: an existing
// rule kept (slot), or a new one (slot -1).
type plannedRule struct {
	dir  fwdDir
	r    fwdRange
	slot int
}

// initialRules turns the command line's forwarding options into the
// operations that set the tables up.
func (c *ctx) initialRules() []ruleOp {
	var ops []ruleOp
	for _, d := range fwdDirs {
		if !c.protoEnabled(d.proto) {
			continue
		}
		for _, r := range c.cfg.forwarding(d).ranges {
			ops = append(ops, ruleOp{kind: opAdd, dir: d, r: r})
		}
	}
	return ops
}

// forwarding returns the configuration of a direction.
func (cfg *config) forwarding(d fwdDir) *fwdSpec {
	switch d {
	case dirTCP:
		return &cfg.tcpFwd
	case dirUDP:
		return &cfg.udpFwd
	case dirTCPNs:
		return &cfg.tcpNsFwd
	}
	return &cfg.udpNsFwd
}

// protoEnabled tells whether a protocol is handled (--no-tcp, --no-udp).
func (c *ctx) protoEnabled(proto uint8) bool {
	return !(proto == protoTCP && c.cfg.noTCP) && !(proto == protoUDP && c.cfg.noUDP)
}

// applyRuleOps applies a request: all of it, or, with an error saying
// why, nothing.
func (c *ctx) applyRuleOps(ops []ruleOp) error {
	plan, err := c.planRules(ops)
	if err != nil {
		return err
	}
	if err := c.commitPlan(plan); err != nil {
		return err
	}
	c.scanAutoForward() // sockets for the auto rules added
	return nil
}

// planRules works out the rules that ops lead to, and checks them.
func (c *ctx) planRules(ops []ruleOp) ([]plannedRule, error) {
	plan := c.liveRules()
	for _, op := range ops {
		switch op.kind {
		case opClear:
			plan = removeWhere(plan, func(p plannedRule) bool { return tableOf(p.dir) == op.table })
		case opAdd:
			if !c.protoEnabled(op.dir.proto) {
				return nil, fmt.Errorf("%s: %s is disabled", op.dir.option, protoName(op.dir.proto))
			}
			for _, p := range plan {
				if p.dir == op.dir && rangesConflict(p.r, op.r) {
					return nil, fmt.Errorf("%s: rule %s conflicts with rule %s",
						op.dir.option, formatRule(op.dir, op.r), formatRule(p.dir, p.r))
				}
			}
			plan = append(plan, plannedRule{dir: op.dir, r: op.r, slot: c.removedSlot(plan, op.dir, op.r)})
		case opDelete:
			i := indexWhere(plan, func(p plannedRule) bool { return p.dir == op.dir && p.r == op.r })
			if i < 0 {
				return nil, fmt.Errorf("%s: no rule %s to delete", op.dir.option, formatRule(op.dir, op.r))
			}
			plan = append(plan[:i], plan[i+1:]...)
		}
	}
	return plan, nil
}

// liveRules lists the rules in force, in the order they were added.
func (c *ctx) liveRules() []plannedRule {
	var out []plannedRule
	for _, slot := range c.ruleOrder() {
		r := &c.rules[slot]
		out = append(out, plannedRule{dir: r.dir, r: r.fwdRange, slot: slot})
	}
	return out
}

// ruleOrder returns the slots of the rules in force, oldest first.
func (c *ctx) ruleOrder() []int {
	var slots []int
	for i := range c.rules {
		if c.rules[i].live {
			slots = append(slots, i)
		}
	}
	// Slots are reused, so their order is not the order of addition.
	for i := 1; i < len(slots); i++ {
		for j := i; j > 0 && c.rules[slots[j]].seq < c.rules[slots[j-1]].seq; j-- {
			slots[j], slots[j-1] = slots[j-1], slots[j]
		}
	}
	return slots
}

// removedSlot finds a rule in force that the plan dropped and that equals
// the one added: it is kept, with its sockets and counters (a table
// cleared and given the same rule again). -1 if there is none.
func (c *ctx) removedSlot(plan []plannedRule, d fwdDir, r fwdRange) int {
	for i := range c.rules {
		cand := &c.rules[i]
		if !cand.live || cand.dir != d || cand.fwdRange != r {
			continue
		}
		if indexWhere(plan, func(p plannedRule) bool { return p.slot == i }) < 0 {
			return i
		}
	}
	return -1
}

func indexWhere(plan []plannedRule, match func(plannedRule) bool) int {
	for i, p := range plan {
		if match(p) {
			return i
		}
	}
	return -1
}

func removeWhere(plan []plannedRule, match func(plannedRule) bool) []plannedRule {
	out := plan[:0:0]
	for _, p := range plan {
		if !match(p) {
			out = append(out, p)
		}
	}
	return out
}

// socketKey identifies what a listener is bound to, to hand it over from
// a rule that goes to one that comes.
type socketKey struct {
	proto  uint8
	inNs   bool
	addr   netip.Addr
	ifname string
	port   uint16
}

func (l *listener) key() socketKey {
	return socketKey{l.proto, l.inNs, l.addr, l.ifname, l.port}
}

// pendingSocket is a socket a new rule will use: bound for it (listener
// slot), or taken over from a rule that goes (takeover).
type pendingSocket struct {
	planned  int // index in the plan
	listener int
	takeover bool
	port     uint16
	target   uint16
}

// commitPlan binds the sockets of the plan's new rules, then, if that
// worked, makes the plan the rules in force.
func (c *ctx) commitPlan(plan []plannedRule) error {
	kept := map[int]bool{}
	for _, p := range plan {
		if p.slot >= 0 {
			kept[p.slot] = true
		}
	}
	// Sockets of the rules that go, by what they are bound to.
	handover := map[socketKey]int{}
	for i := range c.listeners {
		l := &c.listeners[i]
		if l.fd >= 0 && (l.retired || (l.rule > 0 && !kept[int(l.rule-1)])) {
			handover[l.key()] = i
		}
	}
	// Every socket of a rule must be bound, but for best effort rules
	// (all, lists of exclusions): of those, the request needs one at
	// least (pasta(1): "unless no ports could be forwarded at all").
	var pending []pendingSocket
	var effortErr error
	effortTried, effortBound := false, 0
	for i, p := range plan {
		if p.slot >= 0 || p.r.auto {
			continue // kept with its sockets; auto rules bind when scanned
		}
		got, err := c.ruleSockets(i, p, handover)
		pending = append(pending, got...)
		switch {
		case p.r.bestEffort:
			effortTried, effortBound = true, effortBound+len(got)
			if effortErr == nil && err != nil {
				effortErr = fmt.Errorf("%s: %w", p.dir.option, err)
			}
		case err != nil:
			c.dropPending(pending)
			return fmt.Errorf("%s: %w", p.dir.option, err)
		}
	}
	if effortTried && effortBound == 0 && effortErr != nil {
		c.dropPending(pending)
		return effortErr
	}
	c.installPlan(plan, kept, pending)
	return nil
}

// ruleSockets binds (or takes over) the sockets of a new rule, and returns
// them with the first error, if a socket could not be bound.
func (c *ctx) ruleSockets(planned int, p plannedRule, handover map[socketKey]int) ([]pendingSocket, error) {
	var got []pendingSocket
	var firstErr error
	for port := int(p.r.first); port <= int(p.r.last); port++ {
		target := uint16(int(p.r.target) + port - int(p.r.first))
		for _, a := range c.bindAddrs(p.dir, p.r.bindAddr) {
			ps := pendingSocket{planned: planned, port: uint16(port), target: target}
			k := socketKey{p.dir.proto, p.dir.inNs, a, p.r.bindIf, uint16(port)}
			if li, ok := handover[k]; ok {
				delete(handover, k)
				ps.listener, ps.takeover = li, true
				got = append(got, ps)
				continue
			}
			li, err := c.openListener(p.dir, netip.AddrPortFrom(a, uint16(port)), p.r.bindIf, netip.AddrPortFrom(p.r.targetAddr, target))
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			ps.listener = li
			got = append(got, ps)
		}
	}
	return got, firstErr
}

// dropPending closes the sockets bound for a request that failed; those
// to be taken over stay with their rules.
func (c *ctx) dropPending(pending []pendingSocket) {
	for _, ps := range pending {
		if !ps.takeover {
			c.closeListener(ps.listener)
		}
	}
}

// installPlan makes the plan the rules in force: rules that go lose their
// sockets (but those handed over), new rules get slots and their sockets.
func (c *ctx) installPlan(plan []plannedRule, kept map[int]bool, pending []pendingSocket) {
	taken := map[int]bool{}
	for _, ps := range pending {
		if ps.takeover {
			taken[ps.listener] = true
		}
	}
	for slot := range c.rules {
		if c.rules[slot].live && !kept[slot] {
			c.removeRule(slot, taken)
		}
	}
	slots := make([]int, len(plan))
	for i, p := range plan {
		slots[i] = p.slot
		if p.slot < 0 {
			slots[i] = c.addRule(p.dir, p.r)
		}
	}
	for _, ps := range pending {
		l := &c.listeners[ps.listener]
		l.rule, l.target, l.targetAddr, l.auto, l.retired = refOf(slots[ps.planned]), ps.target, plan[ps.planned].r.targetAddr, false, false
	}
}

// addRule puts a rule in force in a free slot, and returns the slot.
func (c *ctx) addRule(d fwdDir, r fwdRange) int {
	c.ruleSeq++
	c.logRuleChange("forwarding %s", formatRule(d, r))
	nr := rule{fwdRange: r, dir: d, live: true, seq: c.ruleSeq}
	for i := range c.rules {
		if !c.rules[i].live {
			c.rules[i] = nr
			return i
		}
	}
	c.rules = append(c.rules, nr)
	return len(c.rules) - 1
}

// logRuleChange logs a rule put in or out of force: the rules of the
// command line only with --debug (C pasta prints none at start), changes
// asked through the control socket (set up after them) always.
func (c *ctx) logRuleChange(format string, args ...any) {
	switch {
	case c.ctl != nil:
		infof(format, args...)
	case debugOn():
		debugf(format, args...)
	}
}

// removeRule takes a rule out of force: its sockets close, except those in
// keep (handed over to a new rule) and UDP sockets that flows still reply
// through (retired until the flows are gone), and its flows stop counting
// for it.
func (c *ctx) removeRule(slot int, keep map[int]bool) {
	ref := refOf(slot)
	inUse := c.udpListenersInUse()
	for i := range c.listeners {
		l := &c.listeners[i]
		switch {
		case l.fd < 0 || l.rule != ref || keep[i]:
		case inUse[i]:
			l.rule, l.retired, l.auto = 0, true, false
		default:
			c.closeListener(i)
		}
	}
	for fi := c.flows.nextUsed(0); fi >= 0; fi = c.flows.nextUsed(fi + 1) {
		if f := c.flows.at(fi); f.rule == ref {
			f.rule = 0
		}
	}
	c.logRuleChange("no longer forwarding %s", formatRule(c.rules[slot].dir, c.rules[slot].fwdRange))
	c.rules[slot] = rule{}
}

// udpListenersInUse returns the listeners that UDP flows reply through.
func (c *ctx) udpListenersInUse() map[int]bool {
	inUse := map[int]bool{}
	for fi := c.flows.nextUsed(0); fi >= 0; fi = c.flows.nextUsed(fi + 1) {
		if f := c.flows.at(fi); f.typ == flowUDP && !f.dead && f.udp.listener >= 0 {
			inUse[f.udp.listener] = true
		}
	}
	return inUse
}

// closeIdleRetired closes the retired listeners no flow replies through
// any more: the flows of a deleted rule ended (idle timeout).
func (c *ctx) closeIdleRetired() {
	var inUse map[int]bool
	for i := range c.listeners {
		if l := &c.listeners[i]; l.fd >= 0 && l.retired {
			if inUse == nil {
				inUse = c.udpListenersInUse()
			}
			if !inUse[i] {
				c.closeListener(i)
			}
		}
	}
}

// retiredListener finds a retired listener bound as k, which a rule that
// needs that socket takes over; -1 if there is none.
func (c *ctx) retiredListener(k socketKey) int {
	for i := range c.listeners {
		if l := &c.listeners[i]; l.fd >= 0 && l.retired && l.key() == k {
			return i
		}
	}
	return -1
}

// bindAddrs returns the addresses a rule's sockets are bound to: its own,
// or by default every enabled family's wildcard address on the host, and
// the loopback addresses in the namespace (-T and -U only serve local
// traffic).
func (c *ctx) bindAddrs(d fwdDir, addr netip.Addr) []netip.Addr {
	switch {
	case addr.IsValid():
		return []netip.Addr{addr}
	case d.inNs:
		return []netip.Addr{loopback4, loopback6}
	}
	var addrs []netip.Addr
	if c.ip4.enabled {
		addrs = append(addrs, netip.IPv4Unspecified())
	}
	if c.ip6.enabled {
		addrs = append(addrs, netip.IPv6Unspecified())
	}
	return addrs
}

// openListener opens one listening (TCP) or bound (UDP) socket, on the
// host or in the namespace, and registers it, for no rule yet. Its
// connections go to the port of to, and its address if valid.
func (c *ctx) openListener(d fwdDir, ap netip.AddrPort, ifname string, to netip.AddrPort) (int, error) {
	fd := -1
	open := func() (err error) {
		fd, err = boundSocket(d.proto, ap, ifname, c.cfg.freebind)
		return err
	}
	var err error
	if d.inNs {
		err = c.ns.do(open)
	} else {
		err = open()
	}
	if err != nil {
		return -1, err
	}
	kind := kindTCPListen
	if d.proto == protoUDP {
		kind = kindUDPListen
	}
	idx := c.freeListenerSlot()
	c.listeners[idx] = listener{fd: fd, proto: d.proto, inNs: d.inNs, v6: ap.Addr().Is6(),
		addr: ap.Addr(), ifname: ifname, port: ap.Port(), target: to.Port(), targetAddr: to.Addr()}
	c.listenersOpen++
	c.rebudget()
	if err := c.epollAdd(fd, unix.EPOLLIN, makeRef(kind, idx)); err != nil {
		c.closeListener(idx)
		return -1, err
	}
	if debugOn() {
		debugf("%s: forwarding %s to %s", d.option, ap, to)
	}
	return idx, nil
}

// protoName is a protocol's name in messages and tables.
func protoName(proto uint8) string {
	if proto == protoUDP {
		return "UDP"
	}
	return "TCP"
}

// formatRule describes a rule as the C pasta does in its tables:
// "TCP [*]:8000-8010  =>  9000-9010  (auto-scan)".
func formatRule(d fwdDir, r fwdRange) string {
	w := wireRule(d, r)
	return control.RuleText(tableNames[tableOf(d)], &w)
}
