// Command portcheck is the server of test/podman's forwarding matrix. It
// runs inside a container (built statically, mounted into the busybox
// image) and listens on every TCP and UDP port it is given, on [::]
// (IPv4 and IPv6). For each client it reads everything the client sends,
// then answers with one line:
//
//	PEER PORT LENGTH SHA256
//
// PEER is the client's address as the container sees it, PORT the
// container port that received the data, LENGTH and SHA256 those of the
// bytes received. A TCP client's data ends when it shuts down its sending
// side; a UDP client's ends with an empty datagram (its datagrams before
// that are concatenated), and the answer is one datagram to the sender.
//
// Usage: portcheck -tcp PORTS -udp PORTS, with PORTS like 80,8000-8003.
// It prints "ready" once every socket is bound, then serves until killed.
package main

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// sessionTimeout bounds a TCP connection and an unfinished UDP session.
const sessionTimeout = 60 * time.Second

func main() {
	tcpPorts := flag.String("tcp", "", "TCP ports to serve (80,8000-8003)")
	udpPorts := flag.String("udp", "", "UDP ports to serve")
	flag.Parse()
	tcp, err := parsePorts(*tcpPorts)
	if err != nil {
		log.Fatalf("-tcp: %v", err)
	}
	udp, err := parsePorts(*udpPorts)
	if err != nil {
		log.Fatalf("-udp: %v", err)
	}
	for _, p := range tcp {
		ln, err := net.Listen("tcp", fmt.Sprintf("[::]:%d", p))
		if err != nil {
			log.Fatal(err)
		}
		go serveTCP(ln, p)
	}
	for _, p := range udp {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{Port: p})
		if err != nil {
			log.Fatal(err)
		}
		go serveUDP(pc, p)
	}
	fmt.Println("ready")
	select {}
}

// parsePorts reads "80,8000-8003".
func parsePorts(s string) ([]int, error) {
	var ports []int
	if s == "" {
		return nil, nil
	}
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
			return nil, fmt.Errorf("bad port item %q", item)
		}
		for p := a; p <= b; p++ {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// answer is the line sent back for what a client sent.
func answer(peer netip.Addr, port int, n int64, h hash.Hash) string {
	return fmt.Sprintf("%s %d %d %x\n", peer.Unmap(), port, n, h.Sum(nil))
}

func serveTCP(ln net.Listener, port int) {
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(sessionTimeout))
			h := sha256.New()
			n, err := io.Copy(h, c)
			if err != nil {
				log.Printf("tcp %d: %v", port, err)
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
			if _, err := io.WriteString(c, answer(peer, port, n, h)); err != nil {
				log.Printf("tcp %d: answer to %s: %v", port, peer, err)
			}
		}()
	}
}

type udpSession struct {
	h     hash.Hash
	n     int64
	start time.Time
}

func serveUDP(pc *net.UDPConn, port int) {
	sessions := map[netip.AddrPort]*udpSession{}
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Printf("udp %d: %v", port, err)
			continue
		}
		s := sessions[from]
		if s == nil {
			// Forget sessions whose end never came (bounded memory).
			for k, old := range sessions {
				if time.Since(old.start) > sessionTimeout {
					delete(sessions, k)
				}
			}
			s = &udpSession{h: sha256.New(), start: time.Now()}
			sessions[from] = s
		}
		if n > 0 {
			s.h.Write(buf[:n])
			s.n += int64(n)
			continue
		}
		delete(sessions, from)
		if _, err := pc.WriteToUDPAddrPort([]byte(answer(from.Addr(), port, s.n, s.h)), from); err != nil {
			fmt.Fprintf(os.Stderr, "udp %d: answer to %s: %v\n", port, from, err)
		}
	}
}
