package main

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// udpFromGuest sends a datagram from the guest's port to dst:dport.
func udpFromGuest(tp *testPasta, sport uint16, dst netip.Addr, dport uint16, payload []byte) {
	ip := ip4(testGuest4, dst, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = u.SetNetworkLayerForChecksum(ip)
	tp.inject(ethToUs(layers.EthernetTypeIPv4), ip, u, gopacket.Payload(payload))
}

// expectUDP reads the next UDP datagram pasta sends the guest.
func expectUDP(t *testing.T, tp *testPasta) (*layers.IPv4, *layers.UDP) {
	t.Helper()
	pkt := tp.expectPacket()
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	u, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if ip == nil || u == nil {
		t.Fatalf("not a UDP datagram: %v", pkt)
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	if foldChecksum(sumBytes(ip.Payload, pseudoHeaderSum(src, dst, protoUDP, len(ip.Payload)))) != 0 {
		t.Fatalf("bad UDP checksum")
	}
	return ip, u
}

// udpEchoServer answers every datagram on 127.0.0.1 with "echo:" + data.
func udpEchoServer(t *testing.T) (*net.UDPConn, uint16) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 70000)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteToUDP(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	return conn, uint16(conn.LocalAddr().(*net.UDPAddr).Port)
}

func TestUDPDatagramAndReply(t *testing.T) {
	_, port := udpEchoServer(t)
	tp := newTestPasta(t, nil)
	for _, size := range []int{1, 1472, 8000, 65000} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		udpFromGuest(tp, 5000, testGW4, port, payload)
		ip, u := expectUDP(t, tp)
		if !ip.SrcIP.Equal(testGW4.AsSlice()) || uint16(u.SrcPort) != port || u.DstPort != 5000 {
			t.Fatalf("%d bytes: reply %s:%d -> :%d", size, ip.SrcIP, u.SrcPort, u.DstPort)
		}
		if !bytes.Equal(u.Payload, append([]byte("echo:"), payload...)) {
			t.Fatalf("%d bytes: reply payload of %d bytes differs", size, len(u.Payload))
		}
	}
	if n := tp.c.flows.used(); n != 1 {
		t.Fatalf("%d flows for one guest port and peer, want 1", n)
	}
}

func TestUDPFlowTimesOut(t *testing.T) {
	_, port := udpEchoServer(t)
	tp := newTestPasta(t, nil)
	udpFromGuest(tp, 5001, testGW4, port, []byte("x"))
	expectUDP(t, tp)
	tp.c.now += udpTimeoutNS / 2
	udpFromGuest(tp, 5001, testGW4, port, []byte("y")) // traffic resets the timer
	expectUDP(t, tp)
	tp.c.now += udpTimeoutNS - 1
	tp.c.housekeeping()
	tp.c.flows.sweep(tp.c)
	if tp.c.flows.used() != 1 {
		t.Fatalf("flow expired before 180 s without traffic")
	}
	tp.c.now += 2
	tp.c.housekeeping()
	tp.c.flows.sweep(tp.c)
	if tp.c.flows.used() != 0 {
		t.Fatalf("flow still there 180 s after the last datagram")
	}
}

func TestUDPPortUnreachableBecomesICMP(t *testing.T) {
	conn, port := udpEchoServer(t)
	conn.Close() // the port is closed now: the host answers port unreachable
	tp := newTestPasta(t, nil)
	payload := []byte("anybody there?")
	udpFromGuest(tp, 5002, testGW4, port, payload)
	pkt := tp.expectPacket()
	icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok {
		t.Fatalf("no ICMP error: %v", pkt)
	}
	if icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort) {
		t.Fatalf("ICMP %v, want port unreachable", icmp.TypeCode)
	}
	if checksum(icmp.Contents) != 0 && checksum(append(append([]byte(nil), icmp.Contents...), icmp.Payload...)) != 0 {
		t.Fatalf("bad ICMP checksum")
	}
	// RFC 792: the quote is the guest's datagram, headers first.
	quoted := gopacket.NewPacket(icmp.Payload, layers.LayerTypeIPv4, gopacket.Default)
	qip, _ := quoted.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	qudp, _ := quoted.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if qip == nil || qudp == nil {
		t.Fatalf("quote does not hold the datagram: %x", icmp.Payload)
	}
	if !qip.SrcIP.Equal(testGuest4.AsSlice()) || !qip.DstIP.Equal(testGW4.AsSlice()) || qudp.SrcPort != 5002 || uint16(qudp.DstPort) != port {
		t.Fatalf("quote %s:%d -> %s:%d", qip.SrcIP, qudp.SrcPort, qip.DstIP, qudp.DstPort)
	}
	if !bytes.Equal(qudp.Payload, payload) {
		t.Fatalf("quoted payload %q", qudp.Payload)
	}
}

func TestUDPInboundForwarding(t *testing.T) {
	// With --no-splice a local client takes the tap, like a remote one.
	tp := newTestPasta(t, func(c *config) { c.noSplice = true })
	client := sendToForwardedUDPPort(t, tp, 7000, "query")
	time.Sleep(10 * time.Millisecond)
	ip, u := expectUDP(t, tp)
	clientPort := uint16(client.LocalAddr().(*net.UDPAddr).Port)
	// A client on the host's loopback appears as the gateway (map-gw).
	if !ip.SrcIP.Equal(testGW4.AsSlice()) || uint16(u.SrcPort) != clientPort || !ip.DstIP.Equal(testGuest4.AsSlice()) || u.DstPort != 7000 {
		t.Fatalf("forwarded datagram %s:%d -> %s:%d", ip.SrcIP, u.SrcPort, ip.DstIP, u.DstPort)
	}
	if string(u.Payload) != "query" {
		t.Fatalf("payload %q", u.Payload)
	}
	// The guest's reply goes back to the client, from the forwarded port.
	rip := ip4(testGuest4, testGW4, layers.IPProtocolUDP)
	ru := &layers.UDP{SrcPort: 7000, DstPort: layers.UDPPort(clientPort)}
	_ = ru.SetNetworkLayerForChecksum(rip)
	tp.inject(ethToUs(layers.EthernetTypeIPv4), rip, ru, gopacket.Payload("answer"))
	_ = client.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	n, err := client.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("client got %q, %v", buf[:n], err)
	}
}

// sendToForwardedUDPPort binds a -u port on the host's loopback for tp,
// forwarded to target, and sends payload to it from a client on the
// loopback, which it returns.
func sendToForwardedUDPPort(t *testing.T, tp *testPasta, target uint16, payload string) *net.UDPConn {
	t.Helper()
	li, err := tp.c.openListener(dirUDP, netip.AddrPortFrom(loopback4, 0), "", netip.AddrPortFrom(netip.Addr{}, target))
	if err != nil {
		t.Fatal(err)
	}
	port := boundPort(t, tp.c.listeners[li].fd)
	client, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if _, err := client.Write([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	return client
}

// boundPort returns the local port of a socket.
func boundPort(t *testing.T, fd int) uint16 {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(a.Port)
	case *unix.SockaddrInet6:
		return uint16(a.Port)
	}
	t.Fatalf("unexpected socket address %T", sa)
	return 0
}
