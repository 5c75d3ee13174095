package main

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Thin wrappers for the socket calls of the data path, made directly so
// that they allocate nothing (the unix package's generic versions may box
// socket addresses). Those that never block (MSG_DONTWAIT, or calls that
// never wait, like getsockopt) are raw system calls: Go's scheduler is not
// told of a call that returns within microseconds, which spares the
// runtime's bookkeeping on either side of every call of the loop
// (entersyscall, exitsyscall). connect, bind and accept4 keep the usual
// path: some of them run on blocking sockets at start-up.

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// sendNoSignal sends p on a connected socket without blocking and without
// SIGPIPE, and returns how much the socket took.
func sendNoSignal(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// recvFlags receives into p with flags (MSG_PEEK, ...) without blocking.
func recvFlags(fd int, p []byte, flags int) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(ptr), uintptr(len(p)),
		uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// discard drops n bytes from the head of a TCP socket's receive queue
// without copying them (MSG_TRUNC, tcp(7)).
func discard(fd int, n int) (int, error) {
	m, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), 0, uintptr(n),
		unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(m), nil
}

// recvmsgPeek peeks into the buffers of iov (MSG_PEEK).
func recvmsgPeek(fd int, iov []unix.Iovec) (int, error) {
	msg := unix.Msghdr{Iov: &iov[0], Iovlen: uint64(len(iov))}
	n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// getsockoptInt reads an integer socket option.
func getsockoptInt(fd, level, opt int) (int, error) {
	var v int32
	l := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
	return int(v), errnoErr(e)
}

// setsockoptInt sets an integer socket option.
func setsockoptInt(fd, level, opt, value int) error {
	v := int32(value)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&v)), 4, 0)
	return errnoErr(e)
}

// ioctlInt reads an integer through ioctl (SIOCOUTQ, ...).
func ioctlInt(fd int, req uint) (int, error) {
	var v int32
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&v)))
	return int(v), errnoErr(e)
}

// closeWithReset closes a TCP socket so that the peer gets a RST (SO_LINGER
// with a zero timeout, socket(7)).
func closeWithReset(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}

// rawSockaddr is a socket address in kernel form, built without allocating.
type rawSockaddr struct {
	raw unix.RawSockaddrInet6 // large enough for both families
	len uint32
}

func (r *rawSockaddr) set(ap netip.AddrPort) {
	a := ap.Addr()
	r.raw = unix.RawSockaddrInet6{}
	port := ap.Port()
	if a.Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.raw))
		sa.Family = unix.AF_INET
		sa.Port = htons(port)
		sa.Addr = a.As4()
		r.len = unix.SizeofSockaddrInet4
		return
	}
	r.raw.Family = unix.AF_INET6
	r.raw.Port = htons(port)
	r.raw.Addr = a.As16()
	r.len = unix.SizeofSockaddrInet6
}

// setScoped is set, with an interface (scope) for link-local addresses.
func (r *rawSockaddr) setScoped(ap netip.AddrPort, scope int) {
	r.set(ap)
	if ap.Addr().Is6() && ap.Addr().IsLinkLocalUnicast() {
		r.raw.Scope_id = uint32(scope)
	}
}

// addrPort converts a kernel socket address back.
func (r *rawSockaddr) addrPort() netip.AddrPort {
	switch r.raw.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.raw))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), htons(sa.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(r.raw.Addr).Unmap(), htons(r.raw.Port))
	}
	return netip.AddrPort{}
}

// htons converts between host and network byte order (both ways).
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// connectRaw starts a non-blocking connect.
func connectRaw(fd int, sa *rawSockaddr) error {
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)), uintptr(sa.len))
	return errnoErr(e)
}

// bindRaw binds a socket.
func bindRaw(fd int, sa *rawSockaddr) error {
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)), uintptr(sa.len))
	return errnoErr(e)
}

// acceptRaw accepts a connection, non-blocking, and returns the peer.
func acceptRaw(fd int, sa *rawSockaddr) (int, error) {
	sa.len = uint32(unsafe.Sizeof(sa.raw))
	n, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa.raw)),
		uintptr(unsafe.Pointer(&sa.len)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// isTemporary tells whether a socket error means "try later".
func isTemporary(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)
}

// sendDatagram sends a datagram on a connected socket, or to to.
func sendDatagram(fd int, p []byte, to *rawSockaddr) error {
	var base, name, nameLen uintptr
	if len(p) > 0 {
		base = uintptr(unsafe.Pointer(&p[0]))
	}
	if to != nil {
		name, nameLen = uintptr(unsafe.Pointer(&to.raw)), uintptr(to.len)
	}
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), base, uintptr(len(p)),
		unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, name, nameLen)
	return errnoErr(e)
}

// sendmmsg sends the datagrams of hdrs without blocking, and returns how
// many the socket took.
func sendmmsg(fd int, hdrs []unix.Mmsghdr) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])),
		uintptr(len(hdrs)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// recvmmsg receives up to len(hdrs) datagrams without blocking.
func recvmmsg(fd int, hdrs []unix.Mmsghdr) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])),
		uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// recvErrQueue reads one message from a socket's error queue (ip(7),
// IP_RECVERR): the original payload into p, and the extended error.
func recvErrQueue(fd int, p, ctrl []byte) (int, *unix.SockExtendedErr, error) {
	iov := unix.Iovec{Base: &p[0], Len: uint64(len(p))}
	msg := unix.Msghdr{Iov: &iov, Iovlen: 1, Control: &ctrl[0], Controllen: uint64(len(ctrl))}
	n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if e != 0 {
		return 0, nil, e
	}
	return int(n), extendedErr(ctrl[:msg.Controllen]), nil
}

// extendedErr finds the IP_RECVERR or IPV6_RECVERR control message.
func extendedErr(ctrl []byte) *unix.SockExtendedErr {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(ctrl) {
			return nil
		}
		data := ctrl[unix.CmsgLen(0):h.Len]
		if ((h.Level == unix.SOL_IP && h.Type == unix.IP_RECVERR) || (h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_RECVERR)) &&
			len(data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})) {
			return (*unix.SockExtendedErr)(unsafe.Pointer(&data[0]))
		}
		ctrl = ctrl[min(unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)), len(ctrl)):]
	}
	return nil
}

// connectResult tells how a non-blocking connect ended, from the epoll
// event that reported it: writable without an error or a hang-up means
// connected, with no system call; otherwise SO_ERROR says why (connect(2):
// EINPROGRESS, then writability and SO_ERROR; a failed connect also sets
// EPOLLERR and EPOLLHUP).
func connectResult(fd int, events uint32) error {
	if events&unix.EPOLLOUT != 0 && events&(unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		return nil
	}
	soErr, err := getsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soErr != 0 {
		return unix.Errno(soErr)
	}
	return nil
}
