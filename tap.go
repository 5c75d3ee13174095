package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Frames travel between the namespace and the event loop through a
// frameIO: the tap device in production, one end of a socketpair in tests.
// Every frame is one read or write. Buffers handed to send start with
// txHeadroom reserved bytes, so that a device header (virtio-net) can be
// put in front of the Ethernet frame without copying it.
type frameIO interface {
	fd() int
	// recv reads one frame into buf and returns the Ethernet frame inside
	// it. It returns unix.EAGAIN when no frame is waiting.
	recv(buf []byte) ([]byte, error)
	// send writes the Ethernet frame buf[txHeadroom:].
	send(buf []byte) error
}

// txHeadroom is reserved at the start of every transmit buffer.
const txHeadroom = 16

// virtio-net header (virtio spec 1.x, section 5.1.6 "struct virtio_net_hdr"),
// used by the tap when opened with IFF_VNET_HDR. We use the 10-byte legacy
// layout, which is the tap default.
const (
	vnetHdrLen           = 10
	vnetFlagNeedsCsum    = 1 // csum_start/csum_offset name a partial checksum
	vnetFlagDataValid    = 2 // the receiver need not verify checksums
	vnetGSONone          = 0
	vnetGSOTCPv4         = 1
	vnetGSOTCPv6         = 4
	vnetOffFlags         = 0
	vnetOffGSOType       = 1
	vnetOffHdrLen        = 2
	vnetOffGSOSize       = 4
	vnetOffCsumStart     = 6
	vnetOffCsumOffset    = 8
	tunOffloadCsum       = 0x01 // TUN_F_CSUM: we accept partial checksums
	tunOffloadTSO4       = 0x02 // TUN_F_TSO4: we accept TCP/IPv4 super-segments
	tunOffloadTSO6       = 0x04 // TUN_F_TSO6: and TCP/IPv6 ones
	tunDevicePath        = "/dev/net/tun"
	maxFrameWithVnetHdr  = 65536 + vnetHdrLen + txHeadroom
	ifreqSize            = 40
	ifreqFlagsOffset     = unix.IFNAMSIZ
	tapNameDefault       = "tap0"
	tapTxQueueLenDefault = 1000
)

// tapIO is a tap device opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR.
type tapIO struct {
	tapFD int
}

// openTap creates (or attaches to) the tap device name in the current
// network namespace of the calling thread, with checksum and TSO offloads,
// and returns it non-blocking.
func openTap(name string) (*tapIO, error) {
	fd, err := unix.Open(tunDevicePath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("can't open %s: %w (rootless pasta needs it mode 0666)", tunDevicePath, err)
		}
		return nil, fmt.Errorf("can't open %s: %w", tunDevicePath, err)
	}
	var ifr [ifreqSize]byte
	copy(ifr[:unix.IFNAMSIZ-1], name)
	binary.NativeEndian.PutUint16(ifr[ifreqFlagsOffset:], unix.IFF_TAP|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
	if err := ioctlPtr(fd, unix.TUNSETIFF, unsafe.Pointer(&ifr[0])); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("creating tap %s: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunOffloadCsum|tunOffloadTSO4|tunOffloadTSO6); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting offloads on tap %s: %w", name, err)
	}
	return &tapIO{tapFD: fd}, nil
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

func (t *tapIO) fd() int { return t.tapFD }

// recv strips the virtio-net header. Checksum and segmentation metadata can
// be ignored: pasta terminates TCP and UDP instead of forwarding frames, so
// a partial checksum or a super-segment is simply a segment with more data.
func (t *tapIO) recv(buf []byte) ([]byte, error) {
	n, err := unix.Read(t.tapFD, buf)
	if err != nil {
		return nil, err
	}
	if n < vnetHdrLen {
		return nil, errShortRead
	}
	return buf[vnetHdrLen:n], nil
}

// send prepends a zero virtio-net header: no offload requested.
func (t *tapIO) send(buf []byte) error {
	hdr := buf[txHeadroom-vnetHdrLen : txHeadroom]
	clear(hdr)
	_, err := unix.Write(t.tapFD, buf[txHeadroom-vnetHdrLen:])
	return err
}

var errShortRead = errors.New("short read from tap")

// packetIO is a frameIO over a SOCK_SEQPACKET or SOCK_DGRAM socket, used by
// tests in place of the tap: no device header, one frame per message.
type packetIO struct {
	sockFD int
}

func (p *packetIO) fd() int { return p.sockFD }

func (p *packetIO) recv(buf []byte) ([]byte, error) {
	n, err := unix.Read(p.sockFD, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func (p *packetIO) send(buf []byte) error {
	_, err := unix.Write(p.sockFD, buf[txHeadroom:])
	return err
}
