package main

import (
	"math"

	"golang.org/x/sys/unix"
)

// The descriptor budget. Every flow holds host descriptors (a socket; a
// spliced connection two sockets and two pipes), and pasta may hold no
// more than its RLIMIT_NOFILE, raised at start to the hard limit. A guest
// is untrusted: one loop of datagrams to many ports, or of SYNs to an
// address that never answers, would otherwise take every descriptor, and
// then every new flow of the namespace would fail. So the descriptors left
// after a reserve (listeners, the auto scan, the namespace thread, the
// spare pipes of splice.go) are
// divided into pools, each with a cap:
//
//	TCP connections          5/8   (half-open connects at most 1/8 of all)
//	UDP flows                3/16
//	ICMP echo flows          1/32
//	spliced connections      1/8   (6 descriptors each)
//
// The TCP share is a reserve nothing else can use. When a pool is full, a
// new flow evicts the pool's oldest entry where one may be evicted: the
// longest idle UDP or echo flow, the oldest half-open connect (dropped
// silently: the guest sends its SYN again). Established
// and spliced connections are never evicted; when their pool is full, new
// ones are refused (TCP with a RST). Each full pool warns, at most once a
// second, naming itself. The flow table and its index are sized for the
// sum of the caps (flow.go).

type poolID uint8

const (
	poolTCP      poolID = iota // TCP connections past their host-side connect
	poolHalfOpen               // TCP connects in progress (guest SYN, host connect pending)
	poolUDP                    // UDP flows, spliced ones too
	poolPing                   // ICMP and ICMPv6 echo flows
	poolSplice                 // spliced TCP connections
	numPools
)

const (
	fdReserveMin    = 64   // descriptors kept for all but flows, at least
	peerBuckets     = 4096 // counters of flows per peer address (hashed)
	dstQuotaMin     = 16   // half-open connects to one peer, at least
	spliceFDs       = 6    // two sockets, two pipes
	lruGranularity  = int64(1e9)
	poolWarnEveryNS = int64(1e9)
)

// poolNames name the pools in warnings.
var poolNames = [numPools]string{"TCP connections", "half-open TCP connects", "UDP flows", "ICMP echo flows", "spliced connections"}

// perPeer counts flows by peer address (the address the guest sees), in
// hashed buckets, so that the count is bounded and sized once; two peers
// sharing a bucket share its count and its cap.
type perPeer struct {
	count [peerBuckets]uint32
	max   uint32
}

// bucket is the counter of peer's bucket.
func (q *perPeer) bucket(t *flowTable, peer *[16]byte) *uint32 {
	h := mix64(t.index.seed ^ le64(peer[:8]))
	h = mix64(h ^ le64(peer[8:]))
	return &q.count[h%peerBuckets]
}

// full tells whether the flows counted for peer reached the cap.
func (q *perPeer) full(t *flowTable, peer *[16]byte) bool {
	return *q.bucket(t, peer) >= q.max
}

// One peer may hold only part of the half-open connects: a flood of SYNs
// to an address that never answers then costs pasta a lookup per SYN, not
// a socket and a connect, so it drains the tap faster than the guest
// fills it and the guest's other traffic keeps flowing (a full tap queue
// drops everyone's frames, in the guest's kernel, where pasta can't
// choose). SYNs over the quota are dropped, as by a host whose SYN queue
// is full: a guest that cares sends them again. SYNs waiting for their
// turn (admit.go) count as half-open here.
//
// And one peer may hold only part of the TCP connections
// (peerConnsShare), half-open ones included, whichever side opened them:
// a storm of connections to one server, or from one client to a
// forwarded port, can't take the TCP share from connections to (or from)
// everyone else. Connections over the cap are refused, with a RST, as
// when the whole share is taken.

// halfOpenQuotaFull tells whether connects to k's peer may not take more
// of the half-open pool.
func (t *flowTable) halfOpenQuotaFull(k *flowKey) bool {
	return t.halfOpenPerPeer.full(t, &k.peerAddr)
}

// halfOpenCount is the count of half-open connects to k's peer.
func (t *flowTable) halfOpenCount(k *flowKey) *uint32 {
	return t.halfOpenPerPeer.bucket(t, &k.peerAddr)
}

// peerConnsFull tells whether k's peer holds all the TCP connections one
// peer may hold.
func (t *flowTable) peerConnsFull(k *flowKey) bool {
	return t.connsPerPeer.full(t, &k.peerAddr)
}

// pool is a class of flows with a cap, and the list of its flows, oldest
// (or longest idle) first.
type pool struct {
	max, n     int
	head, tail int32 // -1 when empty
	lastWarn   int64
}

// budget is how many flows each pool may hold.
type budget [numPools]int

// flows is the number of flows the budget allows in all: half-open
// connects count in the TCP share.
func (b budget) flows() int { return b[poolTCP] + b[poolUDP] + b[poolPing] + b[poolSplice] }

// budgetFor divides nofile descriptors, less the reserve, among the pools,
// each pool also bounded by its share of flowCapacity. Listeners and the
// control socket are not counted in the reserve: rebudget takes them out
// of nofile first.
func budgetFor(nofile int) budget {
	avail := max(nofile-fdReserveMin-nofile/16, 16)
	share := func(num, den, fdsPerFlow int) int {
		return max(min(avail*num/den/fdsPerFlow, flowCapacity*num/den), 1)
	}
	return budget{
		poolTCP:      share(5, 8, 1),
		poolHalfOpen: share(1, 8, 1),
		poolUDP:      share(3, 16, 1),
		poolPing:     share(1, 32, 1),
		poolSplice:   share(1, 8, spliceFDs),
	}
}

// fileLimit is RLIMIT_NOFILE's soft limit, as raised at start.
func fileLimit() int {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Cur > 1<<30 {
		return 1 << 30
	}
	return int(rl.Cur)
}

// growFDTable makes the kernel's descriptor table of the process as large
// as the first n descriptors need, once, at start. The kernel grows it
// when a new descriptor's number passes a power of two, and in a process
// with threads (the Go runtime has several) it then waits for an RCU
// grace period: during a storm of connections, the socket() call that
// took descriptor 2048, 4096, 8192 or 16384 stalled the loop for 10 ms
// or more each time. The table never shrinks; it costs the kernel 8
// bytes per descriptor, hence the bound.
// Any open descriptor fd serves to make the copy that grows it.
func growFDTable(fd, n int) {
	n = min(n, fdTableGrowMax)
	probe, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, n-1) // the lowest free descriptor from n-1 on
	if err == nil {
		unix.Close(probe)
	}
}

// fdTableGrowMax bounds growFDTable: 64 Ki descriptors, 512 KiB of the
// kernel's memory.
const fdTableGrowMax = 1 << 16

// setPools empties the pools and gives them the caps of b.
func (t *flowTable) setPools(b budget) {
	for p := range t.pools {
		t.pools[p] = pool{head: -1, tail: -1}
	}
	t.halfOpenPerPeer, t.connsPerPeer = perPeer{}, perPeer{}
	t.setCaps(b)
}

// setCaps gives the pools, and the per-peer counts, the caps of b. Pools
// holding more than their new cap keep their flows: new ones wait for
// room, or evict as they would in a full pool.
func (t *flowTable) setCaps(b budget) {
	for p := range t.pools {
		t.pools[p].max = b[p]
	}
	t.halfOpenPerPeer.max = uint32(max(b[poolHalfOpen]/8, dstQuotaMin))
	t.connsPerPeer.max = uint32(b[poolTCP] * peerConnsShare / 8)
	if t.connsPerPeer.max < peerConnsMin {
		t.connsPerPeer.max = math.MaxUint32 // too few to share: the pool's cap is the only one
	}
}

// rebudget divides the descriptors again after the listeners or the
// control socket changed: they come out of what the flows may have. The
// flow table keeps the size it was given at start, for the most flows
// pasta can have (without any listener).
func (c *ctx) rebudget() {
	held := c.listenersOpen
	if c.ctl != nil {
		held += 1 + ctlMaxClients // its listening socket and its clients
	}
	c.flows.setCaps(budgetFor(c.nofile - held))
}

// One peer may hold peerConnsShare eighths of the TCP connections, the
// rest being kept for the others, if that is at least peerConnsMin.
const (
	peerConnsShare = 6
	peerConnsMin   = 16
)

// countPeer counts flow i in (add) or out of the per-peer counts of its
// pool, if its pool counts by peer.
func (t *flowTable) countPeer(i int, add bool) {
	f := &t.flows[i]
	switch f.pool {
	case poolHalfOpen:
		step(t.halfOpenPerPeer.bucket(t, &f.key.peerAddr), add)
		step(t.connsPerPeer.bucket(t, &f.key.peerAddr), add)
	case poolTCP:
		step(t.connsPerPeer.bucket(t, &f.key.peerAddr), add)
	}
}

// step adds one to a count, or takes one away.
func step(n *uint32, add bool) {
	if add {
		*n++
	} else {
		*n--
	}
}

// poolAdd appends flow i to pool p's list, as its newest entry.
func (t *flowTable) poolAdd(i int, p poolID) {
	pl := &t.pools[p]
	f := &t.flows[i]
	f.pool, f.poolPrev, f.poolNext = p, pl.tail, -1
	if pl.tail >= 0 {
		t.flows[pl.tail].poolNext = int32(i)
	} else {
		pl.head = int32(i)
	}
	pl.tail = int32(i)
	pl.n++
	t.countPeer(i, true)
}

// poolRemove takes flow i out of its pool's list.
func (t *flowTable) poolRemove(i int) {
	f := &t.flows[i]
	pl := &t.pools[f.pool]
	if f.poolPrev >= 0 {
		t.flows[f.poolPrev].poolNext = f.poolNext
	} else {
		pl.head = f.poolNext
	}
	if f.poolNext >= 0 {
		t.flows[f.poolNext].poolPrev = f.poolPrev
	} else {
		pl.tail = f.poolPrev
	}
	f.poolPrev, f.poolNext = -1, -1
	pl.n--
	t.countPeer(i, false)
}

// poolMove moves flow i to the end of pool p's list.
func (t *flowTable) poolMove(i int, p poolID) {
	t.poolRemove(i)
	t.poolAdd(i, p)
}

// touch records traffic on flow i. A flow that had been idle for a while
// moves to the end of its pool's list, so that the list stays ordered by
// last activity (to lruGranularity) and the eviction candidate, its head,
// is the longest idle flow, at the cost of one list move per flow and
// second at most.
func (t *flowTable) touch(i int, now int64) {
	f := &t.flows[i]
	if f.poolNext >= 0 && now-f.lastActive > lruGranularity && !f.dead {
		t.poolMove(i, f.pool)
	}
	f.lastActive = now
}

// makeRoom makes room for one more flow in pool p, evicting the oldest
// entry of the pool that gives way when p is full. It returns false when
// the new flow must be refused.
func (c *ctx) makeRoom(p poolID) bool {
	full, named, victims := c.flows.isFull(p)
	if !full {
		return true
	}
	victim := int32(-1)
	if victims != p || evictable(p) {
		victim = c.flows.pools[victims].head
	}
	c.warnPool(named, victims, victim >= 0)
	if victim < 0 {
		return false
	}
	if debugOn() {
		debugf("flow %d: evicted for a new flow (%s)", victim, poolNames[victims])
	}
	c.evict(int(victim))
	return true
}

// evict ends a flow to make room. A half-open connect is dropped without
// a word to the guest, as a host with a full SYN queue drops a SYN: the
// guest sends its SYN again if it still cares, and a flood costs no frame
// more. Other flows end as their idle timeout would end them.
func (c *ctx) evict(i int) {
	if c.flows.at(i).pool == poolHalfOpen {
		c.flows.kill(c, i) // closing a socket that is still connecting sends nothing
		return
	}
	c.closeFlow(i)
}

// isFull tells whether pool p is full, which pool's cap was reached, and
// which pool gives way for a new flow of p: TCP connections and half-open
// connects share the TCP share, and only half-open ones give way.
func (t *flowTable) isFull(p poolID) (full bool, named, victims poolID) {
	switch p {
	case poolTCP, poolHalfOpen:
		tcp, half := &t.pools[poolTCP], &t.pools[poolHalfOpen]
		if tcp.n+half.n >= tcp.max {
			return true, poolTCP, poolHalfOpen
		}
		return p == poolHalfOpen && half.n >= half.max, poolHalfOpen, poolHalfOpen
	}
	return t.pools[p].n >= t.pools[p].max, p, p
}

// evictable tells whether the flows of a pool may give way to new ones:
// datagram flows (a peer sees no difference between an evicted flow and a
// new one) and half-open connects (the guest retries its SYN).
func evictable(p poolID) bool { return p == poolUDP || p == poolPing || p == poolHalfOpen }

// warnPool says, at most once a second per pool, that pool p is full and
// what is done about it.
func (c *ctx) warnPool(p, victims poolID, evicting bool) {
	pl := &c.flows.pools[p]
	if pl.lastWarn != 0 && c.now-pl.lastWarn < poolWarnEveryNS {
		return
	}
	pl.lastWarn = c.now
	switch {
	case !evicting:
		warnf("%s: all %d in use, refusing new ones", poolNames[p], pl.max)
	case victims == p:
		warnf("%s: all %d in use, evicting the oldest", poolNames[p], pl.max)
	default:
		warnf("%s: all %d in use, evicting the oldest of the %s", poolNames[p], pl.max, poolNames[victims])
	}
}

// warnPeerConns says, at most once a second, that connections are refused
// because their peer holds its share of them.
func (c *ctx) warnPeerConns() {
	if c.warnDue(warnPeerConns) {
		warnf("TCP connections: %d to or from one address, refusing more to or from it", c.flows.connsPerPeer.max)
	}
}
