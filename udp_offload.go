package main

import (
	"errors"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP with segmentation offloads, both ways.
//
//   - Guest to host: a UDP super-frame from the tap (virtio-net GSO type
//     UDP_L4, offered by TUN_F_USO4/6) holds several datagrams of gso_size
//     bytes, the last one possibly shorter; it is cut into datagrams. The
//     datagrams of one flow queued while a batch of tap frames is read are
//     sent with one sendmmsg(2), and each run of equal-sized ones (plus one
//     shorter at its end) as a single message with UDP_SEGMENT (udp(7)):
//     the kernel builds one buffer for the run and cuts it late.
//   - Host to guest: the datagrams of one recvmmsg batch of a flow go to
//     the guest as UDP super-frames when the tap takes them: a run of
//     equal-sized datagrams (plus one shorter) is copied behind the first
//     one and written once, and the guest's kernel cuts it up.

const (
	udpTxMax = 64 // guest datagrams queued for one flow before they are sent
	// udpGSOMaxSegs is the most datagrams one super-frame or UDP_SEGMENT
	// send carries: UDP_MAX_SEGMENTS, 64 in older kernels (newer ones allow more).
	udpGSOMaxSegs = 64
	// udpGSOMaxBytes is the most payload one UDP_SEGMENT send carries: a
	// datagram of IPv4 length 65535 less its headers (udp(7), ip(7)).
	udpGSOMaxBytes = 65535 - ipv4HdrLen - udpHdrLen
	// udpSegmentCmsgSpace is the room of a UDP_SEGMENT control message: a
	// cmsghdr and its 16-bit value, aligned (cmsg(3), CMSG_SPACE).
	udpSegmentCmsgSpace = unix.SizeofCmsghdr + 8
	solUDP              = 17  // SOL_UDP
	udpSegment          = 103 // UDP_SEGMENT
)

// udpTxBatch collects the guest's datagrams for one flow while a batch of
// tap frames is read, to hand them to the socket at once: the payloads are
// copied one after the other into arena (the next frame reuses the frame
// buffer), then packed into messages.
type udpTxBatch struct {
	flow  int // flow of the queued datagrams; -1 when empty
	n     int // datagrams queued
	lens  [udpTxMax]int
	arena []byte
	used  int
	// The messages packed from the datagrams: first datagram of each, its
	// iovec, header and UDP_SEGMENT control message.
	first [udpTxMax]int
	iov   [udpTxMax]unix.Iovec
	hdrs  [udpTxMax]unix.Mmsghdr
	cmsg  [udpTxMax][udpSegmentCmsgSpace]byte
}

func newUDPTxBatch() *udpTxBatch {
	return &udpTxBatch{flow: -1, arena: make([]byte, 1<<18)}
}

// udpQueueFrame queues the datagrams of a guest frame for flow i: the one
// payload, or the datagrams of a UDP super-frame, cut every gso_size bytes.
func (c *ctx) udpQueueFrame(i int, payload []byte) {
	if c.rxOff.gsoType != vnetGSOUDPL4 {
		c.udpQueue(i, payload)
		return
	}
	c.stats.udpSuperIn++
	seg := int(c.rxOff.gsoSize) // not 0: rxOffloadFits checked
	for len(payload) > seg {
		c.udpQueue(i, payload[:seg])
		payload = payload[seg:]
	}
	c.udpQueue(i, payload)
}

// udpQueue queues a datagram for flow i, sending what was queued for
// another flow (or what fills the batch) first.
func (c *ctx) udpQueue(i int, payload []byte) {
	b := c.udpTx
	if b.flow != i || b.n == udpTxMax || b.used+len(payload) > len(b.arena) {
		c.udpFlush()
	}
	if len(payload) > len(b.arena) {
		c.stats.udpDropped++
		return
	}
	b.flow = i
	copy(b.arena[b.used:], payload)
	b.used += len(payload)
	b.lens[b.n] = len(payload)
	b.n++
}

// udpFlush sends the queued datagrams to their flow's host peer.
func (c *ctx) udpFlush() {
	b := c.udpTx
	if b.n > 0 {
		f := c.flows.at(b.flow)
		if !f.dead && f.typ == flowUDP {
			c.countTraffic(f, false, b.used, b.n)
			c.udpSendQueued(f)
		}
	}
	b.flow, b.n, b.used = -1, 0, 0
}

// udpSendQueued sends the queued datagrams with sendmmsg, runs of them
// with UDP_SEGMENT unless the flow's socket refused it once (it does when
// a segment would not fit the path MTU, udp(7)): then they go one by one
// from the refused message on. As with udpSend, an error left by an
// earlier ICMP message fails once and is then cleared.
func (c *ctx) udpSendQueued(f *flow) {
	b := c.udpTx
	sock, to := c.udpDestination(f)
	m := b.pack(0, !f.udp.noGSO, to)
	retried := false
	for sent := 0; sent < m; {
		k, err := sendmmsg(sock, b.hdrs[sent:m])
		switch {
		case err == nil:
			sent += k
		case !retried && isICMPError(err):
			retried = true
		case b.hdrs[sent].Hdr.Controllen != 0 && segmentationRefused(err):
			f.udp.noGSO = true
			m, sent = b.pack(b.first[sent], false, to), 0
		default:
			c.stats.udpDropped += uint64(b.n - b.first[sent])
			if debugOn() {
				debugf("udp: flow %d: sending to %s: %v", f.index, f.udp.hostPeer.addrPort(), err)
			}
			return
		}
	}
}

// segmentationRefused tells whether a send failed because of its
// UDP_SEGMENT request (udp(7): EINVAL for a segment over the MTU or a
// kernel without it, EIO without checksum offload on the route).
func segmentationRefused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIO) || errors.Is(err, unix.EMSGSIZE)
}

// pack makes the messages for the queued datagrams from datagram from on,
// to the peer to (nil: the connected one), and returns how many: with gso,
// one per run that segmentRun finds, else one per datagram.
func (b *udpTxBatch) pack(from int, gso bool, to *rawSockaddr) int {
	off := 0
	for _, l := range b.lens[:from] {
		off += l
	}
	m := 0
	for k := from; k < b.n; m++ {
		run, total := 1, b.lens[k]
		if gso {
			run, total = b.segmentRun(k)
		}
		p := b.arena[off : off+total]
		b.iov[m] = unix.Iovec{Base: unsafe.SliceData(p), Len: uint64(len(p))}
		b.hdrs[m] = unix.Mmsghdr{Hdr: unix.Msghdr{Iov: &b.iov[m], Iovlen: 1}}
		if to != nil {
			b.hdrs[m].Hdr.Name, b.hdrs[m].Hdr.Namelen = (*byte)(unsafe.Pointer(&to.raw)), to.len
		}
		if run > 1 {
			putUDPSegmentCmsg(b.cmsg[m][:], b.lens[k])
			b.hdrs[m].Hdr.Control = &b.cmsg[m][0]
			b.hdrs[m].Hdr.SetControllen(udpSegmentCmsgSpace)
		}
		b.first[m] = k
		off += total
		k += run
	}
	return m
}

// segmentRun returns how many queued datagrams from k on one UDP_SEGMENT
// send can carry, and their bytes: those of the size of the first, then
// at most one shorter, since every segment but the last has gso_size bytes
// (udp(7)); an empty datagram goes alone.
func (b *udpTxBatch) segmentRun(k int) (int, int) {
	size := b.lens[k]
	total, j := size, k+1
	for size > 0 && j < b.n && j-k < udpGSOMaxSegs {
		l := b.lens[j]
		if l == 0 || l > size || total+l > udpGSOMaxBytes {
			break
		}
		total += l
		j++
		if l < size {
			break
		}
	}
	return j - k, total
}

// putUDPSegmentCmsg writes a UDP_SEGMENT control message asking for
// segments of size bytes.
func putUDPSegmentCmsg(b []byte, size int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = solUDP, udpSegment
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&b[unix.SizeofCmsghdr])) = uint16(size)
}

// udpBatchToGuest sends the n datagrams of the last batch read for flow f
// to the guest: as UDP super-frames where the tap takes them.
func (c *ctx) udpBatchToGuest(f *flow, n int) {
	for k := 0; k < n; {
		run, total := 1, 0
		if c.dev.offloadsUDP() {
			run, total = c.udpCoalesce(f, k, n)
		}
		if run == 1 {
			c.udpToGuest(f, k)
		} else {
			c.flows.touch(int(f.index), c.now)
			c.stats.udpSuperOut++
			c.countTraffic(f, true, total, run)
			c.sendUDPFrame(c.udpBufs.bufs[k], f, total, int(c.udpBufs.hdrs[k].Len))
		}
		k += run
	}
}

// udpCoalesce copies behind datagram k of the last batch the datagrams
// after it that one UDP super-frame to the guest can carry: those of the
// same size, then at most one shorter and not empty (an empty one would
// be lost in the cutting), up to a frame of 64 KiB. It returns how many
// datagrams the frame holds and their bytes.
func (c *ctx) udpCoalesce(f *flow, k, n int) (int, int) {
	u := c.udpBufs
	off := udpPayloadOffset(f.guestAddr())
	size := int(u.hdrs[k].Len)
	if size == 0 || !c.udpFitsGuest(f, size) {
		return 1, size
	}
	limit := min(udpSuperFrameMax(f.guestAddr()), len(u.bufs[k])-off)
	total, j := size, k+1
	for ; j < n && j-k < udpGSOMaxSegs; j++ {
		l := int(u.hdrs[j].Len)
		if l == 0 || l > size || total+l > limit {
			break
		}
		copy(u.bufs[k][off+total:], u.bufs[j][off:off+l])
		total += l
		if l < size {
			j++
			break
		}
	}
	return j - k, total
}

// udpSuperFrameMax is the most payload a UDP super-frame to the guest can
// carry: its IP length field holds the whole of it (RFC 791 section 3.1,
// RFC 8200 section 3).
func udpSuperFrameMax(family netip.Addr) int {
	if family.Is4() {
		return 65535 - ipv4HdrLen - udpHdrLen
	}
	return 65535 - udpHdrLen
}
