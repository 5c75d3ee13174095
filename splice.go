package main

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The spliced path for local traffic (pasta(1), NOTES: "Handling of local
// traffic in pasta"). A client on the host's loopback connecting to a -t
// port is not sent through the tap: the flow gets a second socket, made in
// the namespace and connected there to the namespace's own address (or to
// its loopback with --host-lo-to-ns-lo), and the two TCP sockets are
// joined with splice(2) through a pipe per direction, so data never enters
// user space. The namespace sees the connection coming from its own
// address: loopback addresses can't cross the tap. -T ports, bound on the
// namespace's loopback, work the other way round: their connections are
// spliced to the same port on the host's loopback. UDP datagrams take the
// same short cuts through a socket connected on the other side.

const (
	splicePipeSize = 1 << 20 // F_SETPIPE_SZ: bytes in flight per direction
	spliceMaxRun   = 64      // splice rounds per wakeup, for fairness
	splicePoolMax  = 8       // empty pipes kept for the next connections (16 descriptors, from budget.go's reserve)
	sideHost       = 0       // the accepted socket, on the host
	sideNs         = 1       // the socket in the namespace
)

// spliceSockEvents is what epoll reports for both sockets of a spliced
// flow, from its start to its end, edge-triggered: data moves until the
// source has nothing more (EAGAIN) or the destination is full, whose
// EPOLLOUT edge then resumes it; interests never change, so no epoll_ctl
// is needed after the first.
const spliceSockEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// spliceConn is the state of a spliced TCP connection. Direction d moves
// data read from side d to side 1-d, through pipes[d].
type spliceConn struct {
	ns          int       // the namespace-side socket (the flow's sock is the host side)
	pipes       [2][2]int // per direction: read end, write end
	queued      [2]int    // bytes waiting in each pipe
	eof         [2]bool   // side d will send no more
	shut        [2]bool   // side 1-d was shut down for writing after eof[d]
	connecting  bool      // the connectSide socket is still connecting
	connectSide int
}

// spliceable tells whether a forwarded connection from peer takes the
// spliced path: local clients, unless --no-splice.
func (c *ctx) spliceable(peer netip.Addr) bool {
	return !c.cfg.noSplice && peer.IsLoopback()
}

// nsTarget is where a spliced flow connects in the namespace: the rule's
// target address if it gives one, else the namespace's own address, or its
// loopback with --host-lo-to-ns-lo or --splice-only (the namespace then has
// no other address); at the target port.
func (c *ctx) nsTarget(family netip.Addr, to netip.AddrPort) (netip.AddrPort, bool) {
	switch {
	case to.Addr().IsValid():
		return to, true
	case c.cfg.hostLoToNsLo || c.cfg.spliceOnly:
		return netip.AddrPortFrom(loopbackOf(family), to.Port()), true
	}
	ic := c.ipConfFor(family)
	a := ic.guestDestination(netip.Addr{})
	return netip.AddrPortFrom(a, to.Port()), a.IsValid()
}

// hostTarget is where a -T or -U flow from a client at peer goes on the
// host: the rule's target address if it gives one, else the host's
// loopback of the client's family; at the target port.
func hostTarget(peer netip.Addr, to netip.AddrPort) netip.AddrPort {
	if to.Addr().IsValid() {
		return to
	}
	return netip.AddrPortFrom(loopbackOf(peer), to.Port())
}

// loopbackOf is the loopback address of the family of a.
func loopbackOf(a netip.Addr) netip.Addr {
	if a.Is4() {
		return loopback4
	}
	return loopback6
}

// nsSocket makes a non-blocking socket in the namespace, connected (or
// connecting) to dst.
func (c *ctx) nsSocket(typ int, dst netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if dst.Addr().Is4() {
		family = unix.AF_INET
	}
	fd := -1
	err := c.ns.do(func() error {
		s, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		noDelay(s, typ)
		var sa rawSockaddr
		sa.set(dst)
		if err := connectRaw(s, &sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
			unix.Close(s)
			return err
		}
		fd = s
		return nil
	})
	return fd, err
}

// spliceInbound joins a connection accepted on the host's loopback for a
// -t port to a new connection in the namespace.
func (c *ctx) spliceInbound(fd int, peer netip.AddrPort, to netip.AddrPort, rule ruleRef) {
	dst, ok := c.nsTarget(peer.Addr(), to)
	if !ok || !c.makeRoom(poolSplice) {
		closeWithReset(fd)
		return
	}
	ns, err := c.nsSocket(unix.SOCK_STREAM, dst)
	if err != nil {
		if debugOn() {
			debugf("splice: connecting to %s in the namespace: %v", dst, err)
		}
		closeWithReset(fd)
		return
	}
	c.spliceStart(fd, ns, sideNs, peer, dst, rule)
}

// spliceOutbound joins a connection accepted in the namespace for a -T
// port to a new connection to the target port on the host's loopback (or
// the rule's target address).
func (c *ctx) spliceOutbound(fd int, peer netip.AddrPort, to netip.AddrPort, rule ruleRef) {
	dst := hostTarget(peer.Addr(), to)
	if !c.makeRoom(poolSplice) {
		closeWithReset(fd)
		return
	}
	host, err := hostSocket(unix.SOCK_STREAM, dst)
	if err != nil {
		if debugOn() {
			debugf("splice: connecting to %s: %v", dst, err)
		}
		closeWithReset(fd)
		return
	}
	c.spliceStart(host, fd, sideHost, peer, dst, rule)
}

// hostSocket makes a non-blocking socket on the host, connected (or
// connecting) to dst.
func hostSocket(typ int, dst netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if dst.Addr().Is4() {
		family = unix.AF_INET
	}
	s, err := unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	noDelay(s, typ)
	var sa rawSockaddr
	sa.set(dst)
	if err := connectRaw(s, &sa); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		unix.Close(s)
		return -1, err
	}
	return s, nil
}

// noDelay turns Nagle's algorithm off on a spliced TCP socket (the
// accepted ones inherit it from their listener): pasta adds no delay of
// its own behind the peers' choices.
func noDelay(fd, typ int) {
	if typ == unix.SOCK_STREAM {
		_ = setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
}

// spliceStart makes the flow joining host and ns, whose connectSide socket
// is still connecting, for a forwarding rule.
func (c *ctx) spliceStart(host, ns, connectSide int, peer, dst netip.AddrPort, rule ruleRef) {
	i, ok := c.flows.allocUnindexed(flowSplice, poolSplice)
	if !ok {
		c.warnRateLimited(warnTableFull, "flow table full: refusing forwarded TCP connections")
		closeWithReset(host)
		closeWithReset(ns)
		return
	}
	f := c.flows.at(i)
	f.sock, f.lastActive, f.rule = host, c.now, rule
	s := &f.splice
	s.ns, s.connecting, s.connectSide = ns, true, connectSide
	s.pipes = [2][2]int{{-1, -1}, {-1, -1}}
	for d := range s.pipes {
		if err := c.takePipe(&s.pipes[d]); err != nil {
			c.spliceClose(i, true)
			return
		}
	}
	// Nothing moves until the connecting side is connected (its EPOLLOUT).
	if c.spliceRegister(i, sideHost) != nil || c.spliceRegister(i, sideNs) != nil {
		c.spliceClose(i, true)
		return
	}
	if debugOn() {
		debugf("splice: flow %d: %s -> %s", i, peer, dst)
	}
}

// takePipe gives p an empty pipe: one kept by givePipe, or a new one.
func (c *ctx) takePipe(p *[2]int) error {
	if n := len(c.pipePool); n > 0 {
		*p = c.pipePool[n-1]
		c.pipePool = c.pipePool[:n-1]
		return nil
	}
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return err
	}
	_, _ = unix.FcntlInt(uintptr(p[0]), unix.F_SETPIPE_SZ, splicePipeSize)
	return nil
}

// givePipe keeps an empty pipe of an ended flow for the next one, and
// closes it when it holds data or enough are kept. Short connections then
// cost two pipe2, two fcntl and four close calls fewer, up to four of them
// at a time.
func (c *ctx) givePipe(p [2]int, empty bool) {
	if p[0] < 0 {
		return
	}
	if empty && len(c.pipePool) < splicePoolMax {
		c.pipePool = append(c.pipePool, p)
		return
	}
	unix.Close(p[0])
	unix.Close(p[1])
}

// sideFD is the socket of one side of a spliced flow.
func (f *flow) sideFD(side int) int {
	if side == sideHost {
		return f.sock
	}
	return f.splice.ns
}

// spliceRegister adds one side's socket to epoll for spliceSockEvents.
func (c *ctx) spliceRegister(i, side int) error {
	ev := unix.EpollEvent{Events: spliceSockEvents, Fd: int32(makeRef(spliceKind(side), i))}
	return unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, c.flows.at(i).sideFD(side), &ev)
}

// spliceRearm has epoll check one side's socket again and report what is
// ready now (epoll(7): EPOLL_CTL_MOD), for data left behind.
func (c *ctx) spliceRearm(i, side int) error {
	ev := unix.EpollEvent{Events: spliceSockEvents, Fd: int32(makeRef(spliceKind(side), i))}
	return unix.EpollCtl(c.epfd, unix.EPOLL_CTL_MOD, c.flows.at(i).sideFD(side), &ev)
}

func spliceKind(side int) epKind {
	if side == sideNs {
		return kindSpliceNs
	}
	return kindSpliceHost
}

// spliceEvent handles readiness on one side of a spliced flow.
func (c *ctx) spliceEvent(i, side int, events uint32) {
	f := c.flows.at(i)
	if f.dead || f.typ != flowSplice {
		return
	}
	f.lastActive = c.now
	s := &f.splice
	if s.connecting {
		if side != s.connectSide {
			return
		}
		if connectResult(f.sideFD(side), events) != nil {
			c.spliceClose(i, true)
			return
		}
		s.connecting = false
		// What the other side sent meanwhile: its edge was ignored.
		c.spliceMove(i, 1-side)
		if f.dead {
			return
		}
	}
	if events&unix.EPOLLERR != 0 {
		c.spliceClose(i, true)
		return
	}
	// Only the directions this side's event concerns: what it sent, and
	// what waits for it once it can take more.
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		c.spliceMove(i, side)
	}
	if !f.dead && events&unix.EPOLLOUT != 0 && s.queued[1-side] > 0 {
		c.spliceMove(i, 1-side)
	}
}

// spliceMove moves what side from has sent to the other side, then decides
// what to wait for.
func (c *ctx) spliceMove(i, from int) {
	f := c.flows.at(i)
	s := &f.splice
	to := 1 - from
	src, dst, pipe := f.sideFD(from), f.sideFD(to), &s.pipes[from]
	n := 0
	for ; n < spliceMaxRun; n++ {
		if !s.eof[from] && s.queued[from] < splicePipeSize {
			moved, err := spliceNB(src, pipe[1], splicePipeSize-s.queued[from], unix.SPLICE_F_MOVE)
			switch {
			case err == nil && moved == 0:
				s.eof[from] = true
			case err == nil:
				s.queued[from] += int(moved)
			case !isTemporary(err):
				c.spliceClose(i, true)
				return
			}
		}
		if s.queued[from] == 0 {
			break
		}
		moved, err := spliceNB(pipe[0], dst, s.queued[from], unix.SPLICE_F_MOVE)
		if err != nil && !isTemporary(err) {
			c.spliceClose(i, true)
			return
		}
		s.queued[from] -= int(max(moved, 0))
		c.countTraffic(f, from != s.connectSide, int(max(moved, 0)), 0) // the client is on the side not connected by pasta
		if err != nil || s.queued[from] > 0 {
			break // the destination is full: its EPOLLOUT edge resumes
		}
	}
	if n == spliceMaxRun && c.spliceRearm(i, from) != nil {
		c.spliceClose(i, true)
		return
	}
	if s.eof[from] && s.queued[from] == 0 && !s.shut[from] {
		if s.shut[to] {
			// Both ways are done: closing sends the last FIN (both
			// sockets were read to their end), no shutdown needed.
			c.spliceClose(i, false)
			return
		}
		_ = unix.Shutdown(dst, unix.SHUT_WR)
		s.shut[from] = true
	}
}

// spliceClose ends a spliced flow; with reset, both peers get a RST.
func (c *ctx) spliceClose(i int, reset bool) {
	f := c.flows.at(i)
	if f.dead {
		return
	}
	s := &f.splice
	// Closing the sockets takes them out of epoll: nothing else holds them.
	if s.ns >= 0 {
		if reset {
			closeWithReset(s.ns)
		} else {
			unix.Close(s.ns)
		}
		s.ns = -1
	}
	if reset && f.sock >= 0 {
		closeWithReset(f.sock)
		f.sock = -1
	}
	for d := range s.pipes {
		c.givePipe(s.pipes[d], s.queued[d] == 0)
		s.pipes[d] = [2]int{-1, -1}
	}
	c.flows.kill(c, i)
}

// protoUDPSpliced marks the keys of spliced UDP flows: they are indexed by
// the local sender and the listener it sent to, not by guest addresses.
const protoUDPSpliced = 0x80 | protoUDP

// udpSpliceDatagram forwards datagram k of the last batch, from a local
// sender to forwarded port li, through the sender's socket in the
// namespace.
func (c *ctx) udpSpliceDatagram(li int, from netip.AddrPort, k int) {
	key := newFlowKey(protoUDPSpliced, from.Addr(), from.Port(), netip.IPv6Unspecified(), uint16(li))
	i, ok := c.flows.lookup(key)
	if !ok {
		if i, ok = c.udpSpliceFlow(key, li, from); !ok {
			c.stats.udpDropped++
			return
		}
	}
	c.flows.touch(i, c.now)
	f := c.flows.at(i)
	off := udpPayloadOffset(f.guestAddr())
	payload := c.udpBufs.bufs[k][off : off+int(c.udpBufs.hdrs[k].Len)]
	if err := sendDatagram(f.sock, payload, nil); err != nil {
		c.stats.udpDropped++
		return
	}
	c.countTraffic(f, true, len(payload), 1)
}

// udpSpliceFlow opens the socket that forwards a local sender's datagrams
// to the other side: in the namespace for -u, on the host for -U.
func (c *ctx) udpSpliceFlow(key flowKey, li int, from netip.AddrPort) (int, bool) {
	l := &c.listeners[li]
	if l.retired || !c.makeRoom(poolUDP) {
		return 0, false // a retired listener's rule is gone: no new senders
	}
	sock, err := c.udpSpliceSocket(l, from)
	if err != nil {
		if debugOn() {
			debugf("splice: UDP socket for %s: %v", from, err)
		}
		return 0, false
	}
	i, ok := c.udpFlowWithSocket(key, sock, li, from)
	if ok {
		c.flows.at(i).rule = l.rule
		if s := c.ruleStats(l.rule); s != nil {
			s.flows++
		}
	}
	return i, ok
}

// udpSpliceSocket connects a socket to where a local sender's datagrams to
// listener l go.
func (c *ctx) udpSpliceSocket(l *listener, from netip.AddrPort) (int, error) {
	if l.inNs {
		return hostSocket(unix.SOCK_DGRAM, hostTarget(from.Addr(), l.to()))
	}
	dst, ok := c.nsTarget(from.Addr(), l.to())
	if !ok {
		return -1, errors.New("no namespace address")
	}
	return c.nsSocket(unix.SOCK_DGRAM, dst)
}

// udpSplicedReplies passes what the namespace answers on a spliced flow's
// socket back to the local sender, from the forwarded port.
func (c *ctx) udpSplicedReplies(f *flow) {
	n := c.udpReadBatch(f.sock, f.guestAddr())
	off := udpPayloadOffset(f.guestAddr())
	c.flows.touch(int(f.index), c.now)
	for k := 0; k < n; k++ {
		payload := c.udpBufs.bufs[k][off : off+int(c.udpBufs.hdrs[k].Len)]
		if err := c.udpSend(f, payload); err != nil {
			c.stats.udpDropped++
			continue
		}
		c.countTraffic(f, false, len(payload), 1)
	}
}

// spliceNB is splice(2) between non-blocking descriptors (a socket and a
// pipe, SPLICE_F_NONBLOCK): it never sleeps, so it is made without telling
// Go's scheduler (RawSyscall6). Made through unix.Splice, which announces a
// call that may block, a bulk transfer (a pipe's worth takes 50-100 µs per
// call) kept the runtime's other threads waking up: in 3 s of a spliced
// iperf3, about 5,000 futex and 5,000 nanosleep calls besides the loop's,
// against about 800 and 600 this way, and 8% less CPU per byte.
func spliceNB(src, dst, n, flags int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(src), 0, uintptr(dst), 0, uintptr(n), uintptr(flags|unix.SPLICE_F_NONBLOCK))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
