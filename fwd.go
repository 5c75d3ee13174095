package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"

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

// listener is a host socket bound for a forwarded port.
type listener struct {
	fd     int // -1: free slot
	proto  uint8
	v6     bool
	port   uint16 // bound port
	target uint16 // port in the namespace
	auto   bool   // opened by the auto scan
}

// openForwards binds the host sockets of the -t and -u options.
func (c *ctx) openForwards() error {
	if !c.cfg.noTCP {
		if err := c.openForward(protoTCP, c.cfg.tcpFwd, "--tcp-ports"); err != nil {
			return err
		}
	}
	if !c.cfg.noUDP {
		return c.openForward(protoUDP, c.cfg.udpFwd, "--udp-ports")
	}
	return nil
}

// openForward binds the ports of one forwarding option.
func (c *ctx) openForward(proto uint8, spec fwdSpec, option string) error {
	if spec.mode != fwdPorts && spec.mode != fwdAll {
		return nil
	}
	bound := 0
	var firstErr error
	for _, r := range spec.ranges {
		for p := int(r.first); p <= int(r.last); p++ {
			target := uint16(int(r.target) + p - int(r.first))
			n, err := c.listenPort(proto, r.bindAddr, r.bindIf, uint16(p), target, false)
			bound += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	// Explicit ports must all work; with "all" (or exclusions only), ports
	// in use are skipped unless none could be bound (pasta(1), -t).
	if firstErr != nil && (!spec.bestEffort || bound == 0) {
		return fmt.Errorf("%s: %w", option, firstErr)
	}
	return nil
}

// listenPort binds port on addr (or on every enabled family's wildcard
// address) and returns how many sockets it bound.
func (c *ctx) listenPort(proto uint8, addr netip.Addr, ifname string, port, target uint16, auto bool) (int, error) {
	var addrs []netip.Addr
	switch {
	case addr.IsValid():
		addrs = []netip.Addr{addr}
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
		if err := c.listen(proto, netip.AddrPortFrom(a, port), ifname, target, auto); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
	}
	return n, firstErr
}

// listen opens one listening (TCP) or bound (UDP) socket and registers it.
func (c *ctx) listen(proto uint8, ap netip.AddrPort, ifname string, target uint16, auto bool) error {
	family, typ, kind := unix.AF_INET, unix.SOCK_STREAM, kindTCPListen
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	if proto == protoUDP {
		typ, kind = unix.SOCK_DGRAM, kindUDPListen
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		unix.Close(fd)
		return fmt.Errorf("binding %s: %w", ap, err)
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
	if c.cfg.freebind {
		_ = setsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1)
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
	idx := c.freeListenerSlot()
	c.listeners[idx] = listener{fd: fd, proto: proto, v6: family == unix.AF_INET6, port: ap.Port(), target: target, auto: auto}
	if err := c.epollAdd(fd, unix.EPOLLIN, makeRef(kind, idx)); err != nil {
		c.closeListener(idx)
		return err
	}
	if debugOn() {
		debugf("forwarding %s to port %d", ap, target)
	}
	return nil
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
	for _, fi := range c.flows.active {
		if f := c.flows.at(int(fi)); f.typ == flowUDP && f.udp.listener == i {
			c.flows.kill(c, int(fi))
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
		if c.spliceable(peer.Addr()) {
			c.spliceInbound(fd, peer, l.target)
			continue
		}
		c.tcpInbound(fd, peer, l.target)
	}
}

const maxAcceptsPerRun = 64

// The auto modes of -t and -u: once a second, the namespace's listening
// TCP ports and bound UDP ports (from its /proc/net/tcp, tcp6, udp and
// udp6) get a socket on the host, and lose it when they close.

// autoTables are the namespace's socket tables, per protocol: the file
// names (proc(5)) and the state of a socket waiting for peers in them.
var autoTables = [...]struct {
	proto uint8
	files [2]string
	state string
}{
	{protoTCP, [2]string{"tcp", "tcp6"}, "0A"}, // TCP_LISTEN
	{protoUDP, [2]string{"udp", "udp6"}, "07"}, // TCP_CLOSE: bound, not connected
}

// autoForward keeps the auto-forwarded ports in step with the namespace.
type autoForward struct {
	on    [len(autoTables)]bool
	files [len(autoTables)][2]int // opened in the namespace; -1 if missing
	ports [len(autoTables)]map[uint16]bool
	buf   []byte
}

// setupAutoForward opens the namespace's socket tables for the protocols
// whose forwarding is "auto".
func (c *ctx) setupAutoForward() error {
	a := &autoForward{buf: make([]byte, 1<<16)}
	a.on[0] = !c.cfg.noTCP && c.cfg.tcpFwd.mode == fwdAuto
	a.on[1] = !c.cfg.noUDP && c.cfg.udpFwd.mode == fwdAuto
	if !a.on[0] && !a.on[1] {
		return nil
	}
	err := c.ns.do(func() error {
		for t, table := range autoTables {
			for i, name := range table.files {
				fd, err := unix.Open("/proc/thread-self/net/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil || !a.on[t] {
					fd = -1 // no IPv6 in the namespace's kernel, for one
				}
				a.files[t][i] = fd
			}
			a.ports[t] = map[uint16]bool{}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.auto = a
	c.scanAutoForward()
	return nil
}

// scanAutoForward opens and closes host sockets to match the namespace's
// ports.
func (c *ctx) scanAutoForward() {
	a := c.auto
	if a == nil {
		return
	}
	for t, table := range autoTables {
		if !a.on[t] {
			continue
		}
		now := map[uint16]bool{}
		for _, fd := range a.files[t] {
			if fd >= 0 {
				a.buf = readWhole(fd, a.buf[:cap(a.buf)])
				boundPorts(a.buf, table.state, now)
			}
		}
		c.updateAutoListeners(table.proto, a.ports[t], now)
		a.ports[t] = now
	}
}

// updateAutoListeners opens listeners for new ports and closes those of
// ports gone from the namespace.
func (c *ctx) updateAutoListeners(proto uint8, before, now map[uint16]bool) {
	for p := range now {
		if !before[p] {
			if _, err := c.listenPort(proto, netip.Addr{}, "", p, p, true); err != nil && debugOn() {
				debugf("auto: port %d: %v", p, err)
			}
		}
	}
	for i := range c.listeners {
		l := &c.listeners[i]
		if l.fd >= 0 && l.auto && l.proto == proto && !now[l.port] {
			c.closeListener(i)
		}
	}
}

// readWhole reads a /proc file from its start into buf, growing it.
func readWhole(fd int, buf []byte) []byte {
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Pread(fd, buf[n:], int64(n))
		if err != nil || m <= 0 {
			return buf[:n]
		}
		n += m
	}
}

// boundPorts adds the local ports of sockets in the given state from a
// /proc/net socket table (proc(5)) to ports.
func boundPorts(table []byte, state string, ports map[uint16]bool) {
	lines := bytes.Split(table, []byte("\n"))
	for _, line := range lines[min(1, len(lines)):] {
		fields := bytes.Fields(line)
		if len(fields) < 4 || string(fields[3]) != state {
			continue
		}
		local := fields[1]
		colon := bytes.LastIndexByte(local, ':')
		if colon < 0 {
			continue
		}
		if p, err := strconv.ParseUint(string(local[colon+1:]), 16, 16); err == nil && p != 0 {
			ports[uint16(p)] = true
		}
	}
}
