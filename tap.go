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
	// it, with what the device says of its segmentation in off. It returns
	// unix.EAGAIN when no frame is waiting.
	recv(buf []byte, off *rxOffload) ([]byte, error)
	// send writes the Ethernet frame buf[txHeadroom:], with the
	// offloads in off (nil: none) when the device supports them.
	send(buf []byte, off *txOffload) error
	// offloads tells whether send honours txOffload; if not, frames must
	// carry complete checksums and no segment may exceed the MTU.
	offloads() bool
	// offloadsUDP tells whether send also takes UDP super-frames
	// (vnetGSOUDPL4), which the guest's kernel cuts into datagrams.
	offloadsUDP() bool
}

// rxOffload is what the device tells of a frame from the guest: a
// super-frame of gsoType, to be cut into segments of gsoSize payload bytes.
type rxOffload struct {
	gsoType uint8 // vnetGSONone, vnetGSOTCPv4, vnetGSOTCPv6 or vnetGSOUDPL4
	gsoSize uint16
}

// txOffload asks the device to finish a frame: complete a partial checksum
// and/or cut a TCP or UDP super-frame into segments of gsoSize bytes.
type txOffload struct {
	csumStart  uint16 // where the checksummed part starts, from the Ethernet header
	csumOffset uint16 // where the checksum field is, from csumStart
	gsoType    uint8  // vnetGSONone, vnetGSOTCPv4, vnetGSOTCPv6 or vnetGSOUDPL4
	gsoSize    uint16 // payload bytes per segment
	hdrLen     uint16 // Ethernet, IP and TCP or UDP header bytes
}

// txHeadroom is reserved at the start of every transmit buffer.
const txHeadroom = 16

// virtio-net header (virtio spec 1.x, section 5.1.6 "struct virtio_net_hdr"),
// used by the tap when opened with IFF_VNET_HDR. We use the 10-byte legacy
// layout, which is the tap default.
const (
	vnetHdrLen          = 10
	vnetFlagNeedsCsum   = 1 // csum_start/csum_offset name a partial checksum
	vnetGSONone         = 0
	vnetGSOTCPv4        = 1
	vnetGSOTCPv6        = 4
	vnetGSOUDPL4        = 5    // VIRTIO_NET_HDR_GSO_UDP_L4: UDP segmentation (USO)
	vnetGSOECN          = 0x80 // VIRTIO_NET_HDR_GSO_ECN, a flag on the TCP types
	tunOffloadCsum      = 0x01 // TUN_F_CSUM: we accept partial checksums
	tunOffloadTSO4      = 0x02 // TUN_F_TSO4: we accept TCP/IPv4 super-segments
	tunOffloadTSO6      = 0x04 // TUN_F_TSO6: and TCP/IPv6 ones
	tunOffloadUSO4      = 0x20 // TUN_F_USO4: UDP/IPv4 super-frames (Linux 6.2)
	tunOffloadUSO6      = 0x40 // TUN_F_USO6: UDP/IPv6 ones; only with USO4
	tunDevicePath       = "/dev/net/tun"
	maxFrameWithVnetHdr = 65536 + vnetHdrLen + txHeadroom
	ifreqSize           = 40
	ifreqFlagsOffset    = unix.IFNAMSIZ
	tapNameDefault      = "tap0"
)

// tapIO is a tap device opened with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR.
type tapIO struct {
	tapFD int
	uso   bool // the kernel took TUN_F_USO4|TUN_F_USO6
}

// openTap creates (or attaches to) the tap device name in the current
// network namespace of the calling thread, with checksum, TSO and, where
// the kernel has them, USO offloads, and returns it non-blocking.
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
	uso, err := setTapOffloads(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting offloads on tap %s: %w", name, err)
	}
	return &tapIO{tapFD: fd, uso: uso}, nil
}

// setTapOffloads asks for checksum, TSO and USO offloads, and without USO
// when the kernel refuses it (before Linux 6.2, TUNSETOFFLOAD fails with
// EINVAL on flags it does not know). It tells whether USO was taken.
func setTapOffloads(fd int) (bool, error) {
	base := tunOffloadCsum | tunOffloadTSO4 | tunOffloadTSO6
	err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base|tunOffloadUSO4|tunOffloadUSO6)
	if err == nil {
		return true, nil
	}
	if debugOn() {
		debugf("tap: no UDP segmentation offload: %v", err)
	}
	return false, unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, base)
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

func (t *tapIO) fd() int { return t.tapFD }

// recv strips the virtio-net header. Checksum metadata can be ignored: pasta
// terminates TCP and UDP instead of forwarding frames, so a partial checksum
// is never passed on, and a TCP super-segment is simply a segment with more
// data. A UDP super-frame holds several datagrams: its segment size is
// returned in off.
func (t *tapIO) recv(buf []byte, off *rxOffload) ([]byte, error) {
	n, err := rawIO(unix.SYS_READ, t.tapFD, buf)
	if err != nil {
		return nil, err
	}
	if n < vnetHdrLen {
		return nil, errShortRead
	}
	*off = parseVnetHeader(buf[:vnetHdrLen])
	return buf[vnetHdrLen:n], nil
}

// parseVnetHeader reads the segmentation fields of a virtio-net header
// (virtio 1.x section 5.1.6).
func parseVnetHeader(hdr []byte) rxOffload {
	return rxOffload{gsoType: hdr[vnetOffGSOType], gsoSize: binary.NativeEndian.Uint16(hdr[vnetOffGSOSize:])}
}

// send prepends the virtio-net header describing the offloads.
func (t *tapIO) send(buf []byte, off *txOffload) error {
	hdr := buf[txHeadroom-vnetHdrLen : txHeadroom]
	clear(hdr)
	if off != nil {
		putVnetHeader(hdr, off)
	}
	_, err := rawIO(unix.SYS_WRITE, t.tapFD, buf[txHeadroom-vnetHdrLen:])
	return err
}

// rawIO is read(2) or write(2) on the tap, which is non-blocking: a raw
// system call, as the socket calls of the data path (sock.go).
func rawIO(call uintptr, fd int, p []byte) (int, error) {
	n, _, e := unix.RawSyscall(call, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func (t *tapIO) offloads() bool    { return true }
func (t *tapIO) offloadsUDP() bool { return t.uso }

// putVnetHeader fills a virtio-net header (virtio 1.x section 5.1.6.2:
// with NEEDS_CSUM the checksum field holds the pseudo-header sum and the
// device adds the rest from csum_start on).
func putVnetHeader(hdr []byte, off *txOffload) {
	if off.csumOffset != 0 {
		hdr[vnetOffFlags] = vnetFlagNeedsCsum
		binary.NativeEndian.PutUint16(hdr[vnetOffCsumStart:], off.csumStart)
		binary.NativeEndian.PutUint16(hdr[vnetOffCsumOffset:], off.csumOffset)
	}
	if off.gsoType != vnetGSONone {
		hdr[vnetOffGSOType] = off.gsoType
		binary.NativeEndian.PutUint16(hdr[vnetOffHdrLen:], off.hdrLen)
		binary.NativeEndian.PutUint16(hdr[vnetOffGSOSize:], off.gsoSize)
	}
}

// Offsets of the virtio-net header fields; multi-byte fields are in the
// host's byte order for the legacy header the tap uses by default.
const (
	vnetOffFlags      = 0
	vnetOffGSOType    = 1
	vnetOffHdrLen     = 2
	vnetOffGSOSize    = 4
	vnetOffCsumStart  = 6
	vnetOffCsumOffset = 8
)

var errShortRead = errors.New("short read from tap")

// packetIO is a frameIO over a SOCK_SEQPACKET or SOCK_DGRAM socket, used by
// tests in place of the tap: no device header, one frame per message.
type packetIO struct {
	sockFD int
}

func (p *packetIO) fd() int { return p.sockFD }

func (p *packetIO) recv(buf []byte, off *rxOffload) ([]byte, error) {
	n, err := unix.Read(p.sockFD, buf)
	if err != nil {
		return nil, err
	}
	*off = rxOffload{}
	return buf[:n], nil
}

func (p *packetIO) send(buf []byte, _ *txOffload) error {
	_, err := unix.Write(p.sockFD, buf[txHeadroom:])
	return err
}

func (p *packetIO) offloads() bool    { return false }
func (p *packetIO) offloadsUDP() bool { return false }
