package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// tcpGuest plays a TCP client (or server) in the guest over the frame
// harness: it builds segments with its own sequence numbers and checks
// pasta's.
type tcpGuest struct {
	t          *testing.T
	tp         *testPasta
	port       uint16 // the guest's port
	peer       netip.Addr
	peerPort   uint16
	seq, ack   uint32 // next sequence number to send; next expected from pasta
	window     uint16
	wscale     int // -1: don't offer window scaling
	mss        uint16
	peerWScale uint8
}

func newTCPGuest(t *testing.T, tp *testPasta, peerPort uint16) *tcpGuest {
	return &tcpGuest{t: t, tp: tp, port: 40000, peer: testGW4, peerPort: peerPort, seq: 1000, window: 65535, wscale: 7, mss: 1460}
}

// segment sends a segment with flags and payload from the guest.
func (g *tcpGuest) segment(flags string, seq uint32, payload []byte) {
	g.t.Helper()
	g.tp.injectRaw(g.frame(flags, seq, payload))
}

// frame builds the guest's segment with flags and payload.
func (g *tcpGuest) frame(flags string, seq uint32, payload []byte) []byte {
	g.t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(g.port), DstPort: layers.TCPPort(g.peerPort), Seq: seq, Ack: g.ack, Window: g.window}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
			tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: binary.BigEndian.AppendUint16(nil, g.mss)})
			if g.wscale >= 0 {
				tcp.Options = append(tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(g.wscale)}})
			}
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		case 'P':
			tcp.PSH = true
		}
	}
	ip := ip4(testGuest4, g.peer, layers.IPProtocolTCP)
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return serialize(g.t, ethToUs(layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(payload))
}

// expect reads pasta's next segment for this connection and checks its
// flags (a string of S, A, F, R; P is ignored).
func (g *tcpGuest) expect(flags string) *layers.TCP {
	g.t.Helper()
	for {
		f := g.tp.readFrame(2 * time.Second)
		if f == nil {
			g.t.Fatalf("no segment from pasta, wanted %q", flags)
		}
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !ok {
			continue // ARP and the like
		}
		checkTCPChecksum(g.t, pkt)
		if got := tcpFlagString(tcp); got != flags {
			g.t.Fatalf("segment flags %q, want %q (seq %d ack %d len %d)", got, flags, tcp.Seq, tcp.Ack, len(tcp.Payload))
		}
		if tcp.SrcPort != layers.TCPPort(g.peerPort) || tcp.DstPort != layers.TCPPort(g.port) {
			g.t.Fatalf("segment ports %d -> %d", tcp.SrcPort, tcp.DstPort)
		}
		return tcp
	}
}

func tcpFlagString(t *layers.TCP) string {
	s := ""
	for _, f := range []struct {
		on bool
		c  string
	}{{t.SYN, "S"}, {t.ACK, "A"}, {t.FIN, "F"}, {t.RST, "R"}} {
		if f.on {
			s += f.c
		}
	}
	return s
}

func checkTCPChecksum(t *testing.T, pkt gopacket.Packet) {
	t.Helper()
	ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		return
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP)
	dst, _ := netip.AddrFromSlice(ip.DstIP)
	if foldChecksum(sumBytes(ip.Payload, pseudoHeaderSum(src, dst, protoTCP, len(ip.Payload)))) != 0 {
		t.Fatalf("bad TCP checksum")
	}
}

// handshake connects the guest to the peer and returns pasta's SYN-ACK.
func (g *tcpGuest) handshake() *layers.TCP {
	g.t.Helper()
	g.segment("S", g.seq, nil)
	synack := g.expect("SA")
	if synack.Ack != g.seq+1 {
		g.t.Fatalf("SYN-ACK acknowledges %d, want %d", synack.Ack, g.seq+1)
	}
	g.seq++
	g.ack = synack.Seq + 1
	for _, o := range synack.Options {
		if o.OptionType == layers.TCPOptionKindWindowScale {
			g.peerWScale = o.OptionData[0]
		}
	}
	g.segment("A", g.seq, nil)
	return synack
}

// send sends data and waits for pasta to acknowledge all of it.
func (g *tcpGuest) send(data []byte) {
	g.t.Helper()
	for len(data) > 0 {
		n := min(len(data), int(g.mss))
		g.segment("AP", g.seq, data[:n])
		g.seq += uint32(n)
		data = data[n:]
	}
	for {
		a := g.expect("A")
		if a.Ack == g.seq {
			return
		}
	}
}

// receive collects n bytes of data from pasta, acknowledging as it goes.
func (g *tcpGuest) receive(n int) []byte {
	g.t.Helper()
	var got []byte
	for len(got) < n {
		seg := g.expect("A")
		if seg.Seq != g.ack {
			g.t.Fatalf("data at %d, want %d", seg.Seq, g.ack)
		}
		got = append(got, seg.Payload...)
		g.ack += uint32(len(seg.Payload))
		g.segment("A", g.seq, nil)
	}
	return got
}

// listenLoopback starts a TCP listener on 127.0.0.1 and returns it with
// its port.
func listenLoopback(t *testing.T) (*net.TCPListener, uint16) {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, uint16(l.Addr().(*net.TCPAddr).Port)
}

// acceptOne accepts a connection in the background.
func acceptOne(t *testing.T, l *net.TCPListener) <-chan *net.TCPConn {
	ch := make(chan *net.TCPConn, 1)
	go func() {
		c, err := l.AcceptTCP()
		if err != nil {
			close(ch)
			return
		}
		t.Cleanup(func() { c.Close() })
		ch <- c
	}()
	return ch
}

func waitConn(t *testing.T, ch <-chan *net.TCPConn) *net.TCPConn {
	t.Helper()
	select {
	case c := <-ch:
		if c == nil {
			t.Fatal("accept failed")
		}
		return c
	case <-time.After(2 * time.Second):
		t.Fatal("no connection reached the host")
	}
	return nil
}

// connectGuest connects a guest to a listener on the host's loopback
// through pasta (adjust, if not nil, sets the guest's options first), and
// returns the harness, the guest, the host's end and pasta's SYN-ACK.
func connectGuest(t *testing.T, adjust func(*tcpGuest)) (*testPasta, *tcpGuest, *net.TCPConn, *layers.TCP) {
	t.Helper()
	l, port := listenLoopback(t)
	conns := acceptOne(t, l)
	tp := newTestPasta(t, nil)
	g := newTCPGuest(t, tp, port)
	if adjust != nil {
		adjust(g)
	}
	synack := g.handshake()
	return tp, g, waitConn(t, conns), synack
}

func TestTCPHandshakeOptions(t *testing.T) {
	_, _, _, synack := connectGuest(t, nil)
	var mss, ws = -1, -1
	for _, o := range synack.Options {
		switch o.OptionType {
		case layers.TCPOptionKindMSS:
			mss = int(binary.BigEndian.Uint16(o.OptionData))
		case layers.TCPOptionKindWindowScale:
			ws = int(o.OptionData[0])
		}
	}
	if want := mtuDefault - ipv4HdrLen - tcpHdrLen; mss != want {
		t.Errorf("SYN-ACK MSS %d, want %d (MTU %d)", mss, want, mtuDefault)
	}
	if ws != tcpOurWS {
		t.Errorf("SYN-ACK window scale %d, want %d", ws, tcpOurWS)
	}
	if synack.Window == 0 {
		t.Errorf("SYN-ACK with a zero window")
	}
}

func TestTCPNoWindowScaleUnlessOffered(t *testing.T) {
	_, _, _, synack := connectGuest(t, func(g *tcpGuest) { g.wscale = -1 })
	for _, o := range synack.Options {
		if o.OptionType == layers.TCPOptionKindWindowScale {
			t.Fatalf("SYN-ACK scales windows the guest did not offer to scale (RFC 7323 section 2.2)")
		}
	}
}

func TestTCPDataBothWays(t *testing.T) {
	_, g, host, _ := connectGuest(t, nil)

	up := bytes.Repeat([]byte("guest to host "), 1000) // several segments
	g.send(up)
	got := make([]byte, len(up))
	_ = host.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(host, got); err != nil || !bytes.Equal(got, up) {
		t.Fatalf("host got %d bytes (%v), differing from what the guest sent", len(got), err)
	}

	down := bytes.Repeat([]byte("host to guest "), 2000)
	if _, err := host.Write(down); err != nil {
		t.Fatal(err)
	}
	if recv := g.receive(len(down)); !bytes.Equal(recv, down) {
		t.Fatalf("guest got %d bytes, differing from what the host sent", len(recv))
	}
}

func TestTCPRespectsGuestWindow(t *testing.T) {
	tp, g, host, _ := connectGuest(t, func(g *tcpGuest) { g.wscale, g.window = 0, 3000 })
	if _, err := host.Write(make([]byte, 20000)); err != nil {
		t.Fatal(err)
	}
	sent := 0
	for {
		f := tp.readFrame(100 * time.Millisecond)
		if f == nil {
			break
		}
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			sent += len(tcp.Payload)
		}
	}
	if sent != 3000 {
		t.Fatalf("pasta sent %d bytes into a 3000-byte window", sent)
	}
	// Opening the window lets the rest through.
	g.ack += 3000
	g.window = 65535
	g.segment("A", g.seq, nil)
	if rest := g.receive(17000); len(rest) != 17000 {
		t.Fatalf("got %d more bytes after the window opened", len(rest))
	}
}

func TestTCPRetransmitsUnacknowledgedData(t *testing.T) {
	tp, g, host, _ := connectGuest(t, nil)
	msg := []byte("this segment gets lost on the way to the guest")
	if _, err := host.Write(msg); err != nil {
		t.Fatal(err)
	}
	first := g.expect("A")
	if !bytes.Equal(first.Payload, msg) {
		t.Fatalf("first transmission %q", first.Payload)
	}
	// The guest never acknowledges: after the timeout, the same data again.
	tp.c.now += tcpRTOInitialNS + 1
	tp.c.flows.runTimers(tp.c)
	again := g.expect("A")
	if again.Seq != first.Seq || !bytes.Equal(again.Payload, msg) {
		t.Fatalf("retransmission at %d %q, want %d %q", again.Seq, again.Payload, first.Seq, msg)
	}
}

func TestTCPFastRetransmitOnDuplicateAcks(t *testing.T) {
	_, g, host, _ := connectGuest(t, nil)
	data := bytes.Repeat([]byte{'x'}, 4*1460)
	if _, err := host.Write(data); err != nil {
		t.Fatal(err)
	}
	first := g.expect("A")
	for range 3 {
		g.expect("A")
	}
	// Three duplicate ACKs for the first byte: the first segment is lost.
	for range tcpDupAckThresh {
		g.segment("A", g.seq, nil)
	}
	again := g.expect("A")
	if again.Seq != first.Seq {
		t.Fatalf("after three duplicate ACKs pasta sent %d, want the lost %d", again.Seq, first.Seq)
	}
}

func TestTCPZeroWindowProbe(t *testing.T) {
	tp, g, host, _ := connectGuest(t, func(g *tcpGuest) { g.wscale = 0 })
	g.window = 0
	g.segment("A", g.seq, nil)
	if _, err := host.Write([]byte("waiting")); err != nil {
		t.Fatal(err)
	}
	tp.expectNoFrame(100 * time.Millisecond)
	tp.c.now += tcpRTOInitialNS + 1
	tp.c.flows.runTimers(tp.c)
	probe := g.expect("A")
	if probe.Seq != g.ack-1 || len(probe.Payload) != 0 {
		t.Fatalf("probe seq %d len %d, want an ACK at %d", probe.Seq, len(probe.Payload), g.ack-1)
	}
	g.window = 1000
	g.segment("A", g.seq, nil)
	if got := g.receive(7); string(got) != "waiting" {
		t.Fatalf("after the window opened: %q", got)
	}
}

func TestTCPHalfCloseBothWays(t *testing.T) {
	tp, g, host, _ := connectGuest(t, nil)

	// Guest FIN: the host reads end of file but can still send.
	g.segment("AF", g.seq, []byte("bye"))
	g.seq += 4
	if a := g.expect("A"); a.Ack != g.seq {
		t.Fatalf("FIN acknowledged at %d, want %d", a.Ack, g.seq)
	}
	_ = host.SetReadDeadline(time.Now().Add(2 * time.Second))
	if b, err := io.ReadAll(host); err != nil || string(b) != "bye" {
		t.Fatalf("host read %q, %v; want bye then EOF", b, err)
	}
	if _, err := host.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := g.receive(10); string(got) != "still here" {
		t.Fatalf("guest got %q after its FIN", got)
	}
	// Host closes: FIN to the guest, and the flow ends once acknowledged.
	host.Close()
	fin := g.expect("AF")
	g.ack = fin.Seq + 1
	g.segment("A", g.seq, nil)
	tp.c.flows.sweep(tp.c)
	if n := tp.c.flows.used(); n != 0 {
		t.Fatalf("%d flows after both FINs, want 0", n)
	}
}

func TestTCPRefusedConnectionGetsReset(t *testing.T) {
	l, port := listenLoopback(t)
	l.Close() // nobody listens there now
	tp := newTestPasta(t, nil)
	g := newTCPGuest(t, tp, port)
	g.segment("S", g.seq, nil)
	rst := g.expect("AR")
	if rst.Ack != g.seq+1 {
		t.Fatalf("RST acknowledges %d, want %d", rst.Ack, g.seq+1)
	}
	tp.c.flows.sweep(tp.c)
	if tp.c.flows.used() != 0 {
		t.Fatalf("refused connection left a flow")
	}
}

func TestTCPResetFromGuestResetsHost(t *testing.T) {
	_, g, host, _ := connectGuest(t, nil)
	g.segment("R", g.seq, nil)
	_ = host.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := host.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Fatalf("host read %v after the guest's RST, want a reset", err)
	}
}

func TestTCPSegmentForNoConnectionGetsReset(t *testing.T) {
	tp := newTestPasta(t, nil)
	g := newTCPGuest(t, tp, 9)
	g.ack = 12345
	g.segment("A", g.seq, []byte("stray"))
	rst := g.expect("R")
	if rst.Seq != 12345 {
		t.Fatalf("RST seq %d, want the segment's ACK 12345 (RFC 9293 3.10.7.1)", rst.Seq)
	}
}

func TestTCPTableFull(t *testing.T) {
	l, port := listenLoopback(t)
	tp := newTestPasta(t, nil)
	if err := tp.c.flows.init(budget{poolTCP: 2, poolHalfOpen: 2}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		acceptOne(t, l)
		g := newTCPGuest(t, tp, port)
		g.port = uint16(41000 + i)
		g.handshake()
	}
	g := newTCPGuest(t, tp, port)
	g.port = 42000
	g.segment("S", g.seq, nil)
	g.expect("AR")
	if tp.c.flows.used() != 2 {
		t.Fatalf("%d flows in a table of 2", tp.c.flows.used())
	}
}

// Kernels before 6.9 have no SO_PEEK_OFF for TCP: the same behaviour must
// hold when peeking skips the bytes in flight instead.
func TestTCPWithoutPeekOffset(t *testing.T) {
	saved := tcpPeekOffSupported
	tcpPeekOffSupported = false
	t.Cleanup(func() { tcpPeekOffSupported = saved })
	t.Run("data", TestTCPDataBothWays)
	t.Run("window", TestTCPRespectsGuestWindow)
	t.Run("retransmit", TestTCPRetransmitsUnacknowledgedData)
	t.Run("fast retransmit", TestTCPFastRetransmitOnDuplicateAcks)
}

// Socket data the guest has not acknowledged yet stays in the socket: epoll
// must not report the socket again for it (edge-triggered events), or the
// loop would spin until the guest's ACK. New data is reported.
func TestTCPUnacknowledgedDataDoesNotWakeTheLoop(t *testing.T) {
	tp, g, host, _ := connectGuest(t, nil)
	if _, err := host.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	seg := g.expect("A")
	if string(seg.Payload) != "answer" {
		t.Fatalf("guest got %q", seg.Payload)
	}
	var events [8]unix.EpollEvent
	if n, _ := unix.EpollWait(tp.c.epfd, events[:], 50); n != 0 {
		t.Fatalf("%d epoll events with nothing new on the socket (%#x): the loop would spin", n, events[0].Events)
	}
	if _, err := host.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if seg := g.expect("A"); string(seg.Payload) != "more" {
		t.Fatalf("guest got %q, want the new data", seg.Payload)
	}
}

// When the peer has closed and the last bytes are read, our FIN rides on
// the segment that carries them (one frame instead of two).
func TestTCPFinRidesOnLastData(t *testing.T) {
	tp, g, host, _ := connectGuest(t, nil)
	g.send([]byte("request"))
	req := make([]byte, 7)
	_ = host.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(host, req); err != nil { // unread data would make close send a RST
		t.Fatal(err)
	}
	if _, err := host.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	host.Close() // FIN right behind the answer
	time.Sleep(20 * time.Millisecond)
	seg := g.expect("AF")
	if string(seg.Payload) != "answer" {
		t.Fatalf("FIN segment carries %q, want the answer", seg.Payload)
	}
	g.ack = seg.Seq + uint32(len(seg.Payload)) + 1
	g.segment("AF", g.seq, nil)
	g.seq++
	if a := g.expect("A"); a.Ack != g.seq {
		t.Fatalf("our FIN acknowledged at %d, want %d", a.Ack, g.seq)
	}
	tp.c.flows.sweep(tp.c)
	if n := tp.c.flows.used(); n != 0 {
		t.Fatalf("%d flows after both FINs, want 0", n)
	}
}

// sentTCP returns the TCP segment of the frame pasta has sent, if one is
// waiting, without running the loop (readFrame would, and could sleep).
func (tp *testPasta) sentTCP() *layers.TCP {
	n, err := unix.Read(tp.peer, tp.buf)
	if err != nil {
		return nil
	}
	pkt := gopacket.NewPacket(tp.buf[:n], layers.LayerTypeEthernet, gopacket.Default)
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	return tcp
}

// A small segment from the guest (a request) is acknowledged by the
// answer's segment, not by an ACK of its own (tcpDelayAck).
func TestTCPAnswerCarriesTheAck(t *testing.T) {
	tp, g, host, _ := connectGuest(t, nil)
	g.segment("AP", g.seq, []byte("ping"))
	g.seq += 4
	req := make([]byte, 4)
	_ = host.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(host, req); err != nil || string(req) != "ping" {
		t.Fatalf("host read %q (%v), want ping", req, err)
	}
	if _, err := host.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	// The loop runs without sleeping, as while busy: the answer is there.
	if err := tp.c.runOnce(0); err != nil {
		t.Fatal(err)
	}
	seg := g.expect("A")
	if string(seg.Payload) != "pong" || seg.Ack != g.seq {
		t.Fatalf("first segment after the request: %q acknowledging %d, want the answer acknowledging %d", seg.Payload, seg.Ack, g.seq)
	}
}

// Without an answer, the ACK of a small segment goes out before the loop
// sleeps, not when it wakes up.
func TestTCPDelayedAckBeforeSleeping(t *testing.T) {
	tp, g, _, _ := connectGuest(t, nil)
	g.segment("AP", g.seq, []byte("ping"))
	g.seq += 4
	done := make(chan error, 1)
	go func() { done <- tp.c.runOnce(300) }() // spins, finds nothing, sleeps 300 ms
	pfd := []unix.PollFd{{Fd: int32(tp.peer), Events: unix.POLLIN}}
	n, pollErr := unix.Poll(pfd, 150)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pollErr != nil || n != 1 {
		t.Fatalf("no frame within 150 ms of a loop asleep for 300 ms (poll: %d, %v): the ACK was not sent before sleeping", n, pollErr)
	}
	if a := g.expect("A"); a.Ack != g.seq || len(a.Payload) != 0 {
		t.Fatalf("got %d bytes acknowledging %d, want an ACK of %d", len(a.Payload), a.Ack, g.seq)
	}
}

// While the loop never sleeps, a delayed ACK still goes out within its bound.
func TestTCPDelayedAckWhileBusy(t *testing.T) {
	tp, g, _, _ := connectGuest(t, nil)
	start := time.Now()
	g.segment("AP", g.seq, []byte("ping"))
	g.seq += 4
	for time.Since(start) < 100*time.Millisecond {
		if err := tp.c.runOnce(0); err != nil {
			t.Fatal(err)
		}
		if a := tp.sentTCP(); a != nil && a.ACK && a.Ack == g.seq {
			if d := time.Since(start); d < time.Duration(tcpAckDelayNS) {
				t.Fatalf("ACK after %v, before its delay of %v", d, time.Duration(tcpAckDelayNS))
			}
			return
		}
	}
	t.Fatal("no ACK within 100 ms of a busy loop")
}

// A batch that moved bulk data is not followed by a spin
// (spinMaxBatchBytes); one that moved a request is.
func TestRunOnceNoSpinAfterBulk(t *testing.T) {
	tp, g, host, _ := connectGuest(t, nil)
	go func() { _, _ = io.Copy(io.Discard, host) }()
	chunk := make([]byte, g.mss)
	for sent := 0; sent < spinMaxBatchBytes; sent += len(chunk) {
		if _, err := unix.Write(tp.peer, g.frame("AP", g.seq, chunk)); err != nil {
			t.Fatal(err)
		}
		g.seq += uint32(len(chunk))
	}
	if err := tp.c.runOnce(0); err != nil { // one batch: every frame
		t.Fatal(err)
	}
	if tp.c.spinNext {
		t.Fatalf("after a batch of %d bytes, the next wait would spin", tp.c.batchBytes)
	}
	g.segment("AP", g.seq, []byte("request"))
	if !tp.c.spinNext {
		t.Fatal("after a request, the next wait would not spin")
	}
}

// A second small segment while the ACK of the first is held is
// acknowledged with its batch (RFC 1122 section 4.2.3.2).
func TestTCPSecondSegmentAcknowledgedAtOnce(t *testing.T) {
	tp, g, _, _ := connectGuest(t, nil)
	for _, part := range []string{"first", "second"} {
		if _, err := unix.Write(tp.peer, g.frame("AP", g.seq, []byte(part))); err != nil {
			t.Fatal(err)
		}
		g.seq += uint32(len(part))
	}
	if err := tp.c.runOnce(0); err != nil { // one batch, and no sleep
		t.Fatal(err)
	}
	if a := tp.sentTCP(); a == nil || !a.ACK || a.Ack != g.seq {
		t.Fatalf("after the batch: %v, want an ACK of %d", a, g.seq)
	}
}

// The batch's ACK list sends only the ACKs queued for the batch: a flow
// still in it whose queued ACK went out with data, and which has since
// been sent a small segment, keeps that segment's ACK held (tcpDelayAck).
func TestTCPBatchFlushKeepsDelayedAck(t *testing.T) {
	tp, g, _, _ := connectGuest(t, nil)
	g.segment("AP", g.seq, []byte("ping")) // its ACK is held
	g.seq += 4
	i := tp.c.tcpDelayedAcks[0]
	if tc := &tp.c.flows.at(int(i)).tcp; !tc.ackDelayed || tc.ackPending {
		t.Fatalf("after a small segment: delayed %v, queued %v; want only delayed", tc.ackDelayed, tc.ackPending)
	}
	tp.c.tcpAcks = append(tp.c.tcpAcks, i) // queued earlier, carried by data since
	tp.c.tcpFlushAcks()
	if a := tp.sentTCP(); a != nil {
		t.Fatalf("the batch's flush sent a segment acknowledging %d: the held ACK went out early", a.Ack)
	}
	tp.c.tcpFlushDelayedAcks()
	if a := tp.sentTCP(); a == nil || a.Ack != g.seq {
		t.Fatalf("the delayed flush sent %v, want an ACK of %d", a, g.seq)
	}
}
