package main

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ICMP and ICMPv6 echo through "ping" sockets (icmp(7): SOCK_DGRAM with
// IPPROTO_ICMP/IPPROTO_ICMPV6), which need no privilege, only a group in
// net.ipv4.ping_group_range. The kernel owns the echo identifier of such a
// socket (it is the socket's "port"), so requests go out with the socket's
// identifier and replies are rewritten back to the guest's.

const (
	pingTimeoutNS      = int64(60e9) // an echo flow without traffic for 60 s is closed
	icmpTypeEchoReply  = 0           // RFC 792
	icmpTypeEchoReq    = 8
	icmp6TypeEchoReq   = 128 // RFC 4443 section 4.1
	icmp6TypeEchoRep   = 129 // RFC 4443 section 4.2
	maxPingReadsPerRun = 64
)

// handleICMP4 forwards an IPv4 echo request from the guest.
func (c *ctx) handleICMP4() {
	p := c.parser
	tc := p.icmp4.TypeCode
	if tc.Type() != icmpTypeEchoReq || tc.Code() != 0 {
		c.stats.unsupported++
		return
	}
	c.forwardEcho(protoICMP, addrFrom4(p.ip4.SrcIP), addrFrom4(p.ip4.DstIP), p.icmp4.Id, p.icmp4.Contents, p.icmp4.Payload)
}

// handleICMP6 forwards an IPv6 echo request from the guest.
func (c *ctx) handleICMP6() {
	p := c.parser
	tc := p.icmp6.TypeCode
	if tc.Type() != icmp6TypeEchoReq || tc.Code() != 0 {
		c.stats.unsupported++
		return
	}
	c.forwardEcho(protoICMPv6, addrFrom16(p.ip6.SrcIP), addrFrom16(p.ip6.DstIP), p.echo6.Identifier, p.icmp6.Contents, p.icmp6.Payload)
}

// forwardEcho sends an echo request (header and payload as the guest sent
// them) through the flow's ping socket, creating the flow if needed.
func (c *ctx) forwardEcho(proto uint8, src, dst netip.Addr, id uint16, hdr, payload []byte) {
	if c.cfg.noICMP || !src.IsValid() || !dst.IsValid() {
		c.stats.icmpDropped++
		return
	}
	key := newFlowKey(proto, src, id, dst, 0)
	i, ok := c.flows.lookup(key)
	if !ok {
		if !c.admitNewFlow(nil) {
			return // waits for its turn, or dropped
		}
		if i, ok = c.newPingFlow(key, proto, src, dst, id); !ok {
			c.stats.icmpDropped++
			return
		}
	}
	c.flows.touch(i, c.now)
	f := c.flows.at(i)
	// The message goes out as the guest built it, straight from the frame
	// (the payload follows the header there); the kernel replaces the
	// identifier with the socket's and recomputes the checksum.
	msg := hdr[:len(hdr)+len(payload)]
	if _, err := unix.Write(f.sock, msg); err != nil {
		c.stats.icmpDropped++
		if debugOn() {
			debugf("ping: sending to %s: %v", f.peerAddr(), err)
		}
	}
}

// newPingFlow opens a ping socket connected to the mapped destination. The
// socket is bound to the guest's identifier when that is free, so that the
// identifier is kept on the wire too.
func (c *ctx) newPingFlow(key flowKey, proto uint8, src, dst netip.Addr, id uint16) (int, bool) {
	if !c.makeRoom(poolPing) {
		return 0, false
	}
	hostDst := c.mapDestination(netip.AddrPortFrom(dst, 0), protoICMP).Addr()
	sock, err := openPingSocket(proto, c.ipConfFor(dst), id, hostDst, c.linkScope())
	if err != nil {
		c.warnPing(err)
		return 0, false
	}
	i, ok := c.flows.alloc(flowPing, poolPing, key)
	if !ok {
		unix.Close(sock)
		c.warnRateLimited(warnTableFull, "flow table full: dropping echo request")
		return 0, false
	}
	f := &c.flows.flows[i]
	f.sock = sock
	if err := c.epollAdd(sock, unix.EPOLLIN, makeRef(kindPing, i)); err != nil {
		c.flows.kill(c, i)
		return 0, false
	}
	if debugOn() {
		debugf("ping: flow %d: %s id %d -> %s", i, src, id, hostDst)
	}
	return i, true
}

func openPingSocket(proto uint8, ic *ipConf, id uint16, dst netip.Addr, scope int) (int, error) {
	family, sproto := unix.AF_INET, unix.IPPROTO_ICMP
	if proto == protoICMPv6 {
		family, sproto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	sock, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, sproto)
	if err != nil {
		return -1, err
	}
	if ic.outIf != "" {
		if err := unix.BindToDevice(sock, ic.outIf); err != nil {
			unix.Close(sock)
			return -1, err
		}
	}
	if unix.Bind(sock, sockaddrOf(netip.AddrPortFrom(bindAddrFor(ic, dst), id))) != nil {
		// The identifier is taken: let the kernel pick one.
		if err := unix.Bind(sock, sockaddrOf(netip.AddrPortFrom(bindAddrFor(ic, dst), 0))); err != nil {
			unix.Close(sock)
			return -1, err
		}
	}
	var sa rawSockaddr
	sa.setScoped(netip.AddrPortFrom(dst, 0), scope)
	if err := connectRaw(sock, &sa); err != nil {
		unix.Close(sock)
		return -1, err
	}
	return sock, nil
}

// bindAddrFor returns the -o source address for a destination, or the
// unspecified address of its family.
func bindAddrFor(ic *ipConf, dst netip.Addr) netip.Addr {
	if ic.outAddr.IsValid() && !dst.IsLoopback() {
		return ic.outAddr
	}
	if dst.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// sockaddrOf converts an address and port for the unix package.
func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// warnPing explains ping socket failures once: EACCES means the group
// range sysctl excludes us.
func (c *ctx) warnPing(err error) {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		warnOnce(&c.warnedPing, "ICMP echo: can't open a ping socket (%v): net.ipv4.ping_group_range must include pasta's group", err)
		return
	}
	if debugOn() {
		debugf("ping: socket: %v", err)
	}
}

// pingReadable relays echo replies from a flow's socket to the guest.
func (c *ctx) pingReadable(i int, events uint32) {
	f := &c.flows.flows[i]
	if f.dead || f.typ != flowPing {
		return
	}
	for n := 0; n < maxPingReadsPerRun; n++ {
		length, err := unix.Read(f.sock, c.pktBuf)
		if err != nil {
			if !errors.Is(err, unix.EAGAIN) && debugOn() {
				debugf("ping: flow %d: %v", i, err)
			}
			return
		}
		c.flows.touch(i, c.now)
		c.sendEchoReply(f, c.pktBuf[:length])
	}
}

// sendEchoReply builds the frame for an echo reply read from a ping
// socket: from the peer as the guest addressed it, with the guest's own
// identifier.
func (c *ctx) sendEchoReply(f *flow, msg []byte) {
	if len(msg) < icmpHdrLen || len(msg) > c.mtu-ipv6HdrLen {
		return
	}
	replyType := byte(icmpTypeEchoReply)
	if f.key.proto == protoICMPv6 {
		replyType = icmp6TypeEchoRep
	}
	if msg[0] != replyType {
		return
	}
	fr := c.frame()
	c.putEthernet(fr, etherTypeFor(f.peerAddr()))
	hl := putIPHeader(fr[ethHdrLen:], f.peerAddr(), f.guestAddr(), f.key.proto, len(msg))
	m := fr[ethHdrLen+hl : ethHdrLen+hl+len(msg)]
	copy(m, msg)
	binary.BigEndian.PutUint16(m[4:6], f.guestPort())
	m[2], m[3] = 0, 0
	var sum uint16
	if f.key.proto == protoICMPv6 {
		sum = icmp6Checksum(f.peerAddr(), f.guestAddr(), m)
	} else {
		sum = checksum(m)
	}
	binary.BigEndian.PutUint16(m[2:4], sum)
	c.sendFrame(ethHdrLen + hl + len(msg))
}
