package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// stuckListener is a loopback port whose connects never complete: a
// listener with a backlog of zero, filled by one connection nobody
// accepts, drops every further SYN (tcp(7)), so connects to it stay
// half-open, as to an address that never answers.
func stuckListener(t *testing.T) uint16 {
	t.Helper()
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(l) })
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(l)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	filler, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(filler) })
	if err := unix.Connect(filler, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		t.Fatal(err)
	}
	return uint16(port)
}

// withBudget gives tp's flow table a budget.
func withBudget(t *testing.T, tp *testPasta, b budget) {
	t.Helper()
	if err := tp.c.flows.init(b); err != nil {
		t.Fatal(err)
	}
}

func synFrame(t testing.TB, sport, dport uint16) []byte {
	ip := ip4(testGuest4, testGW4, layers.IPProtocolTCP)
	syn := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Seq: 1000, Window: 65535}
	_ = syn.SetNetworkLayerForChecksum(ip)
	return serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, syn)
}

// A full pool of half-open connects gives way to a new SYN: the oldest
// connect is dropped, the new one takes its place.
func TestHalfOpenConnectsEvictOldest(t *testing.T) {
	port := stuckListener(t)
	tp := newTestPasta(t, nil)
	withBudget(t, tp, budget{poolTCP: 8, poolHalfOpen: 2})
	for sport := uint16(41000); sport < 41003; sport++ {
		tp.c.handleFrame(synFrame(t, sport, port))
		tp.c.flows.sweep(tp.c)
	}
	if f := tp.readFrame(100 * time.Millisecond); f != nil {
		t.Fatalf("pasta sent a frame for a dropped connect: % x", f)
	}
	if n := tp.c.flows.pools[poolHalfOpen].n; n != 2 {
		t.Fatalf("%d half-open connects, want 2", n)
	}
	for sport, want := range map[uint16]bool{41000: false, 41001: true, 41002: true} {
		k := newFlowKey(protoTCP, testGuest4, sport, testGW4, port)
		if _, ok := tp.c.flows.lookup(k); ok != want {
			t.Errorf("flow from port %d present: %v, want %v", sport, ok, want)
		}
	}
}

// Established connections never give way: with the TCP share full of
// them, a SYN is refused with a RST.
func TestFullTCPPoolRefuses(t *testing.T) {
	l, port := listenLoopback(t)
	tp := newTestPasta(t, nil)
	withBudget(t, tp, budget{poolTCP: 1, poolHalfOpen: 1})
	acceptOne(t, l)
	g := newTCPGuest(t, tp, port)
	g.handshake()
	g2 := newTCPGuest(t, tp, port)
	g2.port = 42000
	g2.segment("S", g2.seq, nil)
	g2.expect("AR")
	if tp.c.flows.used() != 1 || tp.c.flows.at(0).dead {
		t.Fatalf("the established connection did not stay alone in the table")
	}
}

// A full pool of UDP flows evicts the longest idle one: a flow with
// recent traffic stays.
func TestUDPEvictsLongestIdle(t *testing.T) {
	tp := newTestPasta(t, nil)
	withBudget(t, tp, budget{poolUDP: 2})
	send := func(at int64, sport uint16) {
		ip := ip4(testGuest4, testGW4, layers.IPProtocolUDP)
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: 9}
		_ = u.SetNetworkLayerForChecksum(ip)
		tp.c.now = at // the loop's clock, set by hand: no loop runs here
		tp.c.handleFrame(serialize(t, ethToUs(layers.EthernetTypeIPv4), ip, u, gopacket.Payload("x")))
		tp.c.flushBatches()
		tp.c.flows.sweep(tp.c)
	}
	send(0, 5000)
	send(2e9, 5001)
	send(4e9, 5000) // 5000 is active again: 5001 is now the longest idle
	send(5e9, 5002)
	for sport, want := range map[uint16]bool{5000: true, 5001: false, 5002: true} {
		k := newFlowKey(protoUDP, testGuest4, sport, testGW4, 9)
		if _, ok := tp.c.flows.lookup(k); ok != want {
			t.Errorf("flow from port %d present: %v, want %v", sport, ok, want)
		}
	}
	if n := tp.c.flows.pools[poolUDP].n; n != 2 {
		t.Fatalf("%d UDP flows, want 2", n)
	}
}

// A UDP flow that can't be made is refused with an ICMP "administratively
// prohibited" error quoting the datagram (RFC 1812 section 5.2.7.1).
func TestUDPRefusedWithICMP(t *testing.T) {
	tp := newTestPasta(t, nil)
	withBudget(t, tp, budget{poolTCP: 1}) // no room for UDP flows at all
	udpFromGuest(tp, 5000, testGW4, 9, []byte("refused"))
	f := tp.readFrame(2 * time.Second)
	if f == nil {
		t.Fatal("no answer to a refused datagram")
	}
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok || icmp.TypeCode.Type() != icmpTypeUnreach || icmp.TypeCode.Code() != icmpCodeProhibited {
		t.Fatalf("answer is not ICMP unreachable, administratively prohibited: %v", pkt)
	}
	if !bytes.Contains(icmp.Payload, []byte("refused")) {
		t.Fatalf("the ICMP error does not quote the datagram: % x", icmp.Payload)
	}
	if tp.c.flows.used() != 0 {
		t.Fatalf("%d flows after a refused datagram", tp.c.flows.used())
	}
}

// A SYN flood costs no allocation per SYN, evictions included.
func TestSYNFloodAllocatesNothing(t *testing.T) {
	port := stuckListener(t)
	tp := newTestPasta(t, nil)
	withBudget(t, tp, budget{poolTCP: 64, poolHalfOpen: 16})
	syn := synFrame(t, 40000, port)
	sport := uint16(40000)
	out := make([]byte, 1<<16)
	round := func() {
		sport++
		binary.BigEndian.PutUint16(syn[ethHdrLen+ipv4HdrLen:], sport)
		tp.c.handleFrame(syn) // the checksum is wrong now, which pasta does not check
		tp.c.flows.sweep(tp.c)
		for {
			if _, err := rawRead(tp.peer, out); err != nil {
				break
			}
		}
	}
	for range 32 {
		round()
	}
	if n := testing.AllocsPerRun(500, round); n != 0 {
		t.Fatalf("%v allocations per SYN", n)
	}
	if n := tp.c.flows.pools[poolHalfOpen].n; n != 16 {
		t.Fatalf("%d half-open connects after the flood, want the cap, 16", n)
	}
}

// The index finds what a map would, through inserts and removals that
// shift probe runs around.
func TestFlowIndexMatchesMap(t *testing.T) {
	var ft flowTable
	if err := ft.init(budget{poolUDP: 300}); err != nil {
		t.Fatal(err)
	}
	defer ft.close()
	ft.index.mask = 511 // small and full enough for long runs
	ft.index.slots = ft.index.slots[:512]
	want := map[flowKey]int{}
	r := rand.New(rand.NewPCG(1, 2))
	keyOf := func(n int) flowKey { return newFlowKey(protoUDP, testGuest4, uint16(n), testGW4, 53) }
	for step := range 20000 {
		k := keyOf(r.IntN(400))
		if i, ok := want[k]; ok {
			ft.kill(&ctx{udpTx: &udpTxBatch{flow: -1}}, i)
			ft.sweep(nil)
			delete(want, k)
		} else if len(want) < 250 {
			i, ok := ft.alloc(flowUDP, poolUDP, k)
			if !ok {
				t.Fatalf("step %d: table full", step)
			}
			want[k] = i
		}
		for n := range 400 {
			k := keyOf(n)
			i, ok := ft.lookup(k)
			wi, wok := want[k]
			if ok != wok || (ok && i != wi) {
				t.Fatalf("step %d: lookup(%d) = %d, %v; want %d, %v", step, n, i, ok, wi, wok)
			}
		}
	}
}

// Slots are handed out lowest first, and once a burst is over the pages
// it touched that hold no flow go back to the kernel.
func TestFlowTableGivesMemoryBack(t *testing.T) {
	var ft flowTable
	if err := ft.init(budget{poolUDP: 20000}); err != nil {
		t.Fatal(err)
	}
	defer ft.close()
	c := &ctx{udpTx: &udpTxBatch{flow: -1}}
	for want := range 20000 {
		if i, _ := ft.allocUnindexed(flowUDP, poolUDP); i != want {
			t.Fatalf("slot %d allocated, want %d", i, want)
		}
	}
	resident := func() int {
		page := unix.Getpagesize()
		vec := make([]byte, (len(ft.mem)+page-1)/page)
		_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&ft.mem[0])), uintptr(len(ft.mem)), uintptr(unsafe.Pointer(&vec[0])))
		if e != 0 {
			t.Fatal(e)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n * page
	}
	burst := resident()
	for i := 10; i < 20000; i++ {
		if i != 15000 { // a flow left high up pins its own page only
			ft.kill(c, i)
		}
	}
	ft.sweep(c)
	ft.release()
	after := resident()
	limit := 10*int(unsafe.Sizeof(flow{})) + 4*unix.Getpagesize()
	if after > limit {
		t.Fatalf("%d bytes of the table resident after the burst (%d during it), want at most %d", after, burst, limit)
	}
	if i, _ := ft.allocUnindexed(flowUDP, poolUDP); i != 10 {
		t.Fatalf("slot %d allocated after the burst, want the lowest free, 10", i)
	}
}

// The table lives outside the Go heap: a flow must hold no pointers.
func TestFlowHoldsNoPointers(t *testing.T) {
	var check func(reflect.Type, string)
	check = func(typ reflect.Type, path string) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Errorf("%s is a %v", path, typ.Kind())
		case reflect.Array:
			check(typ.Elem(), path+"[]")
		case reflect.Struct:
			for i := range typ.NumField() {
				check(typ.Field(i).Type, path+"."+typ.Field(i).Name)
			}
		}
	}
	check(reflect.TypeFor[flow](), "flow")
}

// The budget of the machine: the pools fit in the descriptors.
func TestBudgetForFileLimit(t *testing.T) {
	for _, nofile := range []int{1024, 20000, 1 << 20} {
		b := budgetFor(nofile)
		fds := b[poolTCP] + b[poolUDP] + b[poolPing] + b[poolSplice]*spliceFDs
		if fds > nofile-fdReserveMin || b[poolHalfOpen] >= b[poolTCP] || b.flows() > flowCapacity {
			t.Errorf("RLIMIT_NOFILE %d: budget %v uses %d descriptors, %d flows", nofile, b, fds, b.flows())
		}
		t.Logf("RLIMIT_NOFILE %d: %v, %d flows, %d descriptors", nofile, b, b.flows(), fds)
	}
}

// The auto scan reads socket tables piece by piece, lines split across
// pieces included, without growing its buffer.
func TestScanBoundPortsInPieces(t *testing.T) {
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	var want portSet
	for p := 1; p <= 3000; p++ {
		state := "01"
		if p%3 == 0 {
			state = "0A"
			want.add(p)
		}
		table += fmt.Sprintf("%4d: 0100007F:%04X 0100007F:1F90 %s 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1\n", p, p, state, 1000+p)
	}
	expectScan(t, table, false, want)
}

// expectScan scans a socket table for listening ports, firstOnly or not,
// through a buffer of 1000 bytes, and checks what it finds.
func expectScan(t *testing.T, table string, firstOnly bool, want portSet) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tcp")
	if err := os.WriteFile(path, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var got portSet
	scanBoundPorts(fd, make([]byte, 1000), "0A", firstOnly, &got)
	if got != want {
		t.Fatalf("found ports %s, want %s", portRanges(&got, 1, maxPort), portRanges(&want, 1, maxPort))
	}
}

// In a TCP table, listening sockets come first: the scan stops at the
// first socket in another state, and finds the listening ones of a real
// table (this process's own listener among them).
func TestScanListenersStopsAtFirstOther(t *testing.T) {
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	line := "%4d: 0100007F:%04X 00000000:0000 %s 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1\n"
	table += fmt.Sprintf(line, 0, 8080, "0A", 1) + fmt.Sprintf(line, 1, 8081, "0A", 2)
	table += fmt.Sprintf(line, 2, 40000, "01", 3) + fmt.Sprintf(line, 3, 9090, "0A", 4) // not a real table's order
	var want portSet
	want.add(8080)
	want.add(8081)
	expectScan(t, table, true, want)

	l, port := listenLoopback(t)
	defer runtime.KeepAlive(l)
	for range 3 { // established connections, listed after the listeners
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(c)
		if err := unix.Connect(c, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(port)}); err != nil {
			t.Fatal(err)
		}
	}
	real, err := unix.Open("/proc/thread-self/net/tcp", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(real)
	var found portSet
	scanBoundPorts(real, make([]byte, 1<<16), "0A", true, &found)
	if !found.has(int(port)) {
		t.Fatalf("listening port %d not found in /proc/thread-self/net/tcp: %s", port, portRanges(&found, 1, maxPort))
	}
}

// Listeners and the control socket hold descriptors the flows can't have:
// each one opened takes its descriptor out of the budget before the
// division, each one closed gives it back.
func TestListenersComeOutOfTheBudget(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.c.nofile = 2000
	tp.c.rebudget()
	caps := func() budget {
		var b budget
		for p := range b {
			b[p] = tp.c.flows.pools[p].max
		}
		return b
	}
	if got, want := caps(), budgetFor(2000); got != want {
		t.Fatalf("without listeners: pools %v, want %v", got, want)
	}
	const n = 300 // as from -t 10000-10149 on both families, say
	var opened []int
	for range n {
		li, err := tp.c.openListener(dirTCP, netip.AddrPortFrom(loopback4, 0), "", netip.AddrPortFrom(netip.Addr{}, 80))
		if err != nil {
			t.Fatal(err)
		}
		opened = append(opened, li)
	}
	if got, want := caps(), budgetFor(2000-n); got != want {
		t.Fatalf("with %d listeners: pools %v, want %v", n, got, want)
	}
	if err := tp.c.setupControl(filepath.Join(t.TempDir(), "ctl")); err != nil {
		t.Fatal(err)
	}
	if got, want := caps(), budgetFor(2000-n-1-ctlMaxClients); got != want {
		t.Fatalf("with %d listeners and the control socket: pools %v, want %v", n, got, want)
	}
	for _, li := range opened {
		tp.c.closeListener(li)
	}
	if got, want := caps(), budgetFor(2000-1-ctlMaxClients); got != want {
		t.Fatalf("listeners closed: pools %v, want %v", got, want)
	}
}
