package main

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP translation. A flow is one (guest address and port, peer address and
// port) pair, as the guest sees it:
//
//   - Outbound (the guest sends first): a host socket bound to an
//     ephemeral port and connected to the (mapped) destination, so that
//     replies find their way back and nobody else's datagrams are taken.
//     ICMP errors for it come back through IP_RECVERR and are passed to the
//     guest as ICMP errors, so that a closed port fails fast there too.
//   - Inbound (-u): datagrams arriving on a forwarded port's socket go to
//     the guest from the sender's address; the guest's replies go back to
//     the sender through the same socket, so they come from the port the
//     sender used.
//
// A flow lives until nothing has crossed it for 180 seconds. Socket reads
// are batched with recvmmsg, straight into frame buffers behind room for
// the headers.

const (
	udpTimeoutNS        = int64(180e9)
	udpBatch            = 32  // datagrams per recvmmsg
	icmpErrorQuote4     = 548 // RFC 1812 section 4.3.2.3: up to 576 bytes in all
	icmpErrorQuote6     = 1280 - ipv6HdrLen - icmpHdrLen
	icmpTypeUnreach     = 3  // RFC 792
	icmp6TypeUnreach    = 1  // RFC 4443 section 3.1
	icmpCodeProhibited  = 13 // RFC 1812 section 5.2.7.1
	icmp6CodeProhibited = 1
	soEEOriginICMP      = 2 // SO_EE_ORIGIN_ICMP, ip(7)
	soEEOriginICMP6     = 3
	dnsPort             = 53
	dnsOverTLSPort      = 853
)

type udpFlow struct {
	hostPeer rawSockaddr // the host-side peer: where datagrams go
	listener int         // inbound flows: the listener replies go through; -1 otherwise
	spliced  bool        // a local sender's flow: sock is in the namespace (splice.go)
	noGSO    bool        // the socket refused UDP_SEGMENT: send datagrams one by one
}

// udpBuffers holds the recvmmsg state: a frame buffer per datagram, with
// the payload landing after the room for Ethernet, IP and UDP headers.
type udpBuffers struct {
	bufs  [udpBatch][]byte
	iov   [udpBatch]unix.Iovec
	hdrs  [udpBatch]unix.Mmsghdr
	addrs [udpBatch]rawSockaddr
	ctrl  []byte // control messages of the error queue
}

func newUDPBuffers() *udpBuffers {
	u := &udpBuffers{ctrl: make([]byte, 512)}
	for i := range u.bufs {
		u.bufs[i] = make([]byte, txHeadroom+maxFrameLength)
	}
	return u
}

// payloadOffset is where a datagram's payload starts in a frame buffer
// for a flow of the family of a.
func udpPayloadOffset(a netip.Addr) int {
	return txHeadroom + ethHdrLen + ipHdrLen(a) + udpHdrLen
}

// handleUDP handles a UDP datagram from the guest.
func (c *ctx) handleUDP(src, dst netip.Addr) {
	if c.cfg.noUDP {
		return
	}
	u := &c.parser.udp
	key := newFlowKey(protoUDP, src, uint16(u.SrcPort), dst, uint16(u.DstPort))
	i, ok := c.flows.lookup(key)
	if !ok {
		if !c.admitNewFlow(nil) {
			return // waits for its turn, or dropped
		}
		if i, ok = c.udpNewFlow(key, src, dst); !ok {
			c.stats.udpDropped++
			return
		}
	}
	c.flows.touch(i, c.now)
	c.udpQueueFrame(i, u.Payload)
}

// udpDestination is where a flow's datagrams go: its connected socket,
// or the listener of an inbound flow, with the peer's address.
func (c *ctx) udpDestination(f *flow) (int, *rawSockaddr) {
	if f.udp.listener >= 0 {
		return c.listeners[f.udp.listener].fd, &f.udp.hostPeer
	}
	return f.sock, nil
}

// isICMPError tells whether a send failed on an error an ICMP message
// left on the socket.
func isICMPError(err error) bool {
	return errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ENETUNREACH)
}

// udpSend sends a guest datagram to the flow's host peer. A pending error
// from an earlier ICMP message fails one send and is then cleared: the
// datagram is sent again.
func (c *ctx) udpSend(f *flow, payload []byte) error {
	sock, to := c.udpDestination(f)
	err := sendDatagram(sock, payload, to)
	if err != nil && isICMPError(err) {
		err = sendDatagram(sock, payload, to)
	}
	return err
}

// udpNewFlow opens a connected socket for a datagram the guest sends to a
// new peer.
func (c *ctx) udpNewFlow(key flowKey, src, dst netip.Addr) (int, bool) {
	u := &c.parser.udp
	if !c.makeRoom(poolUDP) {
		c.udpRefuse(src, dst)
		return 0, false
	}
	hostDst := c.mapDestination(netip.AddrPortFrom(dst, uint16(u.DstPort)), protoUDP)
	sock, err := c.udpSocketFor(hostDst)
	if err != nil {
		if debugOn() {
			debugf("udp: socket for %s: %v", hostDst, err)
		}
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			c.udpRefuse(src, dst) // out of descriptors after all: refused
		}
		return 0, false
	}
	i, ok := c.udpFlowWithSocket(key, sock, -1, hostDst)
	if ok && debugOn() {
		debugf("udp: flow %d: %s:%d -> %s", i, src, u.SrcPort, hostDst)
	}
	return i, ok
}

// udpRefuse tells the guest that its datagram was not sent, as no UDP
// flow could be made: an ICMP "administratively prohibited" error (RFC
// 1812 section 5.2.7.1; RFC 4443 section 3.1, code 1).
func (c *ctx) udpRefuse(src, dst netip.Addr) {
	u := &c.parser.udp
	f := &c.scratchFlow
	*f = flow{key: newFlowKey(protoUDP, src, uint16(u.SrcPort), dst, uint16(u.DstPort))}
	typ, code := uint8(icmpTypeUnreach), uint8(icmpCodeProhibited)
	if src.Is6() {
		typ, code = icmp6TypeUnreach, icmp6CodeProhibited
	}
	c.sendICMPError(f, typ, code, u.Payload)
}

// udpFlowWithSocket makes a UDP flow reading its peer's datagrams from
// sock (which it takes over), replying through listener li (-1: through
// sock) to peer.
func (c *ctx) udpFlowWithSocket(key flowKey, sock, li int, peer netip.AddrPort) (int, bool) {
	i, ok := c.flows.alloc(flowUDP, poolUDP, key)
	if !ok {
		unix.Close(sock)
		c.warnRateLimited(warnTableFull, "flow table full: dropping UDP datagrams of new flows")
		return 0, false
	}
	f := c.flows.at(i)
	f.sock = sock
	f.udp.listener, f.udp.spliced = li, li >= 0
	f.udp.hostPeer.set(peer)
	if err := c.epollAdd(sock, unix.EPOLLIN, makeRef(kindUDP, i)); err != nil {
		c.flows.kill(c, i)
		return 0, false
	}
	return i, true
}

// udpSocketFor creates a non-blocking UDP socket connected to dst, with
// ICMP errors queued for us (IP_RECVERR, ip(7)).
func (c *ctx) udpSocketFor(dst netip.AddrPort) (int, error) {
	family, level, opt := unix.AF_INET, unix.SOL_IP, unix.IP_RECVERR
	if dst.Addr().Is6() {
		family, level, opt = unix.AF_INET6, unix.SOL_IPV6, unix.IPV6_RECVERR
	}
	sock, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = setsockoptInt(sock, level, opt, 1)
	if err := c.bindOutbound(sock, dst.Addr()); err != nil {
		unix.Close(sock)
		return -1, err
	}
	c.connectAddr.setScoped(dst, c.linkScope())
	if err := connectRaw(sock, &c.connectAddr); err != nil {
		unix.Close(sock)
		return -1, err
	}
	return sock, nil
}

// udpSockEvent handles readiness of an outbound flow's socket: datagrams
// for the guest, or an ICMP error.
func (c *ctx) udpSockEvent(i int, events uint32) {
	f := c.flows.at(i)
	if f.dead || f.typ != flowUDP {
		return
	}
	if events&unix.EPOLLERR != 0 {
		c.udpErrorQueue(f)
	}
	if events&unix.EPOLLIN == 0 {
		return
	}
	if f.udp.spliced {
		c.udpSplicedReplies(f)
		return
	}
	c.udpBatchToGuest(f, c.udpReadBatch(f.sock, f.guestAddr()))
}

// udpReadBatch reads up to udpBatch datagrams from sock into the frame
// buffers, for flows of the family of family, and returns how many.
func (c *ctx) udpReadBatch(sock int, family netip.Addr) int {
	u := c.udpBufs
	off := udpPayloadOffset(family)
	for k := range u.bufs {
		u.iov[k] = unix.Iovec{Base: &u.bufs[k][off], Len: uint64(len(u.bufs[k]) - off)}
		u.hdrs[k] = unix.Mmsghdr{Hdr: unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&u.addrs[k].raw)),
			Namelen: uint32(unsafe.Sizeof(u.addrs[k].raw)),
			Iov:     &u.iov[k],
			Iovlen:  1,
		}}
	}
	n, err := recvmmsg(sock, u.hdrs[:])
	if err != nil {
		return 0
	}
	return n
}

// udpToGuest sends datagram k of the last batch to the guest on flow f.
func (c *ctx) udpToGuest(f *flow, k int) {
	c.flows.touch(int(f.index), c.now)
	size := int(c.udpBufs.hdrs[k].Len)
	if !c.udpFitsGuest(f, size) {
		c.stats.udpDropped++ // larger than the link MTU: the guest could not take it
		return
	}
	c.countTraffic(f, true, size, 1)
	c.sendUDPFrame(c.udpBufs.bufs[k], f, size, size)
}

// udpFitsGuest tells whether a datagram of size payload bytes fits the
// guest's link MTU.
func (c *ctx) udpFitsGuest(f *flow, size int) bool {
	return c.mtu == 0 || size <= c.mtu-ipHdrLen(f.guestAddr())-udpHdrLen
}

// sendUDPFrame builds the headers in front of n payload bytes already at
// udpPayloadOffset in buf, and sends the frame to the guest: one datagram,
// or when seg < n a UDP super-frame of datagrams of seg bytes (the last
// one shorter) that the guest's kernel cuts up. Its UDP length covers the
// whole payload, as in a datagram coalesced by the kernel's UDP GRO, and
// its checksum is left to the device (the kernel fixes both per segment).
func (c *ctx) sendUDPFrame(buf []byte, f *flow, n, seg int) {
	fr := buf[txHeadroom:]
	c.putEthernet(fr, etherTypeFor(f.guestAddr()))
	ipl := putIPHeader(fr[ethHdrLen:], f.peerAddr(), f.guestAddr(), protoUDP, udpHdrLen+n)
	l4 := ethHdrLen + ipl
	putUDPHeader(fr[l4:], f.peerPort(), f.guestPort(), n)
	var gso *txOffload
	if seg < n {
		gso = &c.gsoOff
		*gso = txOffload{gsoType: vnetGSOUDPL4, gsoSize: uint16(seg), hdrLen: uint16(l4 + udpHdrLen)}
	}
	c.finishL4Frame(buf, f.peerAddr(), f.guestAddr(), protoUDP, l4, udpHdrLen+n, gso)
}

// udpErrorQueue turns the ICMP errors queued on a flow's socket into ICMP
// errors to the guest, about the datagram it sent.
func (c *ctx) udpErrorQueue(f *flow) {
	u := c.udpBufs
	quote := u.bufs[0][:icmpErrorQuote6]
	for range udpBatch {
		n, ee, err := recvErrQueue(f.sock, quote, u.ctrl)
		if err != nil {
			break
		}
		if ee == nil || (ee.Origin != soEEOriginICMP && ee.Origin != soEEOriginICMP6) {
			continue
		}
		c.sendICMPError(f, ee.Type, ee.Code, quote[:n])
	}
	_, _ = getsockoptInt(f.sock, unix.SOL_SOCKET, unix.SO_ERROR) // clear the pending error
}

// sendICMPError tells the guest that a datagram of flow f (whose first
// payload bytes are in payload) could not be delivered: an ICMP (RFC 792)
// or ICMPv6 (RFC 4443) error quoting the datagram as the guest sent it.
func (c *ctx) sendICMPError(f *flow, typ, code uint8, payload []byte) {
	fr := c.frame()
	proto, limit := uint8(protoICMP), icmpErrorQuote4
	if f.guestAddr().Is6() {
		proto, limit = protoICMPv6, icmpErrorQuote6
	}
	quoteLen := min(ipHdrLen(f.guestAddr())+udpHdrLen+len(payload), limit)
	c.putEthernet(fr, etherTypeFor(f.guestAddr()))
	ipl := putIPHeader(fr[ethHdrLen:], f.peerAddr(), f.guestAddr(), proto, icmpHdrLen+quoteLen)
	m := fr[ethHdrLen+ipl:]
	m[0], m[1] = typ, code
	clear(m[2:icmpHdrLen])
	q := m[icmpHdrLen:]
	qipl := putIPHeader(q, f.guestAddr(), f.peerAddr(), protoUDP, udpHdrLen+len(payload))
	binary.BigEndian.PutUint16(q[qipl:], f.guestPort())
	binary.BigEndian.PutUint16(q[qipl+2:], f.peerPort())
	binary.BigEndian.PutUint16(q[qipl+4:], uint16(udpHdrLen+len(payload)))
	binary.BigEndian.PutUint16(q[qipl+6:], 0)
	copy(q[qipl+udpHdrLen:quoteLen], payload)
	msg := m[:icmpHdrLen+quoteLen]
	if proto == protoICMPv6 {
		binary.BigEndian.PutUint16(msg[2:4], icmp6Checksum(f.peerAddr(), f.guestAddr(), msg))
	} else {
		binary.BigEndian.PutUint16(msg[2:4], checksum(msg))
	}
	c.sendFrame(ethHdrLen + ipl + len(msg))
}

// udpListenerReadable forwards datagrams from a -u listener to the guest,
// creating a flow per sender.
func (c *ctx) udpListenerReadable(li int) {
	l := &c.listeners[li]
	family := netip.IPv4Unspecified()
	if l.v6 {
		family = netip.IPv6Unspecified()
	}
	n := c.udpReadBatch(l.fd, family)
	for k := 0; k < n; k++ {
		from := c.udpBufs.addrs[k].addrPort()
		if l.inNs || c.spliceable(from.Addr()) {
			c.udpSpliceDatagram(li, from, k)
			continue
		}
		if f := c.udpInboundFlow(li, from); f != nil {
			c.udpToGuest(f, k)
		}
	}
}

// udpInboundFlow finds or creates the flow for a datagram from a host
// peer to a forwarded port.
func (c *ctx) udpInboundFlow(li int, from netip.AddrPort) *flow {
	l := &c.listeners[li]
	ic := c.ipConfFor(from.Addr())
	src, ok := c.inboundSource(from.Addr())
	dst := ic.guestTarget(src, l.targetAddr)
	if why := inboundProblem(ic, ok, dst); why != "" {
		// A UDP sender can't be told: without raw sockets pasta can't
		// send it an ICMP error. The C pasta drops these silently.
		c.stats.udpDropped++
		c.warnRateLimited(warnNoSource, "forwarded UDP datagram from %s to port %d: %s, dropped", from, l.target, why)
		return nil
	}
	key := newFlowKey(protoUDP, dst, l.target, src, from.Port())
	if i, ok := c.flows.lookup(key); ok {
		return c.flows.at(i)
	}
	if l.retired {
		c.stats.udpDropped++ // its rule is gone: no new senders
		return nil
	}
	if !c.makeRoom(poolUDP) {
		return nil
	}
	i, ok := c.flows.alloc(flowUDP, poolUDP, key)
	if !ok {
		c.warnRateLimited(warnTableFull, "flow table full: dropping UDP datagrams from new senders")
		return nil
	}
	f := c.flows.at(i)
	f.udp.listener = li
	f.udp.hostPeer.set(from)
	f.rule = l.rule
	if s := c.ruleStats(l.rule); s != nil {
		s.flows++
	}
	if debugOn() {
		debugf("udp: flow %d: %s -> %s:%d forwarded", i, from, dst, l.target)
	}
	return f
}
