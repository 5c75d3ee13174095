package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Port forwarding from the host into the namespace (-t, -u) and the
// address translation between what the guest sees and what host sockets
// use (pasta(1), NOTES: "Handling of traffic with loopback destination and
// source addresses").

var (
	loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loopback6 = netip.IPv6Loopback()
)

// mapDestination translates a destination as the guest addressed it into
// the one a host socket uses: DNS (TCP or UDP, port 53 or 853) to the
// --dns-forward address goes to the host's resolver, the
// --map-host-loopback address (by default the gateway) means the host's
// loopback, the --map-guest-addr address means the host's own address.
func (c *ctx) mapDestination(dst netip.AddrPort, proto uint8) netip.AddrPort {
	a := dst.Addr()
	ic := c.ipConfFor(a)
	if resolver := c.dnsForwardTarget(a); resolver.IsValid() && proto != protoICMP && proto != protoICMPv6 &&
		(dst.Port() == dnsPort || dst.Port() == dnsOverTLSPort) {
		return netip.AddrPortFrom(resolver, dst.Port())
	}
	switch {
	case ic.mapHostLoopback.IsValid() && a == ic.mapHostLoopback:
		if a.Is4() {
			return netip.AddrPortFrom(loopback4, dst.Port())
		}
		return netip.AddrPortFrom(loopback6, dst.Port())
	case ic.mapGuestAddr.IsValid() && a == ic.mapGuestAddr:
		return netip.AddrPortFrom(ic.addr, dst.Port())
	}
	return dst
}

// linkScope is the interface a link-local destination is reached through
// on the host: the upstream interface (RFC 4007 section 6: link-local
// addresses are only meaningful with a zone).
func (c *ctx) linkScope() int { return c.ip6.hostIfIndex }

// dnsForwardTarget returns the host resolver that DNS to a goes to, when a
// is the --dns-forward address of its family.
func (c *ctx) dnsForwardTarget(a netip.Addr) netip.Addr {
	switch {
	case a.Is4() && a == c.cfg.dnsForward4:
		return c.dns.host4
	case a.Is6() && a == c.cfg.dnsForward6:
		return c.dns.host6
	}
	return netip.Addr{}
}

// inboundSource translates the address of a host peer of a forwarded
// port into the source address the guest sees, or reports that there is
// none. The rules are those of pasta(1), NOTES ("Handling of traffic with
// loopback destination and source addresses", and --map-guest-addr), as
// the C pasta of 2026-10 applies them, in this order:
//
//  1. exactly 127.0.0.1 or ::1, with a --map-host-loopback address (by
//     default the gateway): that address;
//  2. the guest's own address (the host's, copied into the namespace),
//     with a --map-guest-addr address: that address (the reverse of the
//     option's outbound translation);
//  3. any other address the guest can reach as it is: itself;
//  4. otherwise (loopback without a mapping, other 127.0.0.0/8 addresses,
//     the guest's own address without --map-guest-addr): pasta's own
//     address on the tap, the gateway for IPv4 and our link-local address
//     for IPv6 (ndp.go), whatever --no-map-gw or --map-host-loopback say.
//
// The C pasta differs from the man page in 4: the page says such traffic
// is dropped with --no-map-gw or --map-host-loopback none, but it is
// forwarded from the gateway (see docs/podman.md).
func (c *ctx) inboundSource(peer netip.Addr) (netip.Addr, bool) {
	ic := c.ipConfFor(peer)
	switch {
	case (peer == loopback4 || peer == loopback6) && ic.mapHostLoopback.IsValid():
		return ic.mapHostLoopback, true
	case peer == ic.addr && ic.mapGuestAddr.IsValid():
		return ic.mapGuestAddr, true
	case ic.reachableAsIs(peer):
		return peer, true
	case peer.Is6():
		return c.ourLinkLocal(), true
	}
	return ic.gw, ic.gw.IsValid()
}

// inboundProblem says why traffic from a host peer can't be forwarded
// through the tap, given the peer's IP version, whether it has a source
// address the guest could see, and its destination: "" when it can.
func inboundProblem(ic *ipConf, hasSource bool, dst netip.Addr) string {
	switch {
	case !ic.enabled:
		return "its IP version is disabled"
	case !dst.IsValid():
		return "the namespace has no address of its IP version"
	case !hasSource:
		return "no address to show it from in the namespace (no gateway)"
	}
	return ""
}

// reachableAsIs tells whether the guest can see host address a as it is:
// not a loopback or unspecified address, and not one the guest has itself
// (configured, or seen as its source).
func (ic *ipConf) reachableAsIs(a netip.Addr) bool {
	return !a.IsLoopback() && !a.IsUnspecified() && a != ic.addr && a != ic.observed
}

// guestDestination is the guest address an inbound flow goes to: its
// link-local address when the source is link-local (if seen), else its
// address as last seen or configured.
func (ic *ipConf) guestDestination(src netip.Addr) netip.Addr {
	if src.IsLinkLocalUnicast() && ic.observedLL.IsValid() {
		return ic.observedLL
	}
	if ic.observed.IsValid() {
		return ic.observed
	}
	return ic.addr
}

// guestTarget is the guest address an inbound flow from src goes to: the
// rule's target address if it gives one, else guestDestination.
func (ic *ipConf) guestTarget(src, targetAddr netip.Addr) netip.Addr {
	if targetAddr.IsValid() {
		return targetAddr
	}
	return ic.guestDestination(src)
}

// listener is a socket bound for a forwarded port: on the host for -t and
// -u, in the namespace for -T and -U.
type listener struct {
	fd     int // -1: free slot
	rule   ruleRef
	proto  uint8
	inNs   bool // bound in the namespace: its peers are local, on the host side
	v6     bool
	addr   netip.Addr // bound address
	ifname string     // bound interface, if any
	port   uint16     // bound port
	target uint16     // port on the other side
	// targetAddr is the address on the other side, if the rule gives one
	// (pasta(1): "toaddr"); else the namespace's address, or the host's
	// loopback for -T and -U.
	targetAddr netip.Addr
	auto       bool // opened by the auto scan
	// retired: its rule was deleted, but UDP flows still send their
	// replies through it; it takes no new senders, and closes once they
	// are gone (fwdtable.go).
	retired bool
}

// to is where the listener's connections go: the target port, and the
// target address if the rule gives one (invalid otherwise).
func (l *listener) to() netip.AddrPort { return netip.AddrPortFrom(l.targetAddr, l.target) }

// fwdDir is one of the four forwarding options: a protocol, and whether
// ports are bound in the namespace (-T, -U) or on the host (-t, -u).
type fwdDir struct {
	proto  uint8
	inNs   bool
	option string
}

var (
	dirTCP   = fwdDir{protoTCP, false, "--tcp-ports"}
	dirUDP   = fwdDir{protoUDP, false, "--udp-ports"}
	dirTCPNs = fwdDir{protoTCP, true, "--tcp-ns"}
	dirUDPNs = fwdDir{protoUDP, true, "--udp-ns"}
)

// boundSocket makes a non-blocking socket bound to ap (and ifname), and
// listening for TCP, in the calling thread's network namespace.
func boundSocket(proto uint8, ap netip.AddrPort, ifname string, freebind bool) (int, error) {
	family, typ := unix.AF_INET, unix.SOCK_STREAM
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	if proto == protoUDP {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket for %s: %w", ap, err)
	}
	fail := func(err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("binding %s: %w", ap, err)
	}
	_ = setsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if family == unix.AF_INET6 {
		_ = setsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	if ifname != "" {
		if err := unix.BindToDevice(fd, ifname); err != nil {
			return fail(err)
		}
	}
	if freebind { // --freebind: bind addresses the host does not have (yet)
		if family == unix.AF_INET6 {
			_ = setsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			_ = setsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	}
	var sa rawSockaddr
	sa.set(ap)
	if err := bindRaw(fd, &sa); err != nil {
		return fail(err)
	}
	if proto == protoTCP {
		// Connections accepted here inherit it: no second Nagle delay
		// behind the client's own choice (spliced and tap flows).
		_ = setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return fail(err)
		}
	}
	return fd, nil
}

// freeListenerSlot returns a free slot of the listener table.
func (c *ctx) freeListenerSlot() int {
	if n := len(c.freeListeners); n > 0 {
		i := c.freeListeners[n-1]
		c.freeListeners = c.freeListeners[:n-1]
		return i
	}
	c.listeners = append(c.listeners, listener{fd: -1})
	return len(c.listeners) - 1
}

// closeListener closes a listener, and the UDP flows replying through it.
func (c *ctx) closeListener(i int) {
	l := &c.listeners[i]
	if l.fd < 0 {
		return
	}
	c.epollDel(l.fd)
	unix.Close(l.fd)
	*l = listener{fd: -1}
	c.freeListeners = append(c.freeListeners, i)
	c.listenersOpen--
	c.rebudget()
	for fi := c.flows.nextUsed(0); fi >= 0; fi = c.flows.nextUsed(fi + 1) {
		if f := c.flows.at(fi); f.typ == flowUDP && f.udp.listener == i {
			c.flows.kill(c, fi)
		}
	}
}

// listenerReadable accepts the waiting connections of a TCP listener.
func (c *ctx) listenerReadable(i int) {
	l := &c.listeners[i]
	for n := 0; n < maxAcceptsPerRun && l.fd >= 0; n++ {
		fd, err := acceptRaw(l.fd, &c.acceptAddr)
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			if c.refuseWithSpareFD(l) {
				continue
			}
			return
		}
		if err != nil {
			if !isTemporary(err) && debugOn() {
				debugf("accept on port %d: %v", l.port, err)
			}
			return
		}
		peer := c.acceptAddr.addrPort()
		if s := c.ruleStats(l.rule); s != nil {
			s.connections++
		}
		switch {
		case l.inNs:
			c.spliceOutbound(fd, peer, l.to(), l.rule)
		case c.spliceable(peer.Addr()):
			c.spliceInbound(fd, peer, l.to(), l.rule)
		default:
			c.tcpInbound(fd, peer, l.to(), l.rule)
		}
	}
}

const maxAcceptsPerRun = 64

// The kernel completes a forwarded connection's handshake before pasta
// accepts it, so a client whose connection pasta can't accept (it has no
// descriptor left) would wait with its data acknowledged and go nowhere,
// and the listener would wake the loop again at once. pasta keeps one
// descriptor in reserve for that moment: closing it makes room to accept
// the connection and reset it.

// openSpareFD takes the reserved descriptor, if it is not held already.
func (c *ctx) openSpareFD() {
	if c.spareFD < 0 {
		c.spareFD, _ = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	}
}

// refuseWithSpareFD accepts one waiting connection of l with the reserved
// descriptor and resets it. It returns false when there is no reserve or
// no connection.
func (c *ctx) refuseWithSpareFD(l *listener) bool {
	if c.spareFD < 0 {
		c.openSpareFD()
		return false
	}
	unix.Close(c.spareFD)
	c.spareFD = -1
	defer c.openSpareFD()
	fd, err := acceptRaw(l.fd, &c.acceptAddr)
	if err != nil {
		return false
	}
	c.warnRateLimited(warnAcceptFailed, "forwarded TCP connection from %s to port %d: out of file descriptors, reset",
		c.acceptAddr.addrPort(), l.port)
	closeWithReset(fd)
	return true
}

// The auto rules: once a second, the ports waiting for peers on one side
// get a socket on the other. -t and -u follow the namespace's listening TCP
// and bound UDP sockets (sock_diag, or its /proc/net tables) with
// sockets on the host; -T and -U follow the host's with sockets on the
// namespace's loopback. A rule's port gets a socket while its target port
// is bound on the other side. Ports pasta itself bound on the scanned side
// are left out, or each side would chase the other's sockets.

// autoScan holds what the auto rules scan, opened at start (pasta may not
// open files later), and scratch space: a sock_diag socket per side
// (sockdiag.go), or where the kernel has none, the side's /proc/net
// socket tables.
type autoScan struct {
	diag  [2]int               // sock_diag sockets: [0] the namespace's, [1] the host's; -1 if not open
	files [len(fwdDirs)][2]int // per direction without sock_diag: the scanned side's tables; -1 if not open
	buf   []byte
	seq   uint32  // of the last sock_diag dump
	bound portSet // ports bound on the scanned side
	open  portSet // ports a rule has sockets for
}

// setupAutoForward opens what the auto rules need to scan: for the
// directions with auto rules at start, or every direction when pesto may
// add some later. The namespace's side is opened through the namespace
// thread, the host's from this (the main) thread.
func (c *ctx) setupAutoForward() error {
	a := &autoScan{buf: make([]byte, 1<<16), diag: [2]int{-1, -1}}
	any := false
	for di, d := range fwdDirs {
		a.files[di] = [2]int{-1, -1}
		if !c.protoEnabled(d.proto) || (c.cfg.confPath == "" && !hasAutoRange(c.cfg.forwarding(d).ranges)) {
			continue
		}
		if err := c.onScannedSide(d, func() error { return a.openScan(di, d) }); err != nil {
			return err
		}
		any = true
	}
	if any {
		c.auto = a
	}
	return nil
}

// onScannedSide runs fn in the network namespace that direction d scans:
// the namespace for -t and -u, the host (this thread) for -T and -U.
func (c *ctx) onScannedSide(d fwdDir, fn func() error) error {
	if d.inNs {
		return fn()
	}
	return c.ns.do(fn)
}

// openScan opens, in the calling thread's namespace, what direction di
// scans: the side's sock_diag socket (one serves every direction that
// scans the side), or its /proc/net tables if the kernel can't dump TCP
// and UDP sockets.
func (a *autoScan) openScan(di int, d fwdDir) error {
	side := scanSide(d)
	if a.diag[side] >= 0 {
		return nil
	}
	fd, err := openSockDiag(a.buf)
	if err == nil {
		a.diag[side] = fd
		return nil
	}
	if debugOn() {
		debugf("auto: no sock_diag (%v): reading /proc/net", err)
	}
	names := [2]string{"tcp", "tcp6"}
	if d.proto == protoUDP {
		names = [2]string{"udp", "udp6"}
	}
	for i, name := range names {
		fd, err := unix.Open("/proc/thread-self/net/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			fd = -1 // no IPv6 in that kernel, for one
		}
		a.files[di][i] = fd
	}
	return nil
}

// scanSide is the index of the side direction d scans in autoScan.diag.
func scanSide(d fwdDir) int {
	if d.inNs {
		return 1 // -T and -U scan the host
	}
	return 0
}

// scanBound fills a.bound with the ports bound on the side direction di
// scans: listening TCP sockets, or bound and unconnected UDP ones.
func (a *autoScan) scanBound(di int, d fwdDir) error {
	clear(a.bound[:])
	if fd := a.diag[scanSide(d)]; fd >= 0 {
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			a.seq++
			if err := diagPorts(fd, a.buf, a.seq, family, d.proto, &a.bound); err != nil {
				return err
			}
		}
		return nil
	}
	state, firstOnly := "0A", true // TCP_LISTEN, listed first
	if d.proto == protoUDP {
		state, firstOnly = "07", false // TCP_CLOSE: bound, not connected
	}
	for _, fd := range a.files[di] {
		if fd >= 0 {
			scanBoundPorts(fd, a.buf, state, firstOnly, &a.bound)
		}
	}
	return nil
}

func hasAutoRange(ranges []fwdRange) bool {
	for _, r := range ranges {
		if r.auto {
			return true
		}
	}
	return false
}

// scanAutoForward opens and closes the sockets of the auto rules to match
// the other side's ports.
func (c *ctx) scanAutoForward() {
	a := c.auto
	if a == nil {
		return
	}
	for di, d := range fwdDirs {
		if !c.hasAutoRule(d) {
			continue
		}
		if err := a.scanBound(di, d); err != nil {
			// Half a scan would close the sockets of ports it missed:
			// keep them until a scan completes.
			if debugOn() {
				debugf("auto: scanning for %s: %v", d.option, err)
			}
			continue
		}
		c.dropOwnPorts(d, &a.bound)
		for slot := range c.rules {
			if r := &c.rules[slot]; r.live && r.auto && r.dir == d {
				c.followBound(slot, &a.bound, &a.open)
			}
		}
	}
}

// hasAutoRule tells whether a direction has an auto rule in force.
func (c *ctx) hasAutoRule(d fwdDir) bool {
	for i := range c.rules {
		if r := &c.rules[i]; r.live && r.auto && r.dir == d {
			return true
		}
	}
	return false
}

// dropOwnPorts removes from ports those pasta bound itself on the side
// that direction d scans (the side opposite to where d binds).
func (c *ctx) dropOwnPorts(d fwdDir, ports *portSet) {
	for i := range c.listeners {
		l := &c.listeners[i]
		if l.fd >= 0 && l.proto == d.proto && l.inNs != d.inNs {
			ports.remove(int(l.port))
		}
	}
}

// followBound gives an auto rule sockets for the ports whose targets are
// bound, and closes those of targets no longer bound. open is scratch
// space.
func (c *ctx) followBound(slot int, bound, open *portSet) {
	r := &c.rules[slot]
	ref := refOf(slot)
	clear(open[:])
	for i := range c.listeners {
		if l := &c.listeners[i]; l.fd >= 0 && l.rule == ref {
			if bound.has(int(l.target)) {
				open.add(int(l.port))
			} else {
				c.closeListener(i)
			}
		}
	}
	for p := int(r.first); p <= int(r.last); p++ {
		target := uint16(int(r.target) + p - int(r.first))
		if open.has(p) || !bound.has(int(target)) {
			continue
		}
		for _, a := range c.bindAddrs(r.dir, r.bindAddr) {
			if err := c.autoSocket(slot, netip.AddrPortFrom(a, uint16(p)), target); err != nil && debugOn() {
				debugf("auto: %s port %d: %v", r.dir.option, p, err)
			}
		}
	}
}

// autoSocket gives auto rule slot a socket bound to ap, forwarding to
// target: a retired one bound there if any (its rule was deleted while
// UDP flows used it), else a new one.
func (c *ctx) autoSocket(slot int, ap netip.AddrPort, target uint16) error {
	r := &c.rules[slot]
	li := c.retiredListener(socketKey{r.dir.proto, r.dir.inNs, ap.Addr(), r.bindIf, ap.Port()})
	if li < 0 {
		var err error
		if li, err = c.openListener(r.dir, ap, r.bindIf, netip.AddrPortFrom(r.targetAddr, target)); err != nil {
			return err
		}
	}
	l := &c.listeners[li]
	l.rule, l.auto, l.retired, l.target, l.targetAddr = refOf(slot), true, false, target, r.targetAddr
	return nil
}

// scanBoundPorts adds to ports the local ports of the sockets in the given
// state (two hexadecimal digits) of a /proc/net socket table (proc(5)),
// read from fd a piece at a time into buf: neither its memory nor its
// allocations grow with the number of sockets (pasta's own count there).
// With firstOnly, the sockets in that state come first in the table, and
// reading stops at the first in another: the TCP tables list the
// listening sockets before the others (the kernel walks its listening
// hash, then its established one), and reading the rest would cost pasta
// time in proportion to every connection on the machine, squared (each
// read of a piece walks the table from its start), which a guest holding
// many connections would make it spend once a second.
func scanBoundPorts(fd int, buf []byte, state string, firstOnly bool, ports *portSet) {
	off, have := int64(0), 0
	for {
		n, err := unix.Pread(fd, buf[have:], off)
		if err != nil || n <= 0 {
			return
		}
		off += int64(n)
		have += n
		rest := buf[:have]
		for {
			nl := bytes.IndexByte(rest, '\n')
			if nl < 0 {
				break
			}
			port, st, ok := socketLine(rest[:nl])
			switch {
			case ok && string(st) == state && port != 0:
				ports.add(int(port))
			case ok && string(st) != state && firstOnly:
				return
			}
			rest = rest[nl+1:]
		}
		if len(rest) == len(buf) {
			rest = rest[:0] // a line longer than the buffer: not a socket line
		}
		have = copy(buf, rest)
	}
}

// socketLine returns the local port and the state of a line of a
// /proc/net socket table: "sl local_address rem_address st ...", the
// local address being HEX:PORT.
func socketLine(line []byte) (port uint16, state []byte, ok bool) {
	var field [4][]byte
	n := 0
	for i := 0; i < len(line) && n < len(field); {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		start := i
		for i < len(line) && line[i] != ' ' {
			i++
		}
		if i > start {
			field[n] = line[start:i]
			n++
		}
	}
	if n < len(field) {
		return 0, nil, false
	}
	local := field[1]
	colon := bytes.LastIndexByte(local, ':')
	if colon < 0 || len(local)-colon-1 != 4 {
		return 0, nil, false
	}
	for _, h := range local[colon+1:] {
		d, ok := hexDigit(h)
		if !ok {
			return 0, nil, false
		}
		port = port<<4 | uint16(d)
	}
	return port, field[3], true
}

func hexDigit(h byte) (byte, bool) {
	switch {
	case h >= '0' && h <= '9':
		return h - '0', true
	case h >= 'A' && h <= 'F':
		return h - 'A' + 10, true
	case h >= 'a' && h <= 'f':
		return h - 'a' + 10, true
	}
	return 0, false
}
