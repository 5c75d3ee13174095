package main

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"unsafe"

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
//
// Memory is sized once, at start, for the most flows the descriptor budget
// allows (budget.go): the array is mapped outside the Go heap (flows hold
// no pointers, so the garbage collector never needs to see it, and its
// size does not raise the collector's heap goal), the index is a fixed
// open-addressing table, and a bitmap of free slots hands out the lowest
// free slot first, so that flows stay packed at the start of the array.
// Once a second, the pages that hold only free slots are given back to
// the kernel (release), so that after a burst resident memory returns to
// what it was.

type flowType uint8

const (
	flowFree   flowType = iota
	flowPing            // ICMP or ICMPv6 echo
	flowTCP             // a TCP connection
	flowUDP             // a UDP exchange
	flowSplice          // a local TCP connection spliced into the namespace
)

// flowCapacity bounds the number of concurrent flows, whatever the
// descriptor limit.
const flowCapacity = 1 << 17

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
	pool       poolID // the descriptor pool it counts in (budget.go)
	key        flowKey
	sock       int   // host-side socket, -1 if none
	lastActive int64 // monotonic ns of the last traffic either way
	index      int32 // this flow's slot
	poolPrev   int32 // neighbours in the pool's list, oldest first; -1 at the ends
	poolNext   int32
	rule       ruleRef // the forwarding rule that made it, for its counters

	tcp    tcpConn
	udp    udpFlow
	splice spliceConn
}

type flowTable struct {
	flows []flow   // mapped at init, outside the Go heap
	mem   []byte   // the mapping behind flows
	free  []uint64 // bitmap: bit set = slot free
	dirty []uint64 // bitmap of the mapping's pages touched since last given back
	hint  int      // no free slot in the words below hint
	count int      // allocated slots
	top   int      // slots at and above top are untouched since the last release
	index flowIndex
	dying []int32 // killed in this batch, freed by sweep
	pools [numPools]pool

	halfOpenPerPeer perPeer // half-open connects and queued SYNs, per peer
	connsPerPeer    perPeer // TCP connections, half-open ones too, per peer
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

// init allocates the table for the flows b allows, and sets its pools.
// Calling it again replaces the table.
func (t *flowTable) init(b budget) error {
	t.close()
	// Flows evicted in a batch keep their slots until its end: room for
	// them on top of the pools' caps.
	capacity := b.flows() + b.flows()/16 + 64
	size := max(capacity*int(unsafe.Sizeof(flow{})), 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	t.mem = mem
	t.flows = unsafe.Slice((*flow)(unsafe.Pointer(&mem[0])), capacity)
	t.free = make([]uint64, (capacity+63)/64)
	for i := range t.free {
		t.free[i] = ^uint64(0)
	}
	if r := capacity % 64; r != 0 {
		t.free[len(t.free)-1] = 1<<r - 1 // no slots past the end
	}
	t.dirty = make([]uint64, (len(mem)/unix.Getpagesize()+63)/64)
	t.hint, t.count, t.top = 0, 0, 0
	t.index.init(capacity)
	t.dying = make([]int32, 0, capacity)
	t.setPools(b)
	return nil
}

// close unmaps the table.
func (t *flowTable) close() {
	if t.mem != nil {
		_ = unix.Munmap(t.mem)
	}
	t.mem, t.flows = nil, nil
}

// lookup finds a live flow by its guest-side key.
func (t *flowTable) lookup(k flowKey) (int, bool) {
	_, slot := t.index.find(t, &k)
	return int(slot), slot >= 0
}

// alloc takes a free slot in pool p and indexes it under k. It returns
// false when the table is full (the pools keep it from being).
func (t *flowTable) alloc(typ flowType, p poolID, k flowKey) (int, bool) {
	i, ok := t.allocWithKey(typ, p, &k)
	if ok {
		t.index.insert(t, i)
	}
	return i, ok
}

// allocUnindexed takes a free slot for a flow that is not found from the
// guest side (spliced flows never cross the tap).
func (t *flowTable) allocUnindexed(typ flowType, p poolID) (int, bool) {
	return t.allocWithKey(typ, p, &flowKey{})
}

func (t *flowTable) allocWithKey(typ flowType, p poolID, k *flowKey) (int, bool) {
	i := t.lowestFree()
	if i < 0 {
		return 0, false
	}
	t.free[i/64] &^= 1 << (i % 64)
	t.count++
	t.top = max(t.top, i+1)
	first, last := t.slotPages(i)
	for pg := first; pg <= last; pg++ {
		t.dirty[pg/64] |= 1 << (pg % 64)
	}
	t.flows[i] = flow{typ: typ, key: *k, sock: -1, index: int32(i)}
	t.poolAdd(i, p)
	return i, true
}

// lowestFree finds the lowest free slot, or -1.
func (t *flowTable) lowestFree() int {
	for w := t.hint; w < len(t.free); w++ {
		if t.free[w] != 0 {
			t.hint = w
			return w*64 + bits.TrailingZeros64(t.free[w])
		}
	}
	t.hint = len(t.free)
	return -1
}

// nextUsed returns the first allocated slot at or after i, or -1: loops
// over the flows are "for i := t.nextUsed(0); i >= 0; i = t.nextUsed(i+1)".
func (t *flowTable) nextUsed(i int) int {
	for w := i / 64; w*64 < t.top; w++ {
		used := ^t.free[w]
		if w == i/64 {
			used &= ^uint64(0) << (i % 64)
		}
		if used != 0 {
			if j := w*64 + bits.TrailingZeros64(used); j < t.top {
				return j
			}
			return -1
		}
	}
	return -1
}

// kill closes a flow's socket, unindexes it and takes it out of its pool;
// the slot is freed by sweep.
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
	t.index.remove(t, i)
	t.poolRemove(i)
	t.dying = append(t.dying, int32(i))
}

// sweep frees the flows killed during the last batch.
func (t *flowTable) sweep(*ctx) {
	for _, i := range t.dying {
		t.flows[i] = flow{}
		t.free[i/64] |= 1 << (i % 64)
		t.hint = min(t.hint, int(i)/64)
		t.count--
	}
	t.dying = t.dying[:0]
}

// release gives back to the kernel the pages of the table that hold only
// free slots and were touched since they were last given back (after a
// burst of flows, say). Free slots are zero, and so are pages the kernel
// gives back (MADV_DONTNEED on a private anonymous mapping).
func (t *flowTable) release() {
	from, to := -1, -1 // a run of pages to give back: [from, to)
	for w := range t.dirty {
		for pages := t.dirty[w]; pages != 0; pages &= pages - 1 {
			pg := w*64 + bits.TrailingZeros64(pages)
			if !t.pageFree(pg) {
				continue
			}
			t.dirty[w] &^= 1 << (pg % 64)
			if pg != to {
				t.giveBack(from, to)
				from = pg
			}
			to = pg + 1
		}
	}
	t.giveBack(from, to)
	t.top = t.highestUsed() + 1
}

// giveBack gives pages [from, to) of the table back to the kernel.
func (t *flowTable) giveBack(from, to int) {
	page := unix.Getpagesize()
	if from >= 0 && to > from {
		_ = unix.Madvise(t.mem[from*page:min(to*page, len(t.mem))], unix.MADV_DONTNEED)
	}
}

// slotPages returns the first and last page that slot i lies on.
func (t *flowTable) slotPages(i int) (int, int) {
	size, page := int(unsafe.Sizeof(flow{})), unix.Getpagesize()
	return i * size / page, ((i+1)*size - 1) / page
}

// pageFree tells whether every slot on page pg is free.
func (t *flowTable) pageFree(pg int) bool {
	size, page := int(unsafe.Sizeof(flow{})), unix.Getpagesize()
	for i := pg * page / size; i <= min(((pg+1)*page-1)/size, len(t.flows)-1); i++ {
		if t.free[i/64]&(1<<(i%64)) == 0 {
			return false
		}
	}
	return true
}

// highestUsed returns the highest allocated slot, or -1.
func (t *flowTable) highestUsed() int {
	for w := (t.top - 1) / 64; w >= 0 && t.top > 0; w-- {
		if used := ^t.free[w]; used != 0 {
			return w*64 + 63 - bits.LeadingZeros64(used)
		}
	}
	return -1
}

// used returns the number of allocated flows.
func (t *flowTable) used() int { return t.count }

// expire kills flows that have been idle for longer than their timeout.
func (t *flowTable) expire(c *ctx) {
	for i := t.nextUsed(0); i >= 0; i = t.nextUsed(i + 1) {
		f := &t.flows[i]
		if f.dead || c.now-f.lastActive <= idleTimeout(f.typ) {
			continue
		}
		if debugOn() {
			debugf("flow %d: idle timeout", i)
		}
		c.closeFlow(i)
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
	for i := t.nextUsed(0); i >= 0; i = t.nextUsed(i + 1) {
		f := &t.flows[i]
		if f.dead || f.typ != flowTCP || f.tcp.deadline == 0 {
			continue
		}
		if f.tcp.deadline <= c.now {
			c.tcpTimer(i)
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

// flowIndex finds flows by key: open addressing with linear probing in a
// table of at least twice as many entries as there are flows, so that
// probes stay short; sized once. An entry is a slot number, -1 when empty.
type flowIndex struct {
	slots []int32
	mask  uint64
	seed  uint64 // keeps the guest from choosing keys that collide
}

func (x *flowIndex) init(capacity int) {
	n := 1 << bits.Len(uint(max(2*capacity-1, 1)))
	x.slots = make([]int32, n)
	for i := range x.slots {
		x.slots[i] = -1 // touches every page now: the index's memory is constant
	}
	x.mask = uint64(n - 1)
	x.seed = rand.Uint64()
}

// home is where the probe for k starts.
func (x *flowIndex) home(k *flowKey) uint64 {
	h := x.seed ^ uint64(k.proto)<<32 ^ uint64(k.guestPort)<<16 ^ uint64(k.peerPort)
	h = mix64(h ^ le64(k.guestAddr[:8]))
	h = mix64(h ^ le64(k.guestAddr[8:]))
	h = mix64(h ^ le64(k.peerAddr[:8]))
	h = mix64(h ^ le64(k.peerAddr[8:]))
	return h & x.mask
}

// mix64 is the finaliser of MurmurHash3: every input bit affects every
// output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// find returns the position of k's entry and its slot, or the empty
// position where the probe ended and -1.
func (x *flowIndex) find(t *flowTable, k *flowKey) (uint64, int32) {
	for pos := x.home(k); ; pos = (pos + 1) & x.mask {
		s := x.slots[pos]
		if s < 0 || t.flows[s].key == *k {
			return pos, s
		}
	}
}

// insert indexes flow i under its key, replacing an entry for the same key.
func (x *flowIndex) insert(t *flowTable, i int) {
	pos, _ := x.find(t, &t.flows[i].key)
	x.slots[pos] = int32(i)
}

// remove drops flow i's entry, if the index holds it, and moves later
// entries of the probe run back so that every probe still reaches its key
// (Knuth, TAOCP vol. 3, 6.4, algorithm R).
func (x *flowIndex) remove(t *flowTable, i int) {
	pos, s := x.find(t, &t.flows[i].key)
	if int(s) != i {
		return
	}
	for j := (pos + 1) & x.mask; x.slots[j] >= 0; j = (j + 1) & x.mask {
		h := x.home(&t.flows[x.slots[j]].key)
		// The entry at j may move to the hole at pos unless its home lies
		// cyclically in (pos, j].
		if (pos < j && pos < h && h <= j) || (pos > j && (pos < h || h <= j)) {
			continue
		}
		x.slots[pos] = x.slots[j]
		pos = j
	}
	x.slots[pos] = -1
}
