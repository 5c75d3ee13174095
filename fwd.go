package main

import (
	"bytes"
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

// mapSource translates the address of a host peer into the source the
// guest sees. Host-local peers (loopback, or the host's own address, which
// the guest has too) can't appear as such: they appear as the
// --map-host-loopback address, and are refused when there is none.
func (c *ctx) mapSource(a netip.Addr) (netip.Addr, bool) {
	ic := c.ipConfFor(a)
	if !a.IsLoopback() && a != ic.addr {
		return a, true
	}
	if !ic.mapHostLoopback.IsValid() {
		return netip.Addr{}, false
	}
	return ic.mapHostLoopback, true
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

// listener is a socket bound for a forwarded port: on the host for -t and
// -u, in the namespace for -T and -U.
type listener struct {
	fd     int // -1: free slot
	proto  uint8
	inNs   bool // bound in the namespace: its peers are local, on the host side
	v6     bool
	port   uint16 // bound port
	target uint16 // port on the other side
	auto   bool   // opened by the auto scan
}

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

// spec returns the configuration of a direction, or nil when its protocol
// is disabled.
func (c *ctx) spec(d fwdDir) *fwdSpec {
	switch {
	case d.proto == protoTCP && c.cfg.noTCP, d.proto == protoUDP && c.cfg.noUDP:
		return nil
	case d == dirTCP:
		return &c.cfg.tcpFwd
	case d == dirUDP:
		return &c.cfg.udpFwd
	case d == dirTCPNs:
		return &c.cfg.tcpNsFwd
	}
	return &c.cfg.udpNsFwd
}

// openForwards binds the sockets of -t, -u, -T and -U.
func (c *ctx) openForwards() error {
	for _, d := range []fwdDir{dirTCP, dirUDP, dirTCPNs, dirUDPNs} {
		if s := c.spec(d); s != nil {
			if err := c.openForward(d, *s); err != nil {
				return err
			}
		}
	}
	return nil
}

// openForward binds the ports of one forwarding option.
func (c *ctx) openForward(d fwdDir, spec fwdSpec) error {
	if spec.mode != fwdPorts && spec.mode != fwdAll {
		return nil
	}
	bound := 0
	var firstErr error
	for _, r := range spec.ranges {
		for p := int(r.first); p <= int(r.last); p++ {
			target := uint16(int(r.target) + p - int(r.first))
			n, err := c.listenPort(d, r.bindAddr, r.bindIf, uint16(p), target, false)
			bound += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	// Explicit ports must all work; with "all" (or exclusions only), ports
	// in use are skipped unless none could be bound (pasta(1), -t).
	if firstErr != nil && (!spec.bestEffort || bound == 0) {
		return fmt.Errorf("%s: %w", d.option, firstErr)
	}
	return nil
}

// listenPort binds port on addr, or by default on every enabled family's
// wildcard address on the host and loopback address in the namespace
// (-T and -U only serve local traffic). It returns how many sockets it
// bound.
func (c *ctx) listenPort(d fwdDir, addr netip.Addr, ifname string, port, target uint16, auto bool) (int, error) {
	var addrs []netip.Addr
	switch {
	case addr.IsValid():
		addrs = []netip.Addr{addr}
	case d.inNs:
		addrs = []netip.Addr{loopback4, loopback6}
	default:
		if c.ip4.enabled {
			addrs = append(addrs, netip.IPv4Unspecified())
		}
		if c.ip6.enabled {
			addrs = append(addrs, netip.IPv6Unspecified())
		}
	}
	n := 0
	var firstErr error
	for _, a := range addrs {
		if err := c.listen(d, netip.AddrPortFrom(a, port), ifname, target, auto); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
	}
	return n, firstErr
}

// listen opens one listening (TCP) or bound (UDP) socket, on the host or
// in the namespace, and registers it.
func (c *ctx) listen(d fwdDir, ap netip.AddrPort, ifname string, target uint16, auto bool) error {
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
		return err
	}
	kind := kindTCPListen
	if d.proto == protoUDP {
		kind = kindUDPListen
	}
	idx := c.freeListenerSlot()
	c.listeners[idx] = listener{fd: fd, proto: d.proto, inNs: d.inNs, v6: ap.Addr().Is6(), port: ap.Port(), target: target, auto: auto}
	if err := c.epollAdd(fd, unix.EPOLLIN, makeRef(kind, idx)); err != nil {
		c.closeListener(idx)
		return err
	}
	if debugOn() {
		debugf("%s: forwarding %s to port %d", d.option, ap, target)
	}
	return nil
}

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
		return -1, err
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
		if err := unix.Listen(fd, unix.SOMAXCONN); err != nil {
			return fail(err)
		}
	}
	return fd, nil
}

func (c *ctx) freeListenerSlot() int {
	for i := range c.listeners {
		if c.listeners[i].fd < 0 {
			return i
		}
	}
	c.listeners = append(c.listeners, listener{fd: -1})
	return len(c.listeners) - 1
}

// closeListener closes a listener, and the UDP flows replying through it.
func (c *ctx) closeListener(i int) {
	l := &c.listeners[i]
	if l.fd >= 0 {
		c.epollDel(l.fd)
		unix.Close(l.fd)
	}
	*l = listener{fd: -1}
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
		if err != nil {
			if !isTemporary(err) && debugOn() {
				debugf("accept on port %d: %v", l.port, err)
			}
			return
		}
		peer := c.acceptAddr.addrPort()
		switch {
		case l.inNs:
			c.spliceOutbound(fd, peer, l.target)
		case c.spliceable(peer.Addr()):
			c.spliceInbound(fd, peer, l.target)
		default:
			c.tcpInbound(fd, peer, l.target)
		}
	}
}

const maxAcceptsPerRun = 64

// The auto modes: once a second, the ports waiting for peers on one side
// get a socket on the other. -t and -u follow the namespace's listening TCP
// and bound UDP sockets (its /proc/net/tcp, tcp6, udp and udp6) with
// sockets on the host; -T and -U follow the host's with sockets on the
// namespace's loopback. Ports pasta itself bound on the scanned side are
// left out, or each side would chase the other's sockets.

// autoTable is a direction's view of the socket tables it follows.
type autoTable struct {
	dir   fwdDir
	files [2]int // tcp and tcp6 (or udp and udp6) of the scanned side; -1 if missing
	state string // the state of a socket waiting for peers (proc(5))
	ports map[uint16]bool
}

// autoForward keeps the auto-forwarded ports in step with the other side.
type autoForward struct {
	tables []autoTable
	buf    []byte
}

// setupAutoForward opens the socket tables for the directions whose
// forwarding is "auto": the namespace's through the namespace thread, the
// host's from this (the main) thread.
func (c *ctx) setupAutoForward() error {
	a := &autoForward{buf: make([]byte, 1<<16)}
	for _, d := range []fwdDir{dirTCP, dirUDP, dirTCPNs, dirUDPNs} {
		if s := c.spec(d); s == nil || s.mode != fwdAuto {
			continue
		}
		t := autoTable{dir: d, state: "0A", ports: map[uint16]bool{}} // TCP_LISTEN
		names := [2]string{"tcp", "tcp6"}
		if d.proto == protoUDP {
			t.state, names = "07", [2]string{"udp", "udp6"} // TCP_CLOSE: bound, not connected
		}
		open := func() error {
			for i, name := range names {
				fd, err := unix.Open("/proc/thread-self/net/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					fd = -1 // no IPv6 in that kernel, for one
				}
				t.files[i] = fd
			}
			return nil
		}
		if d.inNs {
			_ = open() // -T and -U scan the host, where this thread is
		} else if err := c.ns.do(open); err != nil {
			return err
		}
		a.tables = append(a.tables, t)
	}
	if len(a.tables) == 0 {
		return nil
	}
	c.auto = a
	c.scanAutoForward()
	return nil
}

// scanAutoForward opens and closes sockets to match the other side's
// ports.
func (c *ctx) scanAutoForward() {
	a := c.auto
	if a == nil {
		return
	}
	for i := range a.tables {
		t := &a.tables[i]
		now := map[uint16]bool{}
		for _, fd := range t.files {
			if fd >= 0 {
				scanBoundPorts(fd, a.buf, t.state, now)
			}
		}
		c.dropOwnPorts(t.dir, now)
		c.updateAutoListeners(t.dir, t.ports, now)
		t.ports = now
	}
}

// dropOwnPorts removes from ports those pasta bound itself on the side
// that direction d scans (the side opposite to where d binds).
func (c *ctx) dropOwnPorts(d fwdDir, ports map[uint16]bool) {
	for i := range c.listeners {
		l := &c.listeners[i]
		if l.fd >= 0 && l.proto == d.proto && l.inNs != d.inNs {
			delete(ports, l.port)
		}
	}
}

// updateAutoListeners opens sockets for new ports and closes those of
// ports gone from the scanned side.
func (c *ctx) updateAutoListeners(d fwdDir, before, now map[uint16]bool) {
	for p := range now {
		if !before[p] {
			if _, err := c.listenPort(d, netip.Addr{}, "", p, p, true); err != nil && debugOn() {
				debugf("auto: %s port %d: %v", d.option, p, err)
			}
		}
	}
	for i := range c.listeners {
		l := &c.listeners[i]
		if l.fd >= 0 && l.auto && l.proto == d.proto && l.inNs == d.inNs && !now[l.port] {
			c.closeListener(i)
		}
	}
}

// scanBoundPorts adds to ports the local ports of the sockets in the given
// state (two hexadecimal digits) of a /proc/net socket table (proc(5)),
// read from fd a piece at a time into buf: neither its memory nor its
// allocations grow with the number of sockets (pasta's own count there).
func scanBoundPorts(fd int, buf []byte, state string, ports map[uint16]bool) {
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
			if port, st, ok := socketLine(rest[:nl]); ok && string(st) == state && port != 0 {
				ports[port] = true
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
