package main

import (
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// udpFrame is a guest datagram from sport to dport of the gateway (the
// host's loopback), carrying payload.
func udpFrame(t testing.TB, sport, dport uint16, payload string) []byte {
	ip := ip4(testGuest4, testGW4, layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, u, gopacket.Payload(payload))
}

// udpReceivers binds n UDP sockets on the host's loopback.
func udpReceivers(t *testing.T, n int) []*net.UDPConn {
	t.Helper()
	rs := make([]*net.UDPConn, n)
	for i := range rs {
		r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		rs[i] = r
	}
	return rs
}

// received reads what a receiver has, without waiting long.
func received(t *testing.T, r *net.UDPConn) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 64)
	for {
		_ = r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := r.Read(buf)
		if err != nil {
			return got
		}
		got = append(got, string(buf[:n]))
	}
}

// A wakeup sets up admitPerWakeup new flows; the guest's other new flows
// wait in the queue, in order, while a datagram of a flow that exists
// goes through in the same wakeup; the next wakeup sets up the rest.
func TestAdmissionBoundsSetUpsPerWakeup(t *testing.T) {
	const n = admitPerWakeup + 36
	rs := udpReceivers(t, n)
	tp := newTestPasta(t, nil)
	port := func(i int) uint16 { return uint16(rs[i].LocalAddr().(*net.UDPAddr).Port) }
	for i := range n {
		if _, err := unix.Write(tp.peer, udpFrame(t, 5000, port(i), "first")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := unix.Write(tp.peer, udpFrame(t, 5000, port(0), "second")); err != nil {
		t.Fatal(err)
	}
	if err := tp.c.runOnce(100); err != nil {
		t.Fatal(err)
	}
	if used, queued := tp.c.flows.used(), tp.c.admit.n; used != admitPerWakeup || queued != n-admitPerWakeup {
		t.Fatalf("after one wakeup: %d flows, %d frames queued; want %d and %d", used, queued, admitPerWakeup, n-admitPerWakeup)
	}
	if got := received(t, rs[0]); len(got) != 2 || got[1] != "second" {
		t.Fatalf("the first flow's receiver got %q, want both datagrams at once", got)
	}
	if got := received(t, rs[n-1]); len(got) != 0 {
		t.Fatalf("the last flow's datagram went out before its turn: %q", got)
	}
	if err := tp.c.runOnce(0); err != nil {
		t.Fatal(err)
	}
	if used, queued := tp.c.flows.used(), tp.c.admit.n; used != n || queued != 0 {
		t.Fatalf("after two wakeups: %d flows, %d frames queued; want %d and 0", used, queued, n)
	}
	for i := admitPerWakeup; i < n; i++ {
		if got := received(t, rs[i]); len(got) != 1 || got[0] != "first" {
			t.Fatalf("receiver %d got %q, want its datagram", i, got)
		}
		// Slots are handed out lowest first: the queue kept the guest's order.
		if f := tp.c.flows.at(i); f.peerPort() != port(i) {
			t.Fatalf("flow %d is to port %d, want %d: not set up in the guest's order", i, f.peerPort(), port(i))
		}
	}
}

// The queue holds admitQueueLen frames, and admitQueueBytes bytes of
// them, going round its buffer; what does not fit is dropped and counted.
func TestAdmissionQueueBounds(t *testing.T) {
	tp := newTestPasta(t, nil)
	a := &tp.c.admit
	queue := func(size int) bool {
		before := a.dropped
		a.source, a.budget, a.frame = fromTap, 0, make([]byte, size)
		if tp.c.admitNewFlow(nil) {
			t.Fatal("a frame was admitted with no budget left")
		}
		a.doneReading()
		return a.dropped == before
	}
	for i := range admitQueueLen {
		if !queue(64) {
			t.Fatalf("frame %d of %d dropped", i+1, admitQueueLen)
		}
	}
	if queue(64) {
		t.Fatalf("frame %d queued, past the queue's length", admitQueueLen+1)
	}
	a.head, a.n = 0, 0 // handled, as admitQueued would

	big := admitQueueBytes/4 + 1
	for i := range 3 {
		if !queue(big) {
			t.Fatalf("frame %d of %d bytes dropped", i+1, big)
		}
	}
	if queue(big) {
		t.Fatal("a fourth frame of more than a quarter of the buffer was queued")
	}
	// The oldest leaves: the next frame goes to the start of the buffer,
	// where a frame a byte shorter than the one that left fits.
	a.head, a.n = 1, 2
	a.bufHead = int(a.queue[1].off)
	if !queue(big - 1) {
		t.Fatal("no room at the start of the buffer once the oldest frame left")
	}
	if off := a.queue[(a.head+a.n-1)%admitQueueLen].off; off != 0 {
		t.Fatalf("the frame went to %d, want 0 (the start)", off)
	}
	if queue(big) {
		t.Fatal("a frame overlapping the oldest one was queued")
	}
}

// Queueing and replaying frames allocates nothing.
func TestAdmissionAllocatesNothing(t *testing.T) {
	rs := udpReceivers(t, 1)
	tp := newTestPasta(t, nil)
	frame := udpFrame(t, 5000, uint16(rs[0].LocalAddr().(*net.UDPAddr).Port), "x")
	tp.c.handleFrame(frame) // the flow exists: replays find it
	a := &tp.c.admit
	buf := make([]byte, 64)
	round := func() {
		a.source, a.budget, a.frame = fromTap, 0, frame
		tp.c.queueFrame(nil)
		a.doneReading()
		a.budget = 1
		tp.c.admitQueued()
		_ = rs[0].SetReadDeadline(time.Now().Add(time.Second))
		if _, err := rs[0].Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	round()
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Fatalf("%v allocations per queued frame", n)
	}
}
