package main

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// FuzzTCPSegment throws segments with arbitrary flags, sequence and
// acknowledgement numbers, windows and payloads at an established
// connection. pasta must not panic, must keep at most that one flow, and
// whatever it sends must be well-formed.
func FuzzTCPSegment(f *testing.F) {
	f.Add(uint8(tcpFlagACK), uint32(0), uint32(0), uint16(65535), []byte("data"))
	f.Add(uint8(tcpFlagACK|tcpFlagFIN), uint32(0), uint32(0), uint16(0), []byte{})
	f.Add(uint8(tcpFlagRST), uint32(0), uint32(0), uint16(0), []byte{})
	f.Add(uint8(tcpFlagSYN), uint32(1<<31), uint32(7), uint16(1), []byte{})
	f.Add(uint8(tcpFlagACK), uint32(1<<31), uint32(1<<31), uint16(100), make([]byte, 3000))
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				_, _ = c.Write([]byte("server data"))
				buf := make([]byte, 1<<16)
				for {
					if _, err := c.Read(buf); err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	tp := newTestPasta(f, nil)
	f.Fuzz(func(t *testing.T, flags uint8, seqOff, ackOff uint32, window uint16, payload []byte) {
		tp.t = t
		g := newTCPGuest(t, tp, port)
		key := newFlowKey(protoTCP, testGuest4, g.port, testGW4, port)
		i, ok := tp.c.flows.lookup(key)
		if !ok {
			g.handshake()
			if i, ok = tp.c.flows.lookup(key); !ok {
				t.Fatal("handshake left no flow")
			}
		}
		fl := tp.c.flows.at(i)
		tcp := &layers.TCP{SrcPort: layers.TCPPort(g.port), DstPort: layers.TCPPort(port),
			Seq: fl.tcp.rcvNxt + seqOff, Ack: fl.tcp.sndUna + ackOff, Window: window,
			FIN: flags&tcpFlagFIN != 0, SYN: flags&tcpFlagSYN != 0, RST: flags&tcpFlagRST != 0,
			PSH: flags&tcpFlagPSH != 0, ACK: flags&tcpFlagACK != 0}
		ip := ip4(testGuest4, testGW4, layers.IPProtocolTCP)
		_ = tcp.SetNetworkLayerForChecksum(ip)
		tp.c.handleFrame(serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload)))
		_ = tp.c.runOnce(0)
		if n := tp.c.flows.used(); n > 1 {
			t.Fatalf("%d flows for one connection", n)
		}
		for {
			out := tp.readFrame(0)
			if out == nil {
				break
			}
			if p := gopacket.NewPacket(out, layers.LayerTypeEthernet, gopacket.Default); p.ErrorLayer() != nil {
				t.Fatalf("pasta sent a malformed frame: %v", p.ErrorLayer().Error())
			}
		}
	})
}

// FuzzUDP sends datagrams with arbitrary ports and payloads: no panic, at
// most one new flow per datagram, and no flow when the port is 0.
func FuzzUDP(f *testing.F) {
	f.Add(uint16(5000), uint16(53), []byte("query"))
	f.Add(uint16(0), uint16(0), []byte{})
	f.Add(uint16(68), uint16(67), make([]byte, 300))
	tp := newTestPasta(f, nil)
	f.Fuzz(func(t *testing.T, sport, dport uint16, payload []byte) {
		tp.t = t
		before := tp.c.flows.used()
		udpFromGuest(tp, sport, testGW4, dport, payload)
		if n := tp.c.flows.used(); n > before+1 {
			t.Fatalf("one datagram made %d flows", n-before)
		}
		for tp.readFrame(0) != nil {
		}
		for i := tp.c.flows.nextUsed(0); i >= 0; i = tp.c.flows.nextUsed(i + 1) {
			tp.c.flows.kill(tp.c, i)
		}
		tp.c.flows.sweep(tp.c)
	})
}

// The TCP data path allocates nothing per segment: guest data to the
// socket, socket data to the guest, and the guest's ACKs.
func TestTCPDataPathAllocatesNothing(t *testing.T) {
	tp, g, host, _ := connectGuest(t, nil)
	port := g.peerPort
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, err := host.Read(buf); err != nil {
				return
			}
		}
	}()
	raw, err := host.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var hostFD int
	_ = raw.Control(func(fd uintptr) { hostFD = int(fd) })

	// A guest data segment and an ACK, patched in place for each round.
	ip := ip4(testGuest4, testGW4, layers.IPProtocolTCP)
	dataSeg := &layers.TCP{SrcPort: layers.TCPPort(g.port), DstPort: layers.TCPPort(port), ACK: true, PSH: true, Window: 65535}
	_ = dataSeg.SetNetworkLayerForChecksum(ip)
	data := serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, dataSeg, gopacket.Payload(make([]byte, 1000)))
	ackSeg := &layers.TCP{SrcPort: layers.TCPPort(g.port), DstPort: layers.TCPPort(port), ACK: true, Window: 65535}
	_ = ackSeg.SetNetworkLayerForChecksum(ip)
	ack := serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, ackSeg)
	tcpOff := ethHdrLen + ipv4HdrLen
	chunk := make([]byte, 1000)
	out := make([]byte, 1<<17)
	fl := tp.c.flows.at(0)
	round := func() {
		binary.BigEndian.PutUint32(data[tcpOff+4:], fl.tcp.rcvNxt)
		binary.BigEndian.PutUint32(data[tcpOff+8:], fl.tcp.sndNxt)
		tp.c.handleFrame(data)
		tp.c.tcpFlushAcks()
		if _, err := rawWrite(hostFD, chunk); err != nil {
			t.Fatal(err)
		}
		_ = tp.c.runOnce(10)
		for {
			if _, err := rawRead(tp.peer, out); err != nil {
				break
			}
		}
		binary.BigEndian.PutUint32(ack[tcpOff+4:], fl.tcp.rcvNxt)
		binary.BigEndian.PutUint32(ack[tcpOff+8:], fl.tcp.sndNxt)
		tp.c.handleFrame(ack)
	}
	round()
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Fatalf("%v allocations per round of TCP data both ways", n)
	}
	if fl.tcp.sndNxt == fl.tcp.iss+1 || fl.tcp.rcvNxt == uint32(g.seq) {
		t.Fatalf("no data moved: sndNxt %d rcvNxt %d", fl.tcp.sndNxt-fl.tcp.iss, fl.tcp.rcvNxt)
	}
}
