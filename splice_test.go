package main

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The spliced path, with the "namespace" being the test's own network
// namespace (the namespace thread stays where it is) and
// --host-lo-to-ns-lo, so that the namespace side connects to a server on
// loopback. Nothing crosses the socketpair.

func newSpliceTestPasta(t *testing.T) *testPasta {
	tp := newTestPasta(t, func(c *config) { c.hostLoToNsLo = true })
	ns, err := startNsThread(func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	tp.c.ns = ns
	return tp
}

// receiveWhileRunning drives the loop until ch delivers, and returns what
// it delivered; the test fails after timeout.
func receiveWhileRunning[T any](tp *testPasta, timeout time.Duration, ch <-chan T) T {
	tp.t.Helper()
	var v T
	tp.runUntil(timeout, func() bool {
		select {
		case v = <-ch:
			return true
		default:
			return false
		}
	})
	return v
}

// runUntil drives the loop until done() or the timeout.
func (tp *testPasta) runUntil(timeout time.Duration, done func() bool) {
	tp.t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			tp.t.Fatal("timed out")
		}
		if err := tp.c.runOnce(10); err != nil {
			tp.t.Fatal(err)
		}
	}
}

func TestSpliceTCPLoopback(t *testing.T) {
	// The "namespace" server: echoes what it gets, with a hash, then closes.
	server, serverPort := listenLoopback(t)
	go func() {
		c, err := server.AcceptTCP()
		if err != nil {
			return
		}
		h := sha256.New()
		_, _ = io.Copy(h, c)
		_, _ = c.Write(h.Sum(nil))
		c.Close()
	}()
	tp := newSpliceTestPasta(t)
	port := forwardedPort(t, tp, serverPort)

	data := bytes.Repeat([]byte("spliced bytes "), 200000) // 2.8 MB: more than a pipe holds
	result := make(chan []byte, 1)
	go func() {
		c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			result <- nil
			return
		}
		defer c.Close()
		_, _ = c.Write(data)
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		result <- b
	}()
	got := receiveWhileRunning(tp, 10*time.Second, result)
	want := sha256.Sum256(data)
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("server hashed %x, want %x", got, want)
	}
	if tp.c.stats.rxFrames != 0 || tp.c.stats.txFrames != 0 {
		t.Fatalf("spliced traffic crossed the tap: %d frames in, %d out", tp.c.stats.rxFrames, tp.c.stats.txFrames)
	}
	tp.runUntil(2*time.Second, func() bool { tp.c.flows.sweep(tp.c); return tp.c.flows.used() == 0 })
}

func TestSpliceUDPLoopback(t *testing.T) {
	_, serverPort := udpEchoServer(t)
	tp := newSpliceTestPasta(t)
	li, err := tp.c.openListener(dirUDP, netip.AddrPortFrom(loopback4, 0), "", netip.AddrPortFrom(netip.Addr{}, serverPort))
	if err != nil {
		t.Fatal(err)
	}
	port := boundPort(t, tp.c.listeners[li].fd)
	client, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	reply := make(chan string, 1)
	go func() {
		buf := make([]byte, 100)
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := client.Read(buf)
		reply <- string(buf[:n])
	}()
	got := receiveWhileRunning(tp, 6*time.Second, reply)
	if got != "echo:hello" {
		t.Fatalf("local client got %q, want the server's echo through the forwarded port", got)
	}
	if tp.c.stats.txFrames != 0 {
		t.Fatalf("spliced datagrams crossed the tap")
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// Short connections through the spliced path, one after the other, each
// checked byte for byte: every one after the first runs on the pipes the
// one before left, and no more pipes are kept than the pool holds.
func TestSpliceShortConnectionsReusePipes(t *testing.T) {
	server, serverPort := listenLoopback(t)
	go func() {
		for {
			c, err := server.AcceptTCP()
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			_, _ = c.Write(append([]byte("answer to "), buf[:n]...))
			c.Close()
		}
	}()
	tp := newSpliceTestPasta(t)
	port := forwardedPort(t, tp, serverPort)
	var firstPipes []uint64
	for k := range 10 {
		req := "request " + strconv.Itoa(k)
		result := make(chan string, 1)
		go func() {
			c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", itoa(port)))
			if err != nil {
				result <- err.Error()
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte(req))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			result <- string(b)
		}()
		got := receiveWhileRunning(tp, 10*time.Second, result)
		if got != "answer to "+req {
			t.Fatalf("connection %d: client got %q", k, got)
		}
		tp.runUntil(2*time.Second, func() bool { tp.c.flows.sweep(tp.c); return tp.c.flows.used() == 0 })
		// A pipe is known by its inode: a new pipe would have a new one.
		pipes := pipeInodes(t, tp.c.pipePool)
		if k == 0 {
			firstPipes = pipes
		} else if !slices.Equal(pipes, firstPipes) {
			t.Fatalf("after connection %d the pool holds pipes %v, not the first connection's %v", k, pipes, firstPipes)
		}
		if n := len(tp.c.pipePool); n != 2 {
			t.Fatalf("after connection %d: %d pipes kept, want 2", k, n)
		}
	}
}

// pipeInodes returns the inodes of the read ends of pipes, sorted.
func pipeInodes(t *testing.T, pipes [][2]int) []uint64 {
	t.Helper()
	var inodes []uint64
	for _, p := range pipes {
		var st unix.Stat_t
		if err := unix.Fstat(p[0], &st); err != nil {
			t.Fatal(err)
		}
		inodes = append(inodes, st.Ino)
	}
	slices.Sort(inodes)
	return inodes
}

// With --splice-only there is no tap (newCtx takes no device), the
// namespace has no address, and spliced flows go to its loopback.
func TestSpliceOnlyTargetsLoopback(t *testing.T) {
	c, err := newCtx(&config{spliceOnly: true, mtu: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(c.epfd)
	defer unix.Close(c.spareFD)
	for _, family := range []netip.Addr{loopback4, loopback6} {
		if dst, ok := c.nsTarget(family, netip.AddrPortFrom(netip.Addr{}, 8000)); !ok || dst != netip.AddrPortFrom(family, 8000) {
			t.Errorf("target for a %s client: %s (%v), want the namespace's %s", family, dst, ok, family)
		}
	}
}
