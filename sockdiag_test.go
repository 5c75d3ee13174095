package main

import (
	"encoding/binary"
	"net"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// sock_diag finds this process's listening TCP socket and bound UDP
// socket, of both families, and neither a connected UDP socket nor an
// established TCP connection.
func TestSockDiagFindsBoundPorts(t *testing.T) {
	buf := make([]byte, 1<<16)
	fd, err := openSockDiag(buf)
	if err != nil {
		skipOrFail(t, "no sock_diag in this kernel: "+err.Error())
	}
	defer unix.Close(fd)
	tl, tport := listenLoopback(t)
	defer runtime.KeepAlive(tl)
	conn, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	u4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u4.Close()
	u6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer u6.Close()
	connected, err := net.DialUDP("udp4", nil, u4.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()

	scan := func(family, proto uint8) portSet {
		var ports portSet
		if err := diagPorts(fd, buf, 7, family, proto, &ports); err != nil {
			t.Fatalf("family %d protocol %d: %v", family, proto, err)
		}
		return ports
	}
	tcp4, udp4, udp6 := scan(unix.AF_INET, protoTCP), scan(unix.AF_INET, protoUDP), scan(unix.AF_INET6, protoUDP)
	clientPort := conn.LocalAddr().(*net.TCPAddr).Port
	for _, c := range []struct {
		what  string
		ports portSet
		port  int
		want  bool
	}{
		{"listening TCP/IPv4", tcp4, int(tport), true},
		{"established TCP/IPv4 (the client)", tcp4, clientPort, false},
		{"bound UDP/IPv4", udp4, u4.LocalAddr().(*net.UDPAddr).Port, true},
		{"bound UDP/IPv6", udp6, u6.LocalAddr().(*net.UDPAddr).Port, true},
		{"connected UDP/IPv4", udp4, connected.LocalAddr().(*net.UDPAddr).Port, false},
	} {
		if c.ports.has(c.port) != c.want {
			t.Errorf("%s port %d found: %v, want %v", c.what, c.port, !c.want, c.want)
		}
	}
}

// Messages of another dump are skipped, truncated ones end the dump with
// an error, and an error message gives its errno.
func TestSockDiagMessages(t *testing.T) {
	msg := func(typ uint16, seq uint32, payload []byte) []byte {
		b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(payload)+3)
		binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+len(payload)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		binary.NativeEndian.PutUint32(b[8:], seq)
		b = append(b, payload...)
		for len(b)%unix.NLMSG_ALIGNTO != 0 {
			b = append(b, 0)
		}
		return b
	}
	sock := func(state uint8, port uint16) []byte {
		p := make([]byte, 72) // struct inet_diag_msg
		p[0], p[1] = unix.AF_INET, state
		binary.BigEndian.PutUint16(p[inetDiagMsgSport:], port)
		return p
	}
	var stream []byte
	stream = append(stream, msg(sockDiagByFamily, 9, sock(tcpStateListen, 1111))...) // another dump
	stream = append(stream, msg(sockDiagByFamily, 5, sock(tcpStateListen, 2222))...)
	stream = append(stream, msg(sockDiagByFamily, 5, sock(1, 3333))...) // established: not asked for
	var ports portSet
	done, err := diagMessages(stream, 5, tcpStateListen, &ports)
	if done || err != nil || ports.has(1111) || !ports.has(2222) || ports.has(3333) {
		t.Fatalf("done %v, error %v, ports %s: want 2222 only, not done", done, err, portRanges(&ports, 1, maxPort))
	}
	if done, err := diagMessages(msg(unix.NLMSG_DONE, 5, make([]byte, 4)), 5, tcpStateListen, &ports); !done || err != nil {
		t.Fatalf("NLMSG_DONE: done %v, error %v", done, err)
	}
	errno := make([]byte, 4)
	binary.NativeEndian.PutUint32(errno, ^uint32(unix.ENOENT)+1) // -ENOENT
	if done, err := diagMessages(msg(unix.NLMSG_ERROR, 5, errno), 5, tcpStateListen, &ports); !done || err != unix.ENOENT {
		t.Fatalf("NLMSG_ERROR: done %v, error %v, want ENOENT", done, err)
	}
	truncated := msg(sockDiagByFamily, 5, sock(tcpStateListen, 4444))[:30]
	if done, err := diagMessages(truncated, 5, tcpStateListen, &ports); !done || err == nil {
		t.Fatalf("truncated message: done %v, error %v", done, err)
	}
}
