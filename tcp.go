package main

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"

	"golang.org/x/sys/unix"
)

// TCP translation: theory of operation.
//
// pasta is not a TCP stack. Each guest connection is mirrored by a host
// socket, and pasta keeps only the sequence state needed to speak TCP to
// the guest; the host kernel does the real work on the other side.
//
//   - Guest to host: a guest segment in order is sent to the socket as it
//     is, and acknowledged to the guest only for what the socket took (a
//     segment smaller than a full one by its answer, if it comes soon:
//     tcpDelayAck). The window we advertise is the free space of the
//     socket's send buffer, so the guest rarely sends what can't be taken.
//     Out-of-order segments are dropped with a duplicate ACK; the guest
//     retransmits.
//   - Host to guest: socket data is peeked (MSG_PEEK with SO_PEEK_OFF at the
//     first byte not yet sent) straight into the frame buffer and sent as
//     segments no larger than the guest's MSS nor its window. Data stays in
//     the socket until the guest acknowledges it; then it is dropped with
//     MSG_TRUNC. Retransmitting is rewinding the peek offset to the first
//     unacknowledged byte. On a tap, segments go out as super-segments cut
//     by the device (GSO) with checksums finished by it.
//   - Connection set-up: a guest SYN starts a non-blocking connect(); the
//     SYN-ACK goes to the guest once it completes, a RST if it fails. For
//     forwarded ports (fwd.go) an accepted connection becomes a SYN to the
//     guest, and the guest's SYN-ACK completes it.
//   - Tear-down: a guest FIN becomes shutdown(SHUT_WR) once all data before
//     it was sent; end of file on the socket becomes a FIN to the guest
//     after the last byte. A RST either way resets the other side.
//
// All of a connection's state changes go through the functions below;
// timers (connect, retransmission, zero window, FIN) share one deadline
// per flow, checked by the loop's timer tick.

const (
	tcpHdrLen       = 20
	tcpSynOptsLen   = 8 // MSS (4) + NOP (1) + window scale (3)
	tcpFlagFIN      = 0x01
	tcpFlagSYN      = 0x02
	tcpFlagRST      = 0x04
	tcpFlagPSH      = 0x08
	tcpFlagACK      = 0x10
	tcpOptEnd       = 0
	tcpOptNOP       = 1
	tcpOptMSS       = 2 // RFC 9293 section 3.7.1
	tcpOptWS        = 3 // RFC 7323 section 2.2
	tcpMaxWS        = 14
	tcpOurWS        = 8    // our window scale: windows up to 16 MiB
	tcpDefaultMSS4  = 536  // RFC 9293 section 3.7.1: without the option
	tcpDefaultMSS6  = 1220 // RFC 8200 section 5: 1280 minus headers
	tcpMaxSegRun    = 128  // segments sent to the guest per socket wakeup
	tcpMaxGSOBytes  = 65535 - ipv6HdrLen - tcpHdrLen
	tcpDupAckThresh = 3  // RFC 5681 section 3.2: fast retransmit
	tcpMaxOptLen    = 40 // RFC 9293 section 3.1: options, at most; a full segment carries MSS less its options

	tcpConnectTimeoutNS = int64(10e9) // no SYN-ACK from the host or the guest
	tcpRTOInitialNS     = int64(1e9)  // RFC 6298 section 2.1
	tcpRTOMaxNS         = int64(60e9)
	tcpMaxRetries       = 8
	tcpFinTimeoutNS     = int64(60e9)   // half-closed or closing connections
	tcpIdleTimeoutNS    = int64(7200e9) // established without traffic
	tcpSynRetries       = 3
)

// tcpState is a set of events that happened to a connection.
type tcpState uint16

const (
	tcpConnecting  tcpState = 1 << iota // guest SYN seen, socket connecting
	tcpSynAckSent                       // SYN-ACK sent to the guest
	tcpSynSent                          // forwarded port: SYN sent to the guest
	tcpEstablished                      // guest side synchronised
	tcpGuestFin                         // guest FIN received and shut down the socket
	tcpSockEOF                          // end of file read from the socket
	tcpFinSent                          // FIN sent to the guest
	tcpFinAcked                         // the guest acknowledged our FIN
	tcpWantWindow                       // socket was full: tell the guest when it drains
	tcpPeerClosed                       // EPOLLRDHUP: the host peer will send no more
	tcpDataEarly                        // socket data came before the guest's handshake ended
)

// tcpSockEvents is what epoll reports for a connection's socket, from its
// creation to its end, edge-triggered: data the guest did not acknowledge
// stays in the socket, so a level-triggered EPOLLIN would fire again and
// again until the guest's ACK, and switching interests on and off would
// cost an epoll_ctl each time. Every handler reads until EAGAIN or stops
// where the guest's ACK (or a re-arm, tcpRearm) resumes it.
const tcpSockEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

// tcpConn is the guest-side sequence state of a connection (RFC 9293
// section 3.3.1 names): sndUna..sndNxt is what we sent the guest and it did
// not acknowledge yet, which is also what the socket still holds beyond
// what was discarded.
type tcpConn struct {
	state      tcpState
	iss        uint32 // our initial sequence number
	sndUna     uint32 // oldest sequence number the guest did not acknowledge
	sndNxt     uint32 // next sequence number we send
	sndWnd     uint32 // the guest's receive window, in bytes
	rcvNxt     uint32 // next sequence number we expect from the guest
	mss        uint16 // largest segment the guest accepts
	sndWS      uint8  // the guest's window scale shift
	rcvWS      uint8  // our window scale shift (0 when not negotiated)
	wsOK       bool   // window scaling negotiated (RFC 7323 section 1.3)
	rcvWnd     uint32 // window last computed from the socket (tcpRecvWindow), less what the guest sent since
	rcvWndBase uint32 // the window as computed then
	rcvWndOld  bool   // compute it again
	dupAcks    uint8
	retries    uint8
	ackPending bool  // in ctx.tcpAcks: ACK sent after this batch
	ackDelayed bool  // in ctx.tcpDelayedAcks: ACK sent unless data carries it first
	deadline   int64 // timer expiry, monotonic ns; 0 when no timer runs
	rto        int64 // current retransmission timeout
}

// seqLT and friends compare sequence numbers modulo 2^32 (RFC 9293
// section 3.4).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return int32(a-b) <= 0 }

// tcpPeekOffSupported records whether SO_PEEK_OFF works on TCP sockets
// (Linux 6.9 and later); without it, peeking starts at the head of the
// queue and skips what was already sent.
var tcpPeekOffSupported = probePeekOff()

func probePeekOff() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return setsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0) == nil
}

// handleTCP handles a TCP segment from the guest.
func (c *ctx) handleTCP(src, dst netip.Addr) {
	t := &c.parser.tcp
	if c.cfg.noTCP {
		return
	}
	key := newFlowKey(protoTCP, src, uint16(t.SrcPort), dst, uint16(t.DstPort))
	i, ok := c.flows.lookup(key)
	if !ok {
		if t.SYN && !t.ACK && !t.RST {
			c.tcpConnect(key, src, dst)
		} else if !t.RST {
			c.tcpResetUnknown(src, dst)
		}
		return
	}
	c.tcpSegment(i)
}

// tcpConnect opens a host socket for a guest SYN and starts connecting.
func (c *ctx) tcpConnect(key flowKey, src, dst netip.Addr) {
	t := &c.parser.tcp
	if c.flows.halfOpenQuotaFull(&key) {
		c.warnRateLimited(warnDstQuota, "half-open TCP connects: too many to one address, dropping SYNs to it")
		return
	}
	if c.flows.peerConnsFull(&key) {
		c.warnPeerConns()
		c.tcpResetUnknown(src, dst)
		return
	}
	if !c.admitNewFlow(c.flows.halfOpenCount(&key)) {
		return // waits for its turn, or dropped: the guest sends it again
	}
	if !c.makeRoom(poolHalfOpen) {
		c.tcpResetUnknown(src, dst)
		return
	}
	hostDst := c.mapDestination(netip.AddrPortFrom(dst, uint16(t.DstPort)), protoTCP)
	sock, err := c.tcpSocketFor(hostDst)
	if err != nil {
		if debugOn() {
			debugf("tcp: socket for %s: %v", hostDst, err)
		}
		c.tcpResetUnknown(src, dst)
		return
	}
	i, ok := c.flows.alloc(flowTCP, poolHalfOpen, key)
	if !ok {
		unix.Close(sock)
		c.warnRateLimited(warnTableFull, "flow table full: refusing new TCP connections")
		c.tcpResetUnknown(src, dst)
		return
	}
	f := c.flows.at(i)
	f.sock = sock
	f.lastActive = c.now
	tc := &f.tcp
	tc.rcvNxt = t.Seq + 1
	c.tcpTakeSynOptions(f)
	tc.sndWnd = uint32(t.Window) // RFC 7323 section 2.2: never scaled in a SYN
	tc.iss = rand.Uint32()
	tc.sndUna, tc.sndNxt = tc.iss, tc.iss
	tc.state = tcpConnecting
	c.tcpArmTimer(f, tcpConnectTimeoutNS)

	c.connectAddr.setScoped(hostDst, c.linkScope())
	err = connectRaw(sock, &c.connectAddr)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		c.tcpConnectFailed(i, err)
		return
	}
	if err := c.tcpRegister(i); err != nil {
		c.tcpConnectFailed(i, err)
		return
	}
	if debugOn() {
		debugf("tcp: flow %d: %s:%d -> %s connecting", i, src, t.SrcPort, hostDst)
	}
}

// tcpSocketFor creates a non-blocking socket to reach dst, bound as -o and
// --outbound-if4/6 ask.
func (c *ctx) tcpSocketFor(dst netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	if dst.Addr().Is4() {
		family = unix.AF_INET
	}
	sock, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := c.bindOutbound(sock, dst.Addr()); err != nil {
		unix.Close(sock)
		return -1, err
	}
	_ = setsockoptInt(sock, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return sock, nil
}

// bindOutbound applies -o and --outbound-if4/6 to a socket towards dst;
// loopback destinations (mapped addresses) are left alone.
func (c *ctx) bindOutbound(sock int, dst netip.Addr) error {
	if dst.IsLoopback() {
		return nil
	}
	ic := c.ipConfFor(dst)
	if ic.outIf != "" {
		if err := unix.BindToDevice(sock, ic.outIf); err != nil {
			return err
		}
	}
	if ic.outAddr.IsValid() {
		c.bindAddr.set(netip.AddrPortFrom(ic.outAddr, 0))
		return bindRaw(sock, &c.bindAddr)
	}
	return nil
}

// tcpTakeSynOptions reads MSS and window scale (RFC 9293 section 3.7.1,
// RFC 7323 section 2) from the guest's SYN or SYN-ACK.
func (c *ctx) tcpTakeSynOptions(f *flow) {
	tc := &f.tcp
	mss := tcpDefaultMSS4
	if f.guestAddr().Is6() {
		mss = tcpDefaultMSS6
	}
	ws := -1
	tc.sndWS, tc.rcvWS, tc.wsOK = 0, 0, false
	for _, o := range c.parser.tcp.Options {
		switch {
		case o.OptionType == tcpOptMSS && len(o.OptionData) == 2:
			mss = int(binary.BigEndian.Uint16(o.OptionData))
		case o.OptionType == tcpOptWS && len(o.OptionData) == 1:
			ws = min(int(o.OptionData[0]), tcpMaxWS) // RFC 7323 section 2.3: at most 14
		}
	}
	tc.mss = uint16(max(min(mss, c.tcpMaxMSS(f.guestAddr())), 1))
	if ws >= 0 {
		tc.sndWS, tc.rcvWS, tc.wsOK = uint8(ws), tcpOurWS, true
	}
}

// tcpMaxMSS is the largest segment our MTU allows towards the guest.
func (c *ctx) tcpMaxMSS(a netip.Addr) int {
	mtu := c.mtu
	if mtu == 0 {
		mtu = mtuDefault
	}
	return min(mtu-ipHdrLen(a)-tcpHdrLen, 65535-ipHdrLen(a)-tcpHdrLen)
}

// tcpConnectFailed answers the guest's SYN with a RST (RFC 9293 section
// 3.10.7.3) and drops the flow.
func (c *ctx) tcpConnectFailed(i int, err error) {
	f := c.flows.at(i)
	if debugOn() {
		debugf("tcp: flow %d: connecting to %s:%d: %v", i, f.peerAddr(), f.peerPort(), err)
	}
	c.tcpSendFlags(f, f.tcp.sndNxt, tcpFlagRST|tcpFlagACK)
	c.flows.kill(c, i)
}

// tcpResetUnknown answers a segment that belongs to no connection (RFC
// 9293 section 3.10.7.1): RST with the sequence number the segment
// acknowledged, or RST-ACK for what it carried.
func (c *ctx) tcpResetUnknown(src, dst netip.Addr) {
	t := &c.parser.tcp
	f := &c.scratchFlow
	*f = flow{key: newFlowKey(protoTCP, src, uint16(t.SrcPort), dst, uint16(t.DstPort))}
	if t.ACK {
		c.tcpSendFlags(f, t.Ack, tcpFlagRST)
		return
	}
	seglen := uint32(len(t.Payload))
	if t.SYN {
		seglen++
	}
	if t.FIN {
		seglen++
	}
	f.tcp.rcvNxt = t.Seq + seglen
	c.tcpSendFlags(f, 0, tcpFlagRST|tcpFlagACK)
}

// tcpSegment handles a guest segment for an existing connection.
func (c *ctx) tcpSegment(i int) {
	f := c.flows.at(i)
	t := &c.parser.tcp
	tc := &f.tcp
	f.lastActive = c.now
	if t.RST {
		c.tcpGuestReset(i)
		return
	}
	if t.SYN {
		c.tcpGuestSyn(i)
		return
	}
	if !t.ACK || tc.state&(tcpSynAckSent|tcpEstablished) == 0 {
		return // RFC 9293 section 3.10.7.4, fifth check: no ACK, drop
	}
	if tc.state&tcpEstablished == 0 {
		if t.Ack != tc.iss+1 {
			c.tcpSendFlags(f, t.Ack, tcpFlagRST) // RFC 9293 3.10.7.4: unacceptable ACK in SYN-RECEIVED
			return
		}
		c.tcpEstablish(i)
	}
	c.tcpGuestAck(i)
	if f.dead {
		return
	}
	switch {
	case len(t.Payload) > 0 || t.FIN:
		c.tcpGuestData(i)
	case t.Seq != tc.rcvNxt:
		// RFC 9293 section 3.10.7.4: answer an unacceptable segment, such
		// as a zero window probe, with an ACK.
		c.tcpQueueAck(i)
	}
}

// tcpGuestSyn handles a SYN on a known flow: a retransmitted SYN (our
// SYN-ACK was lost) or the guest's SYN-ACK for a forwarded connection.
func (c *ctx) tcpGuestSyn(i int) {
	f := c.flows.at(i)
	t := &c.parser.tcp
	tc := &f.tcp
	switch {
	case tc.state&tcpSynSent != 0 && tc.state&tcpEstablished == 0 && t.ACK && t.Ack == tc.iss+1:
		tc.rcvNxt = t.Seq + 1
		c.tcpTakeSynOptions(f)
		tc.sndWnd = uint32(t.Window)
		c.tcpEstablish(i)
		c.tcpSendFlags(f, tc.sndNxt, tcpFlagACK)
	case tc.state&tcpSynAckSent != 0 && !t.ACK && t.Seq+1 == tc.rcvNxt:
		c.tcpSendFlags(f, tc.iss, tcpFlagSYN|tcpFlagACK)
	}
}

// tcpEstablish completes the guest-side handshake: data may flow.
func (c *ctx) tcpEstablish(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	tc.state |= tcpEstablished
	tc.sndUna, tc.sndNxt = tc.iss+1, tc.iss+1
	tc.deadline = 0
	tc.rto = tcpRTOInitialNS
	if tcpPeekOffSupported {
		_ = setsockoptInt(f.sock, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0)
	}
	if tc.state&(tcpDataEarly|tcpPeerClosed) != 0 {
		c.tcpSocketToGuest(i) // what the edge-triggered events told before now
	}
}

// tcpGuestReset resets the host side of a connection the guest reset
// (RFC 9293 section 3.10.7.4: in-window sequence number).
func (c *ctx) tcpGuestReset(i int) {
	f := c.flows.at(i)
	t := &c.parser.tcp
	tc := &f.tcp
	if tc.state&tcpEstablished != 0 && t.Seq != tc.rcvNxt && !seqInWindow(t.Seq, tc.rcvNxt, c.tcpRecvWindow(f)) {
		return
	}
	if debugOn() {
		debugf("tcp: flow %d: reset by the guest", i)
	}
	closeWithReset(f.sock)
	f.sock = -1
	c.flows.kill(c, i)
}

func seqInWindow(seq, start, size uint32) bool {
	return seqLE(start, seq) && seqLT(seq, start+max(size, 1))
}

// tcpGuestAck processes the acknowledgement and window of a guest segment.
func (c *ctx) tcpGuestAck(i int) {
	f := c.flows.at(i)
	t := &c.parser.tcp
	tc := &f.tcp
	ack := t.Ack
	wnd := uint32(t.Window) << tc.sndWS
	if seqLT(tc.sndNxt, ack) || seqLT(ack, tc.sndUna) {
		return // acknowledges what we never sent, or an old ACK
	}
	wasClosed := tc.sndNxt-tc.sndUna >= tc.sndWnd
	acked := ack - tc.sndUna
	switch {
	case acked > 0:
		c.tcpAcked(i, acked)
	case tc.sndNxt != tc.sndUna && len(t.Payload) == 0 && !t.FIN && wnd == tc.sndWnd:
		// RFC 5681 section 3.2: the third duplicate ACK means a lost segment.
		tc.dupAcks++
		if tc.dupAcks == tcpDupAckThresh {
			c.tcpRewind(i)
		}
	}
	tc.sndWnd = wnd
	if f.dead {
		return
	}
	if tc.state&tcpFinAcked != 0 && tc.state&tcpGuestFin != 0 {
		c.tcpClose(i)
		return
	}
	if wasClosed && tc.sndNxt-tc.sndUna < tc.sndWnd {
		c.tcpSocketToGuest(i)
	}
}

// tcpAcked drops n newly acknowledged bytes (and our FIN, if acknowledged)
// from the socket and restarts the retransmission timer.
func (c *ctx) tcpAcked(i int, n uint32) {
	f := c.flows.at(i)
	tc := &f.tcp
	data := n
	if tc.state&tcpFinSent != 0 && tc.sndUna+n == tc.sndNxt {
		data--
		tc.state |= tcpFinAcked
	}
	if data > 0 {
		if _, err := discard(f.sock, int(data)); err != nil && !isTemporary(err) {
			c.tcpResetBoth(i)
			return
		}
		c.countTraffic(f, true, int(data), 0)
	}
	tc.sndUna += n
	tc.dupAcks, tc.retries = 0, 0
	tc.rto = tcpRTOInitialNS
	switch {
	case tc.sndUna != tc.sndNxt:
		c.tcpArmTimer(f, tc.rto)
	case tc.state&(tcpGuestFin|tcpFinSent) != 0:
		c.tcpArmTimer(f, tcpFinTimeoutNS)
	default:
		tc.deadline = 0
	}
}

// tcpRewind goes back to the first byte the guest did not acknowledge, to
// send everything after it again (RFC 5681 section 3.2, RFC 6298 5.4).
func (c *ctx) tcpRewind(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	if debugOn() {
		debugf("tcp: flow %d: retransmitting from %d", i, tc.sndUna-tc.iss)
	}
	tc.sndNxt = tc.sndUna
	tc.state &^= tcpFinSent | tcpSockEOF
	if tcpPeekOffSupported {
		_ = setsockoptInt(f.sock, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0)
	}
	c.tcpSocketToGuest(i)
}

// tcpGuestData passes guest data (and FIN) to the socket, in order only.
func (c *ctx) tcpGuestData(i int) {
	f := c.flows.at(i)
	t := &c.parser.tcp
	tc := &f.tcp
	payload, seq, fin := t.Payload, t.Seq, t.FIN
	if tc.state&tcpGuestFin != 0 {
		c.tcpQueueAck(i)
		return
	}
	if seqLT(seq, tc.rcvNxt) { // overlaps what we have: keep the new part
		old := tc.rcvNxt - seq
		if old >= uint32(len(payload)) {
			if !fin || old > uint32(len(payload)) {
				c.tcpQueueAck(i)
				return
			}
			old = uint32(len(payload))
		}
		payload, seq = payload[old:], tc.rcvNxt
	}
	if seq != tc.rcvNxt {
		c.tcpSendFlags(f, tc.sndNxt, tcpFlagACK) // out of order: duplicate ACK (RFC 5681 section 4.2)
		return
	}
	if len(payload) > 0 {
		n, err := sendNoSignal(f.sock, payload)
		if err != nil && !isTemporary(err) {
			c.tcpResetBoth(i)
			return
		}
		tc.rcvNxt += uint32(n)
		tcpWindowTaken(tc, n)
		c.countTraffic(f, false, n, 0)
		if n < len(payload) {
			fin = false // the FIN comes after data the socket could not take yet
			c.tcpWaitForSpace(i)
		}
	}
	if fin {
		// With our FIN acknowledged the socket is closed right after:
		// closing sends the FIN (nothing is left unread, which would
		// make it a RST), so no shutdown is needed.
		if tc.state&tcpFinAcked == 0 {
			_ = unix.Shutdown(f.sock, unix.SHUT_WR)
		}
		tc.rcvNxt++
		tc.state |= tcpGuestFin
		c.tcpArmTimer(f, tcpFinTimeoutNS)
		c.tcpSendFlags(f, tc.sndNxt, tcpFlagACK)
		if tc.state&tcpFinAcked != 0 {
			c.tcpClose(i)
		}
		return
	}
	if n := len(payload); n > 0 && n < int(tc.mss)-tcpMaxOptLen {
		c.tcpDelayAck(i) // a request, likely: its answer will carry the ACK
		return
	}
	c.tcpQueueAck(i)
}

// tcpWindowTaken takes n bytes the socket just took from the window last
// computed: the free space of its send buffer shrinks by as much (or less,
// as the kernel sends), so the window stays safe to advertise without the
// two system calls that compute it. Only while little was taken, though:
// past a sixteenth of it, the kernel has likely sent some out since, and a
// window that only shrinks would hold back a guest sending in bulk.
func tcpWindowTaken(tc *tcpConn, n int) {
	if uint32(n) >= tc.rcvWnd || tc.rcvWndBase-(tc.rcvWnd-uint32(n)) >= tc.rcvWndBase/16 {
		tc.rcvWndOld = true
		return
	}
	tc.rcvWnd -= uint32(n)
}

// tcpWaitForSpace asks to be told when the socket's send buffer drains,
// to advertise the new window to the guest. Re-arming the socket makes
// epoll check it now: if the buffer is not writable, that check also
// makes the kernel wake us when it is (tcp_poll sets SOCK_NOSPACE).
func (c *ctx) tcpWaitForSpace(i int) {
	f := c.flows.at(i)
	f.tcp.state |= tcpWantWindow
	if err := c.tcpRearm(i); err != nil {
		c.tcpResetBoth(i)
	}
}

// tcpQueueAck schedules an ACK, sent once the current batch of guest
// frames is handled, so that a burst of segments gets one ACK.
func (c *ctx) tcpQueueAck(i int) {
	tc := &c.flows.at(i).tcp
	if !tc.ackPending {
		tc.ackPending = true
		c.tcpAcks = append(c.tcpAcks, int32(i))
	}
}

// tcpDelayAck owes the guest an ACK for a segment smaller than a full
// one, but holds it back for up to tcpAckDelayNS, or until the loop is
// about to sleep: an answer from the socket in the meantime carries the
// ACK, and the guest is spared a frame. RFC 9293 section 3.8.6.3 and RFC
// 1122 section 4.2.3.2 allow delaying an ACK (by far less than their
// 500 ms here); full-sized segments, and a second segment while one is
// held, are acknowledged with the batch (tcpQueueAck), so a sender in
// bulk never waits on this.
func (c *ctx) tcpDelayAck(i int) {
	tc := &c.flows.at(i).tcp
	switch {
	case tc.ackPending:
	case tc.ackDelayed:
		// RFC 1122 section 4.2.3.2: at least every second segment is
		// acknowledged; a guest sending in bulk gets its ACKs.
		c.tcpQueueAck(i)
	case len(c.tcpDelayedAcks) == cap(c.tcpDelayedAcks):
		c.tcpQueueAck(i) // no room: at once, rather than allocating
	default:
		if len(c.tcpDelayedAcks) == 0 {
			c.tcpDelayedAcksDue = c.now + tcpAckDelayNS
		}
		tc.ackDelayed = true
		c.tcpDelayedAcks = append(c.tcpDelayedAcks, int32(i))
	}
}

// tcpFlushDelayedAcks sends the delayed ACKs that no segment carried yet.
func (c *ctx) tcpFlushDelayedAcks() { c.tcpDelayedAcks = c.tcpSendOwedAcks(c.tcpDelayedAcks, true) }

// tcpFlushAcks sends the ACKs queued while handling guest frames.
func (c *ctx) tcpFlushAcks() { c.tcpAcks = c.tcpSendOwedAcks(c.tcpAcks, false) }

// tcpSendOwedAcks sends an ACK to each flow of list still owed the one
// that list holds (delayed, or queued for the batch; a segment sent since
// may have carried it), and returns the list emptied. A flow can be in
// the batch's list while only a delayed ACK is owed (its queued one went
// out with data, then a small segment came): that ACK stays held.
func (c *ctx) tcpSendOwedAcks(list []int32, delayed bool) []int32 {
	for _, i := range list {
		f := c.flows.at(int(i))
		owed := f.tcp.ackPending
		if delayed {
			owed = f.tcp.ackDelayed
		}
		if f.dead || f.typ != flowTCP || !owed {
			continue
		}
		c.tcpSendFlags(f, f.tcp.sndNxt, tcpFlagACK)
	}
	return list[:0]
}

// tcpSockEvent handles readiness of a connection's socket.
func (c *ctx) tcpSockEvent(i int, events uint32) {
	f := c.flows.at(i)
	if f.dead || f.typ != flowTCP {
		return
	}
	tc := &f.tcp
	if tc.state&tcpConnecting != 0 {
		c.tcpConnectDone(i, events)
		if events&(unix.EPOLLIN|unix.EPOLLRDHUP) != 0 {
			tc.state |= tcpDataEarly // this edge will not come again
		}
		return
	}
	if events&unix.EPOLLERR != 0 {
		if err, _ := getsockoptInt(f.sock, unix.SOL_SOCKET, unix.SO_ERROR); err != 0 {
			if debugOn() {
				debugf("tcp: flow %d: %v", i, unix.Errno(err))
			}
			c.tcpResetBoth(i)
			return
		}
	}
	if events&unix.EPOLLOUT != 0 && tc.state&tcpWantWindow != 0 {
		tc.state &^= tcpWantWindow
		tc.rcvWndOld = true
		c.tcpSendFlags(f, tc.sndNxt, tcpFlagACK) // window update
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		tc.state |= tcpPeerClosed
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		c.tcpSocketToGuest(i)
	}
}

// tcpConnectDone finishes a connect: SYN-ACK to the guest, or RST.
func (c *ctx) tcpConnectDone(i int, events uint32) {
	f := c.flows.at(i)
	tc := &f.tcp
	if err := connectResult(f.sock, events); err != nil {
		c.tcpConnectFailed(i, err)
		return
	}
	tc.state = tc.state&^tcpConnecting | tcpSynAckSent
	c.flows.poolMove(i, poolTCP) // connected: no longer half-open
	c.tcpArmTimer(f, tcpConnectTimeoutNS)
	c.tcpSendFlags(f, tc.iss, tcpFlagSYN|tcpFlagACK)
}

// tcpSocketToGuest sends socket data to the guest, as much as its window
// allows, then a FIN if the socket reached end of file.
func (c *ctx) tcpSocketToGuest(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	if tc.state&tcpEstablished == 0 {
		tc.state |= tcpDataEarly // for tcpEstablish
		return
	}
	if tc.state&tcpFinSent != 0 {
		return
	}
	hdr := ethHdrLen + ipHdrLen(f.guestAddr()) + tcpHdrLen
	limit := int(tc.mss)
	if c.dev.offloads() {
		limit = tcpMaxGSOBytes
	}
	for n := 0; n < tcpMaxSegRun; n++ {
		inflight := tc.sndNxt - tc.sndUna
		if inflight >= tc.sndWnd {
			// The guest's ACK opening the window resumes (tcpGuestAck).
			c.tcpArmTimer(f, tc.rto) // retransmission, or zero window probe
			return
		}
		want := min(limit, int(tc.sndWnd-inflight))
		payload := c.txBuf[txHeadroom+hdr : txHeadroom+hdr+want]
		got, err := c.tcpPeek(f, int(inflight), payload)
		if err != nil {
			if !isTemporary(err) {
				c.tcpResetBoth(i)
			}
			return // EAGAIN: the next data wakes us
		}
		if got == 0 {
			c.tcpSockEOF(i)
			return
		}
		// Less than asked for after the peer's FIN: these are its last
		// bytes, and our FIN rides on them.
		last := got < want && tc.state&tcpPeerClosed != 0
		c.tcpSendData(f, got, last)
		if tc.deadline == 0 {
			c.tcpArmTimer(f, tc.rto)
		}
		if got < want {
			return // all there was: the next data wakes us
		}
	}
	// Stopped with data left, for fairness: have epoll report it again.
	if err := c.tcpRearm(i); err != nil {
		c.tcpResetBoth(i)
	}
}

// tcpPeek copies socket data not yet sent to the guest (skipping the
// in-flight bytes) into p. It returns 0 at end of file, EAGAIN when there
// is nothing new yet.
func (c *ctx) tcpPeek(f *flow, inflight int, p []byte) (int, error) {
	if tcpPeekOffSupported {
		return recvFlags(f.sock, p, unix.MSG_PEEK)
	}
	iov := c.peekIov[:0]
	for skip := inflight; skip > 0; skip -= len(c.peekDiscard) {
		part := min(skip, len(c.peekDiscard))
		iov = append(iov, unix.Iovec{Base: &c.peekDiscard[0], Len: uint64(part)})
		if len(iov) == cap(iov)-1 {
			return 0, unix.EAGAIN // more in flight than we can skip: wait for ACKs
		}
	}
	iov = append(iov, unix.Iovec{Base: &p[0], Len: uint64(len(p))})
	n, err := recvmsgPeek(f.sock, iov)
	switch {
	case err != nil:
		return 0, err
	case n > inflight:
		return n - inflight, nil
	case f.tcp.state&tcpPeerClosed != 0:
		return 0, nil // nothing beyond what is in flight, and no more coming
	}
	return 0, unix.EAGAIN
}

// tcpSockEOF sends the guest a FIN after the last byte from the socket.
func (c *ctx) tcpSockEOF(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	tc.state |= tcpSockEOF | tcpFinSent
	c.tcpSendFlags(f, tc.sndNxt, tcpFlagFIN|tcpFlagACK)
	tc.sndNxt++
	c.tcpArmTimer(f, tc.rto)
}

// tcpRegister adds the flow's socket to epoll for tcpSockEvents.
func (c *ctx) tcpRegister(i int) error {
	f := c.flows.at(i)
	ev := unix.EpollEvent{Events: tcpSockEvents, Fd: int32(makeRef(kindTCP, i))}
	return unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, f.sock, &ev)
}

// tcpRearm has epoll check the flow's socket again, and report what is
// ready now, as if it had just changed (epoll(7): EPOLL_CTL_MOD).
func (c *ctx) tcpRearm(i int) error {
	f := c.flows.at(i)
	ev := unix.EpollEvent{Events: tcpSockEvents, Fd: int32(makeRef(kindTCP, i))}
	return unix.EpollCtl(c.epfd, unix.EPOLL_CTL_MOD, f.sock, &ev)
}

// tcpResetBoth resets both sides: a RST to the guest, and to the host peer.
func (c *ctx) tcpResetBoth(i int) {
	f := c.flows.at(i)
	if debugOn() {
		debugf("tcp: flow %d: reset", i)
	}
	c.tcpSendFlags(f, f.tcp.sndNxt, tcpFlagRST|tcpFlagACK)
	closeWithReset(f.sock) // closing also takes it out of epoll: no one else holds it
	f.sock = -1
	c.flows.kill(c, i)
}

// tcpClose ends a connection closed both ways.
func (c *ctx) tcpClose(i int) {
	if debugOn() {
		debugf("tcp: flow %d: closed", i)
	}
	c.flows.kill(c, i)
}

// tcpArmTimer (re)starts the flow's timer.
func (c *ctx) tcpArmTimer(f *flow, after int64) {
	f.tcp.deadline = c.now + after
	c.timersArmed = true
}

// tcpTimer handles an expired flow timer, depending on the state.
func (c *ctx) tcpTimer(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	tc.deadline = 0
	switch {
	case tc.state&(tcpConnecting|tcpSynAckSent) != 0 && tc.state&tcpEstablished == 0:
		c.tcpResetBoth(i) // the connect or the guest's handshake never completed
	case tc.state&tcpSynSent != 0 && tc.state&tcpEstablished == 0:
		c.tcpSynRetry(i)
	case tc.sndNxt != tc.sndUna:
		c.tcpRetransmitTimeout(i)
	case tc.sndWnd == 0:
		c.tcpWindowProbe(i)
	case tc.state&(tcpGuestFin|tcpFinSent) != 0:
		c.tcpResetBoth(i) // half-closed for too long
	}
}

// tcpRetransmitTimeout resends unacknowledged data with exponential
// backoff (RFC 6298 section 5.5), resetting after too many tries.
func (c *ctx) tcpRetransmitTimeout(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	if !c.tcpRetry(i, tcpMaxRetries) {
		return
	}
	tc.rto = min(tc.rto*2, tcpRTOMaxNS)
	c.tcpRewind(i)
	if !f.dead && tc.deadline == 0 {
		c.tcpArmTimer(f, tc.rto)
	}
}

// tcpWindowProbe checks a zero window (RFC 9293 section 3.8.6.1): an ACK
// with an old sequence number makes the guest answer with its window.
func (c *ctx) tcpWindowProbe(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	if !c.tcpRetry(i, tcpMaxRetries*2) {
		return
	}
	c.tcpSendFlags(f, tc.sndNxt-1, tcpFlagACK)
	tc.rto = min(tc.rto*2, tcpRTOMaxNS)
	c.tcpArmTimer(f, tc.rto)
}

// tcpRetry counts one more try of a timer's action, and resets the
// connection (returning false) when there were more than limit.
func (c *ctx) tcpRetry(i int, limit uint8) bool {
	tc := &c.flows.at(i).tcp
	tc.retries++
	if tc.retries > limit {
		c.tcpResetBoth(i)
		return false
	}
	return true
}

// tcpSynRetry sends the SYN of a forwarded connection again.
func (c *ctx) tcpSynRetry(i int) {
	f := c.flows.at(i)
	tc := &f.tcp
	if tc.retries >= tcpSynRetries {
		// The host client's connect() succeeded long ago: a reset, not
		// silence, tells it that nobody will answer.
		c.warnRateLimited(warnNoAnswer, "forwarded TCP connection to %s: no answer from the namespace, reset",
			netip.AddrPortFrom(f.guestAddr(), f.guestPort()))
	}
	if !c.tcpRetry(i, tcpSynRetries) {
		return
	}
	c.tcpSendFlags(f, tc.iss, tcpFlagSYN)
	c.tcpArmTimer(f, tcpRTOInitialNS<<tc.retries)
}

// tcpRecvWindow is the window we advertise: the free space of the socket's
// send buffer, so the guest sends no more than the socket can take. When
// little is left, we ask to be woken once the socket drains, to tell the
// guest about the new space (else it would wait for its persist timer).
func (c *ctx) tcpRecvWindow(f *flow) uint32 {
	if f.sock < 0 {
		return 0
	}
	// Only what the guest sends fills the socket's send buffer: without
	// new guest data (or a drained socket) the last window still holds,
	// and data segments to the guest need no system calls for it.
	if f.typ == flowTCP && !f.tcp.rcvWndOld && f.tcp.state&tcpEstablished != 0 {
		return f.tcp.rcvWnd
	}
	sndbuf, err1 := getsockoptInt(f.sock, unix.SOL_SOCKET, unix.SO_SNDBUF)
	queued, err2 := ioctlInt(f.sock, unix.SIOCOUTQ)
	if err1 != nil || err2 != nil {
		return 0
	}
	// The kernel counts buffer overhead against SO_SNDBUF: keep a margin.
	free := max(sndbuf-sndbuf/8-queued, 0)
	if f.typ != flowTCP {
		return uint32(free)
	}
	if free < sndbuf/4 && f.tcp.state&tcpWantWindow == 0 {
		c.tcpWaitForSpace(int(f.index))
	}
	f.tcp.rcvWnd, f.tcp.rcvWndBase, f.tcp.rcvWndOld = uint32(free), uint32(free), false
	return uint32(free)
}

// tcpWindowField encodes our window for a segment header.
func (c *ctx) tcpWindowField(f *flow, syn bool) uint16 {
	wnd := c.tcpRecvWindow(f)
	if syn {
		return uint16(min(wnd, 65535)) // RFC 7323 section 2.2: SYN windows are unscaled
	}
	return uint16(min(wnd>>f.tcp.rcvWS, 65535))
}

// tcpSendFlags sends a segment without data: SYN, ACK, FIN or RST.
func (c *ctx) tcpSendFlags(f *flow, seq uint32, flags uint8) {
	fr := c.frame()
	hl := c.putTCPFrameHeaders(fr, f, seq, flags, 0)
	c.finishTCPFrame(c.txBuf, f, hl, 0)
}

// tcpSendData sends n bytes already placed in the transmit buffer after the
// headers, at sndNxt, with our FIN after them if fin.
func (c *ctx) tcpSendData(f *flow, n int, fin bool) {
	tc := &f.tcp
	flags := uint8(tcpFlagACK | tcpFlagPSH)
	if fin {
		flags |= tcpFlagFIN
		tc.state |= tcpSockEOF | tcpFinSent
	}
	hl := c.putTCPFrameHeaders(c.frame(), f, tc.sndNxt, flags, n)
	c.finishTCPFrame(c.txBuf, f, hl, n)
	tc.sndNxt += uint32(n)
	if fin {
		tc.sndNxt++ // RFC 9293 section 3.4: the FIN takes a sequence number
	}
}

// putTCPFrameHeaders writes Ethernet, IP and TCP headers into fr for a
// segment with n payload bytes, and returns the header length. SYNs carry
// MSS and window scale options.
func (c *ctx) putTCPFrameHeaders(fr []byte, f *flow, seq uint32, flags uint8, n int) int {
	tc := &f.tcp
	syn := flags&tcpFlagSYN != 0
	thl := tcpHdrLen
	if syn {
		thl += tcpSynOptsLen
	}
	c.putEthernet(fr, etherTypeFor(f.guestAddr()))
	ipl := putIPHeader(fr[ethHdrLen:], f.peerAddr(), f.guestAddr(), protoTCP, thl+n)
	t := fr[ethHdrLen+ipl:]
	binary.BigEndian.PutUint16(t[0:2], f.peerPort())
	binary.BigEndian.PutUint16(t[2:4], f.guestPort())
	binary.BigEndian.PutUint32(t[4:8], seq)
	ack := tc.rcvNxt
	if flags&tcpFlagACK == 0 {
		ack = 0
	} else {
		tc.ackPending, tc.ackDelayed = false, false // this segment carries it
	}
	binary.BigEndian.PutUint32(t[8:12], ack)
	t[12] = byte(thl/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:16], c.tcpWindowField(f, syn))
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
	if syn {
		// RFC 7323 section 2.2: offer scaling in our SYN, and in a SYN-ACK
		// only if the guest offered it.
		putSynOptions(t[tcpHdrLen:], uint16(c.tcpMaxMSS(f.guestAddr())), tcpOurWS, tc.wsOK || tc.state&tcpSynSent != 0)
	}
	return ethHdrLen + ipl + thl
}

// putSynOptions writes MSS, and window scale when withWS.
func putSynOptions(b []byte, mss uint16, ws uint8, withWS bool) {
	b[0], b[1] = tcpOptMSS, 4
	binary.BigEndian.PutUint16(b[2:4], mss)
	b[4] = tcpOptNOP
	if withWS {
		b[5], b[6], b[7] = tcpOptWS, 3, ws
		return
	}
	b[5], b[6], b[7] = tcpOptNOP, tcpOptNOP, tcpOptNOP
}

// finishTCPFrame completes a TCP frame of hl header and n payload bytes
// and sends it; payloads over the MSS go out as a super-segment for the
// device to cut (GSO).
func (c *ctx) finishTCPFrame(buf []byte, f *flow, hl, n int) {
	l4 := ethHdrLen + ipHdrLen(f.guestAddr())
	var gso *txOffload
	if n > int(f.tcp.mss) {
		gso = &c.gsoOff
		*gso = txOffload{gsoType: vnetGSOTCPv4, gsoSize: f.tcp.mss, hdrLen: uint16(hl)}
		if f.guestAddr().Is6() {
			gso.gsoType = vnetGSOTCPv6
		}
	}
	c.finishL4Frame(buf, f.peerAddr(), f.guestAddr(), protoTCP, l4, hl+n-l4, gso)
}

// l4ChecksumOffset is where TCP (RFC 9293 3.1) and UDP (RFC 768) keep
// their checksum.
func l4ChecksumOffset(proto uint8) int {
	if proto == protoTCP {
		return 16
	}
	return 6
}

// finishL4Frame fills in the TCP or UDP checksum of the segment of length
// bytes at l4 in the frame, or has the device do it, and sends the frame.
// gso, if not nil, describes segmentation; it needs a device with offloads
// (the caller only builds super-segments for one).
func (c *ctx) finishL4Frame(buf []byte, src, dst netip.Addr, proto uint8, l4, length int, gso *txOffload) {
	seg := buf[txHeadroom+l4 : txHeadroom+l4+length]
	sumAt := l4ChecksumOffset(proto)
	pseudo := pseudoHeaderSum(src, dst, proto, length)
	if !c.dev.offloads() {
		sum := foldChecksum(sumBytes(seg, pseudo))
		if sum == 0 && proto == protoUDP {
			sum = 0xffff // RFC 768: a computed zero is sent as all ones
		}
		binary.BigEndian.PutUint16(seg[sumAt:], sum)
		c.sendFrameOffload(buf, l4+length, nil)
		return
	}
	// virtio 1.x 5.1.6.2: the field holds the folded pseudo-header sum, not
	// complemented; the device adds the segment and complements.
	binary.BigEndian.PutUint16(seg[sumAt:], ^foldChecksum(pseudo))
	off := &c.txOff
	*off = txOffload{csumStart: uint16(l4), csumOffset: uint16(sumAt)}
	if gso != nil {
		off.gsoType, off.gsoSize, off.hdrLen = gso.gsoType, gso.gsoSize, gso.hdrLen
	}
	c.sendFrameOffload(buf, l4+length, off)
}

// tcpInbound starts a forwarded connection accepted on the host: a SYN to
// the guest (at its address, or the rule's target address), from the
// peer's address as the guest may see it.
func (c *ctx) tcpInbound(fd int, peer netip.AddrPort, to netip.AddrPort, rule ruleRef) {
	target := to.Port()
	ic := c.ipConfFor(peer.Addr())
	src, ok := c.inboundSource(peer.Addr())
	dst := ic.guestTarget(src, to.Addr())
	if why := inboundProblem(ic, ok, dst); why != "" {
		c.warnRateLimited(warnNoSource, "forwarded TCP connection from %s to port %d: %s, reset", peer, target, why)
		closeWithReset(fd)
		return
	}
	key := newFlowKey(protoTCP, dst, target, src, peer.Port())
	if _, exists := c.flows.lookup(key); exists {
		// Two host peers that the guest would see as one (the same
		// translated address and port): the guest can't tell them apart.
		c.warnRateLimited(warnNoSource, "forwarded TCP connection from %s to port %d: the guest already has a connection from %s, reset", peer, target, netip.AddrPortFrom(src, peer.Port()))
		closeWithReset(fd)
		return
	}
	if c.flows.peerConnsFull(&key) {
		c.warnPeerConns()
		closeWithReset(fd)
		return
	}
	if !c.makeRoom(poolTCP) {
		closeWithReset(fd)
		return
	}
	i, ok := c.flows.alloc(flowTCP, poolTCP, key)
	if !ok {
		c.warnRateLimited(warnTableFull, "flow table full: refusing forwarded TCP connections")
		closeWithReset(fd)
		return
	}
	f := c.flows.at(i)
	f.sock = fd
	f.lastActive = c.now
	f.rule = rule
	tc := &f.tcp
	tc.iss = rand.Uint32()
	tc.sndUna, tc.sndNxt = tc.iss, tc.iss+1
	tc.rcvWS = tcpOurWS
	tc.state = tcpSynSent
	tc.mss = uint16(c.tcpMaxMSS(dst))
	if err := c.tcpRegister(i); err != nil {
		c.tcpResetBoth(i)
		return
	}
	c.tcpSendFlags(f, tc.iss, tcpFlagSYN)
	c.tcpArmTimer(f, tcpRTOInitialNS)
	if debugOn() {
		debugf("tcp: flow %d: %s -> %s:%d forwarded", i, peer, dst, target)
	}
}
