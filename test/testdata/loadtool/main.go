// Command loadtool is the hostile guest and the legitimate traffic of the
// reliability tests (test/hostile_test.go) and of bench/soak.sh. It runs
// inside pasta's namespace (load, probe, soak) or in the remote netns
// (serve). Every loop is bounded in count and in time, and it only
// addresses what it is told to, which the tests keep inside their own
// namespaces (192.0.2.0/24, 2001:db8::/32).
//
//	loadtool serve -addr A -port P       TCP and UDP echo on A (default: every address)
//	loadtool spray -dst A -ports F-L     one UDP datagram to each port
//	loadtool flood -dst A:P -n N         N SYNs: non-blocking connect, close
//	loadtool storm -dst A:P -n N -hold D N connections opened at once, held D
//	loadtool soak  -dst A:P -d D         mixed traffic for D
//
// A load runs in -procs worker processes (default 1), each doing its part
// (a share of the count, or of the ports), so that a storm may hold more
// sockets than one process's RLIMIT_NOFILE allows. With -probe A:P, the
// first process, which does none of the load, runs legitimate traffic to
// that echo server while the load lasts (it has a process, and its Go
// runtime, to itself: what it measures is the network, not the load's
// goroutines) and prints, after it, a line
//
//	PROBE tcp_new=N tcp_ok=N udp_new=N udp_ok=N rtt_n=N p50_ms=X p99_ms=X max_ms=X slowest=S@MS,...
//
// slowest dates the five slowest requests (seconds after the load began)
// with their round trips.
// Lines "LOADING", "LOAD-END" and "SETTLED" mark the phases, so that the
// test can sample pasta's memory and descriptors at the right times.
// LOAD-END carries the workers' figures, summed (durations: the largest).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: loadtool serve|spray|flood|storm|soak [flags]"))
	}
	raiseFileLimit()
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "", "serve: address (default: every address)")
	port := fs.Int("port", 7007, "serve: port")
	dst := fs.String("dst", "", "load target: address, or address:port")
	ports := fs.String("ports", "10001-60000", "spray: port range")
	n := fs.Int("n", 0, "flood, storm: count")
	hold := fs.Duration("hold", 2*time.Second, "storm: how long connections stay open")
	rate := fs.Int("rate", 0, "spray: datagrams per second (0: as fast as possible)")
	dur := fs.Duration("d", 10*time.Second, "soak: duration")
	probe := fs.String("probe", "", "echo server for legitimate traffic during the load")
	settle := fs.Duration("settle", 5*time.Second, "wait after the load before SETTLED")
	limit := fs.Duration("limit", 50*time.Second, "the load stops after this in any case")
	procs := fs.Int("procs", 1, "worker processes sharing the load")
	worker := fs.Int("worker", -1, "internal: run part WORKER of -procs of the load, print RESULT")
	_ = fs.Parse(os.Args[2:])

	if os.Args[1] == "serve" {
		serve(*addr, *port)
		return
	}
	if *procs < 1 || *procs > 64 {
		fail(errors.New("-procs must be 1 to 64"))
	}
	var load func(part share, deadline time.Time) string
	switch os.Args[1] {
	case "spray":
		load = func(s share, dl time.Time) string { return spray(*dst, *ports, *rate, s, dl) }
	case "flood":
		load = func(s share, dl time.Time) string { return flood(*dst, s.of(*n), dl) }
	case "storm":
		load = func(s share, dl time.Time) string {
			first, _ := s.rangeOf(stormFirstPort, stormFirstPort+*n-1)
			return storm(*dst, s.of(*n), first, *hold, dl)
		}
	case "soak":
		load = func(_ share, dl time.Time) string { return soak(*dst, *dur, dl) }
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
	if *worker >= 0 {
		fmt.Println("RESULT " + load(share{*worker, *procs}, time.Now().Add(*limit)))
		return
	}
	var p *prober
	if *probe != "" {
		p = startProbe(*probe)
		time.Sleep(500 * time.Millisecond) // the probe's connection is up before the load
	}
	fmt.Println("LOADING")
	start := time.Now()
	if p != nil {
		p.setStart(start)
	}
	result := runWorkers(*procs, *limit)
	fmt.Printf("LOAD-END %s load_s=%.2f\n", result, time.Since(start).Seconds())
	if p != nil {
		fmt.Println(p.stop())
	}
	time.Sleep(*settle)
	fmt.Println("SETTLED")
	time.Sleep(time.Second)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadtool:", err)
	os.Exit(2)
}

// raiseFileLimit lets the tool hold as many sockets as it may.
func raiseFileLimit() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		want := rl
		want.Cur, want.Max = 1<<20, 1<<20
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
			rl.Cur = rl.Max
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		}
	}
}

// --- worker processes --------------------------------------------------------

// share is one worker's part of a load: part index of count.
type share struct{ index, count int }

// of is the worker's part of n things.
func (s share) of(n int) int { return n/s.count + btoi(s.index < n%s.count) }

// rangeOf is the worker's part of the range lo..hi.
func (s share) rangeOf(lo, hi int) (int, int) {
	n := hi - lo + 1
	first := lo + s.index*(n/s.count) + min(s.index, n%s.count)
	return first, first + s.of(n) - 1
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runWorkers runs the load in procs processes (this program again, with
// -worker) and sums the figures of their RESULT lines.
func runWorkers(procs int, limit time.Duration) string {
	var wg sync.WaitGroup
	results := make([]string, procs)
	for i := range procs {
		args := append([]string{os.Args[1]}, os.Args[2:]...)
		args = append(args, "-worker", strconv.Itoa(i), "-procs", strconv.Itoa(procs))
		cmd := exec.Command("/proc/self/exe", args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			fail(err)
		}
		if err := cmd.Start(); err != nil {
			fail(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if r, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
					results[i] = r
				}
			}
			if err := cmd.Wait(); err != nil {
				fail(fmt.Errorf("worker %d: %v", i, err))
			}
		}()
	}
	wg.Wait()
	return sumResults(results)
}

// sumResults adds up "key=value" figures, keeping the largest of those
// ending in _s (durations), in the order of the first line.
func sumResults(lines []string) string {
	var keys []string
	sums := map[string]float64{}
	for _, l := range lines {
		for _, kv := range strings.Fields(l) {
			k, v, _ := strings.Cut(kv, "=")
			x, _ := strconv.ParseFloat(v, 64)
			if _, seen := sums[k]; !seen {
				keys = append(keys, k)
			}
			if strings.HasSuffix(k, "_s") {
				sums[k] = max(sums[k], x)
			} else {
				sums[k] += x
			}
		}
	}
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", k, strconv.FormatFloat(sums[k], 'f', -1, 64))
	}
	return b.String()
}

// --- the echo server ---------------------------------------------------------

func serve(addr string, port int) {
	hp := net.JoinHostPort(addr, strconv.Itoa(port))
	ln, err := net.Listen("tcp", hp)
	if err != nil {
		fail(err)
	}
	pc, err := net.ListenPacket("udp", hp)
	if err != nil {
		fail(err)
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	fmt.Println("READY")
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: try again later
			continue
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// --- the hostile loads -------------------------------------------------------

// spray sends one datagram from one socket to each port of the worker's
// part of a range, at rate datagrams a second in all if rate is not 0.
func spray(dst, ports string, rate int, part share, deadline time.Time) string {
	first, last, ok := strings.Cut(ports, "-")
	lo, err1 := strconv.Atoi(first)
	hi, err2 := strconv.Atoi(last)
	if !ok || err1 != nil || err2 != nil || lo > hi {
		fail(fmt.Errorf("bad port range %q", ports))
	}
	lo, hi = part.rangeOf(lo, hi)
	a := netip.MustParseAddr(dst)
	conn, err := net.ListenUDP("udp", nil)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	sent := 0
	payload := []byte("spray")
	start := time.Now()
	perSecond := time.Duration(max(rate/part.count, 1))
	for p := lo; p <= hi && time.Now().Before(deadline); p++ {
		if _, err := conn.WriteToUDPAddrPort(payload, netip.AddrPortFrom(a, uint16(p))); err == nil {
			sent++
		}
		if due := start.Add(time.Duration(p-lo+1) * time.Second / perSecond); rate > 0 && p%100 == 0 {
			time.Sleep(time.Until(due))
		}
	}
	return fmt.Sprintf("sent=%d", sent)
}

// flood sends n SYNs to dst: each a non-blocking connect() closed at once,
// so that the namespace's kernel sends one SYN and forgets it.
func flood(dst string, n int, deadline time.Time) string {
	ap := netip.MustParseAddrPort(dst)
	family, sa := sockaddr(ap)
	sent := 0
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		if err := syscall.Connect(fd, sa); err == nil || err == syscall.EINPROGRESS {
			sent++
		}
		syscall.Close(fd)
	}
	return fmt.Sprintf("sent=%d", sent)
}

func sockaddr(ap netip.AddrPort) (int, syscall.Sockaddr) {
	if ap.Addr().Is4() {
		return syscall.AF_INET, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return syscall.AF_INET6, &syscall.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// stormConn is one connection of a storm.
type stormConn struct {
	fd    int
	state uint8 // stormConnecting, stormSent, or done (stormOpened, stormRefused, stormFailed)
}

// stormFirstPort is the first local port of a storm's connections: below
// the ephemeral range (32768-60999 by default), which the probe uses.
const stormFirstPort = 1024

const (
	stormConnecting = iota
	stormSent
	stormOpened
	stormRefused
	stormFailed
)

// storm opens n connections to an echo server at once (non-blocking
// connects, one after the other as fast as the kernel takes them, all
// watched by one epoll loop: the load is the connections, not goroutines),
// checks that each carries a byte both ways, holds those that do, then
// closes them all. A connection is opened (its byte came back), refused
// (reset: what pasta does when its budget can't hold it) or failed (any
// other error, or still not through at the deadline).
//
// With firstPort, connection i is bound to local port firstPort+i: left
// to choose, the kernel searches the ephemeral range for each connect to
// one destination, and with 20,000 of them the search took three
// quarters of the machine's two cores for seconds, in the namespace's
// kernel, which measured the port allocator rather than pasta.
func storm(dst string, n, firstPort int, hold time.Duration, deadline time.Time) string {
	ap := netip.MustParseAddrPort(dst)
	family, sa := sockaddr(ap)
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		fail(err)
	}
	defer syscall.Close(epfd)
	conns := make([]stormConn, n)
	var count [stormFailed + 1]int
	start := time.Now()
	for i := range conns {
		c := &conns[i]
		port := 0
		if firstPort > 0 {
			port = firstPort + i
		}
		if c.state = stormStart(epfd, c, family, sa, int32(i), deadline, port); c.state != stormConnecting {
			count[c.state]++
		}
	}
	events := make([]syscall.EpollEvent, 256)
	for count[stormOpened]+count[stormRefused]+count[stormFailed] < n && time.Now().Before(deadline) {
		k, err := syscall.EpollWait(epfd, events, 100)
		if err != nil && err != syscall.EINTR {
			fail(err)
		}
		for _, ev := range events[:max(k, 0)] {
			c := &conns[ev.Fd]
			if s := stormStep(epfd, c, ev.Fd); s != c.state {
				c.state = s
				if s >= stormOpened {
					count[s]++
				}
				if s >= stormRefused { // out of the epoll set, at once
					syscall.Close(c.fd)
					c.fd = -1
				}
			}
		}
	}
	took := time.Since(start)
	count[stormFailed] = n - count[stormOpened] - count[stormRefused] // not through in time: failed
	time.Sleep(min(hold, time.Until(deadline)))
	for _, c := range conns {
		if c.fd >= 0 {
			syscall.Close(c.fd)
		}
	}
	return fmt.Sprintf("opened=%d refused=%d failed=%d open_s=%.2f", count[stormOpened], count[stormRefused], count[stormFailed], took.Seconds())
}

// stormStart opens connection i of a storm, from local port port if not
// 0, and returns its state: connecting, or already ended.
func stormStart(epfd int, c *stormConn, family int, sa syscall.Sockaddr, i int32, deadline time.Time, port int) uint8 {
	c.fd = -1
	if time.Now().After(deadline) {
		return stormFailed
	}
	fd, err := syscall.Socket(family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return stormFailed
	}
	c.fd = fd
	if port > 0 {
		var local syscall.Sockaddr = &syscall.SockaddrInet4{Port: port}
		if family == syscall.AF_INET6 {
			local = &syscall.SockaddrInet6{Port: port}
		}
		if err := syscall.Bind(fd, local); err != nil {
			return stormFailed
		}
	}
	if err := syscall.Connect(fd, sa); err != nil && err != syscall.EINPROGRESS {
		return stormEnded(err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLOUT | syscall.EPOLLIN, Fd: i}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return stormFailed
	}
	return stormConnecting
}

// stormStep moves connection c on after an event, and returns its state:
// connected, it sends its byte (the connection's index); with the byte
// back, it is opened and leaves the epoll set.
func stormStep(epfd int, c *stormConn, i int32) uint8 {
	if c.state >= stormOpened {
		return c.state
	}
	if e, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || e != 0 {
		return stormEnded(syscall.Errno(e))
	}
	want := []byte{byte(i)}
	switch c.state {
	case stormConnecting:
		if _, err := syscall.Write(c.fd, want); err != nil {
			return stormEnded(err)
		}
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: i}
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
			return stormFailed
		}
		return stormSent
	default:
		got := make([]byte, 1)
		k, err := syscall.Read(c.fd, got)
		switch {
		case err == syscall.EAGAIN:
			return stormSent
		case err != nil:
			return stormEnded(err)
		case k != 1 || got[0] != want[0]:
			return stormFailed // end of file, or another byte
		}
		_ = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
		return stormOpened
	}
}

// stormEnded classifies an error that ended a storm connection.
func stormEnded(err error) uint8 {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return stormRefused
	}
	return stormFailed
}

// soak mixes, until d is over: a bulk connection, short connections,
// UDP exchanges from new sockets, and every 5 s a small storm and spray.
func soak(dst string, d time.Duration, deadline time.Time) string {
	end := time.Now().Add(d)
	if end.After(deadline) {
		end = deadline
	}
	ap := netip.MustParseAddrPort(dst)
	var wg sync.WaitGroup
	var short, udp, bulk atomic.Int64
	wg.Add(3)
	go func() { // bulk: 64 KiB echoed back and forth
		defer wg.Done()
		buf := make([]byte, 65536)
		for time.Now().Before(end) {
			c, err := net.DialTimeout("tcp", dst, 3*time.Second)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			_ = c.SetDeadline(end.Add(5 * time.Second))
			for time.Now().Before(end) && echoOnce(c, buf) == nil {
				bulk.Add(int64(len(buf)))
			}
			c.Close()
		}
	}()
	go func() { // short connections
		defer wg.Done()
		for time.Now().Before(end) {
			if c, err := net.DialTimeout("tcp", dst, 3*time.Second); err == nil {
				_ = c.SetDeadline(time.Now().Add(3 * time.Second))
				if echoOnce(c, []byte("short")) == nil {
					short.Add(1)
				}
				c.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() { // UDP from new sockets, and bursts of hostile load
		defer wg.Done()
		next := time.Now()
		whole := share{0, 1}
		for time.Now().Before(end) {
			if udpOnce(dst, time.Second) == nil {
				udp.Add(1)
			}
			if time.Now().After(next) {
				next = time.Now().Add(5 * time.Second)
				storm(dst, 500, 0, 100*time.Millisecond, end.Add(10*time.Second))
				spray(ap.Addr().String(), "20001-21000", 0, whole, end)
				flood(netip.AddrPortFrom(ap.Addr(), 9).String(), 500, end)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	return fmt.Sprintf("short=%d udp=%d bulk_mib=%d", short.Load(), udp.Load(), bulk.Load()>>20)
}

func echoOnce(c net.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	for got := 0; got < len(msg); {
		k, err := c.Read(buf[got:])
		if err != nil {
			return err
		}
		got += k
	}
	if string(buf) != string(msg) {
		return errors.New("echo differs")
	}
	return nil
}

// udpOnce sends a datagram from a new socket and waits for its echo,
// sending it again once after half of timeout.
func udpOnce(dst string, timeout time.Duration) error {
	c, err := net.Dial("udp", dst)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	buf := make([]byte, 64)
	for try := 0; try < 2; try++ {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(timeout / 2))
		n, err := c.Read(buf)
		if err == nil && string(buf[:n]) == string(msg) {
			return nil
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
	}
	return errors.New("no echo")
}

// --- the legitimate traffic ----------------------------------------------------

// prober keeps, while a load runs, one established connection doing a
// request every 10 ms (its round trips are measured), and opens a new TCP
// connection and a new UDP flow every 50 ms (each must complete within
// newTimeout).
type prober struct {
	dst        string
	start      time.Time // when the load started
	done       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	rtts       []rtt
	tcpNew     atomic.Int64
	tcpOK      atomic.Int64
	udpNew     atomic.Int64
	udpOK      atomic.Int64
	rttFailure atomic.Value
}

const newTimeout = 3 * time.Second

// rtt is a request's round trip, and when it started.
type rtt struct{ at, d time.Duration }

func startProbe(dst string) *prober {
	p := &prober{dst: dst, start: time.Now(), done: make(chan struct{})}
	c, err := net.DialTimeout("tcp", dst, 5*time.Second)
	if err != nil {
		fail(fmt.Errorf("probe: %v", err))
	}
	p.wg.Add(2)
	go p.requests(c)
	go p.newFlows()
	return p
}

func (p *prober) requests(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	msg := []byte("0123456789abcdef0123456789abcdef")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-tick.C:
		}
		start := time.Now()
		_ = c.SetDeadline(start.Add(10 * time.Second))
		if err := echoOnce(c, msg); err != nil {
			p.rttFailure.Store(err.Error())
			return
		}
		p.mu.Lock()
		p.rtts = append(p.rtts, rtt{start.Sub(p.start), time.Since(start)})
		p.mu.Unlock()
	}
}

func (p *prober) newFlows() {
	defer p.wg.Done()
	var wg sync.WaitGroup
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			wg.Wait()
			return
		case <-tick.C:
		}
		wg.Add(2)
		p.tcpNew.Add(1)
		p.udpNew.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", p.dst, newTimeout)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(newTimeout))
			if echoOnce(c, []byte("new")) == nil {
				p.tcpOK.Add(1)
			}
		}()
		go func() {
			defer wg.Done()
			if udpOnce(p.dst, newTimeout) == nil {
				p.udpOK.Add(1)
			}
		}()
	}
}

// setStart sets the time the load started, from which the slowest
// requests are dated.
func (p *prober) setStart(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start = t
}

// stop ends the probe and reports, with the five slowest requests: when
// they started (seconds after the load) and how long they took (ms).
func (p *prober) stop() string {
	close(p.done)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	sort.Slice(p.rtts, func(i, j int) bool { return p.rtts[i].d < p.rtts[j].d })
	q := func(f float64) float64 {
		if len(p.rtts) == 0 {
			return -1
		}
		return ms(p.rtts[int(f*float64(len(p.rtts)-1))].d)
	}
	var slowest []string
	for i := len(p.rtts) - 1; i >= max(len(p.rtts)-5, 0); i-- {
		slowest = append(slowest, fmt.Sprintf("%.2f@%.1f", p.rtts[i].at.Seconds(), ms(p.rtts[i].d)))
	}
	s := fmt.Sprintf("PROBE tcp_new=%d tcp_ok=%d udp_new=%d udp_ok=%d rtt_n=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f slowest=%s",
		p.tcpNew.Load(), p.tcpOK.Load(), p.udpNew.Load(), p.udpOK.Load(), len(p.rtts), q(0.5), q(0.99), q(1), strings.Join(slowest, ","))
	if e, ok := p.rttFailure.Load().(string); ok {
		s += " rtt_error=" + strings.ReplaceAll(e, " ", "_")
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
