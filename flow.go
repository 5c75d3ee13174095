package main

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// The flow table. A flow is one conversation between the guest and a peer
// (a TCP connection, a UDP or ICMP echo exchange), and it has two sides: the
// guest side, addressed as the guest sees it (the key), and the host side,
// a socket. Flows live in a fixed array, indexed by a flow number that epoll
// references carry; a hash index finds a flow from the guest side's
// addresses. A closed flow is marked dead at once (its socket is closed and
// its events are ignored) and its slot is only reused after the event batch
// in which it died, so that stale events in the same batch cannot reach a
// new flow.

type flowType uint8

const (
	flowFree   flowType = iota
	flowPing            // ICMP or ICMPv6 echo
	flowTCP             // a TCP connection
	flowUDP             // a UDP exchange
	flowSplice          // a local TCP connection spliced into the namespace
)

// flowCapacity bounds the number of concurrent flows.
const flowCapacity = 1 << 17

// indexInitialSize is the initial size hint of the flow index.
const indexInitialSize = 4096

// flowKey identifies a flow from the guest side: protocol, the guest's
// address and port (echo identifier for ICMP), and the peer's address and
// port as the guest addresses them.
type flowKey struct {
	proto     uint8
	guestAddr [16]byte
	peerAddr  [16]byte
	guestPort uint16
	peerPort  uint16
}

func newFlowKey(proto uint8, guest netip.Addr, guestPort uint16, peer netip.Addr, peerPort uint16) flowKey {
	return flowKey{proto: proto, guestAddr: guest.As16(), peerAddr: peer.As16(), guestPort: guestPort, peerPort: peerPort}
}

type flow struct {
	typ        flowType
	dead       bool
	key        flowKey
	sock       int   // host-side socket, -1 if none
	lastActive int64 // monotonic ns of the last traffic either way
	activePos  int32 // position in flowTable.active
	index      int32 // this flow's slot

	tcp    tcpConn
	udp    udpFlow
	splice spliceConn
}

type flowTable struct {
	flows  []flow
	free   []int32 // stack of free slots
	active []int32 // allocated slots, in no particular order
	index  map[flowKey]int32
	dying  []int32 // killed in this batch, freed by sweep
}

// The guest side of a flow, as the guest sees it, is its key. Flows hold no
// pointers (addresses are kept as 16 bytes), so that the garbage collector
// never scans the table.

func (f *flow) guestAddr() netip.Addr { return netip.AddrFrom16(f.key.guestAddr).Unmap() }
func (f *flow) peerAddr() netip.Addr  { return netip.AddrFrom16(f.key.peerAddr).Unmap() }
func (f *flow) guestPort() uint16     { return f.key.guestPort }
func (f *flow) peerPort() uint16      { return f.key.peerPort }

// at returns flow i.
func (t *flowTable) at(i int) *flow { return &t.flows[i] }

func (t *flowTable) init(capacity int) {
	t.flows = make([]flow, capacity)
	t.free = make([]int32, capacity)
	for i := range t.free {
		t.free[i] = int32(capacity - 1 - i) // pop order: 0, 1, 2, ...
	}
	t.active = make([]int32, 0, capacity)
	// The index starts small and doubles as flows come: sizing it for
	// the whole capacity up front costs a third of a second at start.
	// Growing is amortised: a handful of allocations over pasta's life.
	t.index = make(map[flowKey]int32, min(capacity, indexInitialSize))
	t.dying = make([]int32, 0, 1024)
}

// lookup finds a live flow by its guest-side key.
func (t *flowTable) lookup(k flowKey) (int, bool) {
	i, ok := t.index[k]
	return int(i), ok
}

// alloc takes a free slot and indexes it under k. It returns false when the
// table is full.
func (t *flowTable) alloc(typ flowType, k flowKey) (int, bool) {
	if len(t.free) == 0 {
		return 0, false
	}
	i := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	t.flows[i] = flow{typ: typ, key: k, sock: -1, activePos: int32(len(t.active)), index: i}
	t.active = append(t.active, i)
	t.index[k] = i
	return int(i), true
}

// allocUnindexed takes a free slot for a flow that is not found from the
// guest side (spliced flows never cross the tap).
func (t *flowTable) allocUnindexed(typ flowType) (int, bool) {
	if len(t.free) == 0 {
		return 0, false
	}
	i := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	t.flows[i] = flow{typ: typ, sock: -1, activePos: int32(len(t.active)), index: i}
	t.active = append(t.active, i)
	return int(i), true
}

// kill closes a flow's socket and unindexes it; the slot is freed by sweep.
func (t *flowTable) kill(c *ctx, i int) {
	f := &t.flows[i]
	if f.dead || f.typ == flowFree {
		return
	}
	f.dead = true
	if c.udpTx.flow == i {
		c.udpTx.flow, c.udpTx.n, c.udpTx.used = -1, 0, 0 // drop what was queued for it
	}
	if f.sock >= 0 {
		// Closing takes the socket out of epoll: no other descriptor
		// refers to it, so no epoll_ctl is needed.
		unix.Close(f.sock)
		f.sock = -1
	}
	if j, ok := t.index[f.key]; ok && int(j) == i {
		delete(t.index, f.key)
	}
	t.dying = append(t.dying, int32(i))
}

// sweep frees the flows killed during the last batch.
func (t *flowTable) sweep(*ctx) {
	for _, i := range t.dying {
		pos := t.flows[i].activePos
		last := t.active[len(t.active)-1]
		t.active[pos] = last
		t.flows[last].activePos = pos
		t.active = t.active[:len(t.active)-1]
		t.flows[i] = flow{}
		t.free = append(t.free, i)
	}
	t.dying = t.dying[:0]
}

// expire kills flows that have been idle for longer than their timeout.
func (t *flowTable) expire(c *ctx) {
	for _, i := range t.active {
		f := &t.flows[i]
		if f.dead || c.now-f.lastActive <= idleTimeout(f.typ) {
			continue
		}
		if debugOn() {
			debugf("flow %d: idle timeout", i)
		}
		c.closeFlow(int(i))
	}
}

// closeFlow ends a flow the way its type requires: TCP peers are reset.
func (c *ctx) closeFlow(i int) {
	switch c.flows.at(i).typ {
	case flowTCP:
		c.tcpResetBoth(i)
	case flowSplice:
		c.spliceClose(i, true)
	default:
		c.flows.kill(c, i)
	}
}

// runTimers fires the flow timers that expired, and tells whether any
// timer is still running.
func (t *flowTable) runTimers(c *ctx) bool {
	armed := false
	for _, i := range t.active {
		f := &t.flows[i]
		if f.dead || f.typ != flowTCP || f.tcp.deadline == 0 {
			continue
		}
		if f.tcp.deadline <= c.now {
			c.tcpTimer(int(i))
		}
		armed = armed || (!f.dead && f.tcp.deadline != 0)
	}
	return armed
}

// idleTimeout returns how long a flow of a type lives without traffic.
func idleTimeout(typ flowType) int64 {
	switch typ {
	case flowPing:
		return pingTimeoutNS
	case flowTCP, flowSplice:
		return tcpIdleTimeoutNS
	case flowUDP:
		return udpTimeoutNS
	}
	return 0
}

// used returns the number of allocated flows.
func (t *flowTable) used() int { return len(t.flows) - len(t.free) }
