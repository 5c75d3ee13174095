package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The auto scan (fwd.go) asks the kernel which ports are bound on a side
// through sock_diag (sock_diag(7)): a netlink dump of the sockets of one
// family and protocol, in the states it names. For TCP, asking for
// listening sockets only makes the kernel walk its listening hash alone,
// and for UDP it walks the UDP table once; the /proc/net tables instead
// list every socket of the namespace (a guest's 20,000 connections, or
// pasta's own flows on the host), and each read of them walks the
// kernel's tables from their start again, which made the scan cost pasta
// a large part of its time, once a second, during a storm of connections.
// Kernels without sock_diag for TCP or UDP (CONFIG_INET_TCP_DIAG,
// CONFIG_INET_UDP_DIAG) fall back on the /proc/net tables.

const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY, linux/sock_diag.h
	nlmsgHdrLen      = 16 // struct nlmsghdr
	inetDiagReqLen   = 56 // struct inet_diag_req_v2, linux/inet_diag.h
	inetDiagMsgSport = 4  // offset of id.idiag_sport (big-endian) in struct inet_diag_msg
	tcpStateListen   = 10 // TCP_LISTEN, linux/tcp_states.h
	tcpStateClose    = 7  // TCP_CLOSE: for UDP, bound and not connected
	diagTimeoutUS    = 100000
)

// openSockDiag opens a sock_diag socket in the calling thread's network
// namespace, whose dumps then describe that namespace, and checks that
// the kernel dumps TCP and UDP sockets through it.
func openSockDiag(buf []byte) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, err
	}
	// A dump is made while we read it; should the kernel stall, the scan
	// gives up rather than block the loop.
	tv := unix.Timeval{Usec: diagTimeoutUS}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	var probe portSet
	seq := uint32(0)
	for _, proto := range []uint8{protoTCP, protoUDP} {
		for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
			seq++
			if err := diagPorts(fd, buf, seq, family, proto, &probe); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("%s, family %d: %w", protoName(proto), family, err)
			}
		}
	}
	return fd, nil
}

// diagPorts adds to ports the local ports of the listening TCP sockets,
// or of the bound and unconnected UDP sockets, of one family, from a dump
// on the sock_diag socket fd read into buf. seq tells this dump's
// messages from any left by an earlier one that failed.
func diagPorts(fd int, buf []byte, seq uint32, family uint8, proto uint8, ports *portSet) error {
	state := tcpStateListen
	if proto == protoUDP {
		state = tcpStateClose
	}
	var req [nlmsgHdrLen + inetDiagReqLen]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))                   // nlmsg_len
	ne.PutUint16(req[4:], sockDiagByFamily)                   // nlmsg_type
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP) // nlmsg_flags
	ne.PutUint32(req[8:], seq)                                // nlmsg_seq
	req[nlmsgHdrLen], req[nlmsgHdrLen+1] = family, proto      // sdiag_family, sdiag_protocol
	ne.PutUint32(req[nlmsgHdrLen+4:], 1<<state)               // idiag_states
	if _, err := unix.Write(fd, req[:]); err != nil {
		return err
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
		if e != 0 {
			return e
		}
		done, err := diagMessages(buf[:n], seq, uint8(state), ports)
		if done || err != nil {
			return err
		}
	}
}

// diagMessages reads the netlink messages of one read of a dump: it adds
// the ports of the sockets in state, and tells whether the dump is over.
func diagMessages(b []byte, seq uint32, state uint8, ports *portSet) (bool, error) {
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		size := int(ne.Uint32(b[0:]))
		if size < nlmsgHdrLen || size > len(b) {
			return true, errors.New("sock_diag: truncated message")
		}
		typ, msgSeq, payload := ne.Uint16(b[4:]), ne.Uint32(b[8:]), b[nlmsgHdrLen:size]
		b = b[min((size+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
		switch {
		case msgSeq != seq:
			// left from an earlier dump
		case typ == unix.NLMSG_DONE:
			return true, nil
		case typ == unix.NLMSG_ERROR:
			if len(payload) >= 4 {
				if e := int32(ne.Uint32(payload)); e < 0 {
					return true, unix.Errno(-e)
				}
			}
			return true, errors.New("sock_diag: error")
		case len(payload) >= inetDiagMsgSport+2 && payload[1] == state:
			if port := binary.BigEndian.Uint16(payload[inetDiagMsgSport:]); port != 0 {
				ports.add(int(port))
			}
		}
	}
	return false, nil
}
