package main

// Admission of new flows. Setting up a flow for a guest frame (a socket, a
// connect, an epoll registration) costs pasta more than anything else a
// frame costs, and a guest can ask for new flows faster than pasta sets
// them up: a storm of connections, a spray of datagrams to many ports.
// Until pasta reads them, the guest's frames wait in the tap's queue, in
// the guest's kernel, in one line: if pasta set up every flow as its frame
// came, a request on an established connection would wait behind all the
// set-ups ahead of it, and once the queue is full the guest's kernel would
// drop the frames of every flow alike.
//
// So a wakeup of the loop sets up at most admitPerWakeup new flows. A
// frame that would set up one more is copied to the admission queue, and
// pasta reads on: the tap's queue drains at the cost of a read and a
// look-up per frame, and the frames of established flows are handled as
// they come. After the events of each wakeup, queued frames are handled
// in order, as far as the wakeup's budget goes; while frames wait, the
// loop does not sleep. New frames go to the end of the queue while it is
// not empty, so that new flows are set up in the order the guest asked.
// A frame that finds the queue full is dropped and counted: a SYN is sent
// again when the guest's retransmission timer expires (RFC 9293 section
// 3.8.1; RFC 6298 section 2.1: one second at first, doubled each time), a
// datagram is lost as it could be on any network. The queue is sized once
// (admitQueueLen frames, admitQueueBytes bytes); a frame waits at most
// admitQueueLen/admitPerWakeup wakeups.

const (
	admitPerWakeup  = 64        // new flows set up per wakeup of the loop
	admitQueueLen   = 1024      // frames waiting for a new flow, at most
	admitQueueBytes = 256 << 10 // and their bytes
)

// frameSource says where the frame being handled comes from.
type frameSource uint8

const (
	fromElsewhere frameSource = iota // not the loop's tap reading (tests): set up at once
	fromTap                          // read from the tap in this wakeup
	fromQueue                        // taken from the admission queue
)

// admission is the budget of the current wakeup and the queue of frames
// waiting for a new flow.
type admission struct {
	budget int         // new flows this wakeup may still set up
	source frameSource // of the frame being handled
	frame  []byte      // the frame being handled, if from the tap

	queue   [admitQueueLen]queuedFrame // a ring: head is the oldest
	head, n int
	buf     []byte // the queued frames' bytes, a ring too
	bufHead int    // where the oldest queued frame starts
	bufTail int    // where the next one goes
	queued  uint64 // frames that waited
	dropped uint64 // frames dropped with the queue full
}

// queuedFrame is a frame in the admission queue.
type queuedFrame struct {
	off, len int32
	rxOff    rxOffload
	// halfOpen is the per-peer count of half-open connects that counts
	// this frame (a SYN) while it waits, or nil.
	halfOpen *uint32
}

func (a *admission) init() {
	a.buf = make([]byte, admitQueueBytes)
}

// admitNewFlow tells whether the frame being handled may set up a new
// flow now. If not, the frame is queued, or dropped when the queue is
// full, and the caller lets it go without a word to the guest. halfOpen,
// for a SYN, is the count of half-open connects to its peer, which counts
// it while it waits.
func (c *ctx) admitNewFlow(halfOpen *uint32) bool {
	a := &c.admit
	switch {
	case a.source == fromElsewhere:
		return true
	case a.source == fromQueue || a.n == 0 && a.budget > 0:
		a.budget--
		return true
	}
	c.queueFrame(halfOpen)
	return false
}

// queueFrame copies the frame being handled to the end of the admission
// queue, or drops it if there is no room.
func (c *ctx) queueFrame(halfOpen *uint32) {
	a := &c.admit
	off := a.reserve(len(a.frame))
	if off < 0 {
		a.dropped++
		if c.warnDue(warnAdmitFull) {
			warnf("new flows: %d frames already wait for theirs, dropping more (%d so far)", a.n, a.dropped)
		}
		return
	}
	copy(a.buf[off:], a.frame)
	a.queue[(a.head+a.n)%admitQueueLen] = queuedFrame{off: int32(off), len: int32(len(a.frame)), rxOff: c.rxOff, halfOpen: halfOpen}
	a.n++
	a.queued++
	if halfOpen != nil {
		*halfOpen++
	}
}

// reserve finds room for size bytes at the end of the byte ring, and
// returns where, or -1. A frame is never split: when it does not fit
// before the end of the buffer, it goes to the start, if the oldest frame
// has left room there.
func (a *admission) reserve(size int) int {
	if a.n == 0 {
		a.bufHead, a.bufTail = 0, 0
	}
	if a.n == admitQueueLen {
		return -1
	}
	at := a.bufTail
	switch {
	case a.bufTail >= a.bufHead && a.bufTail+size <= len(a.buf):
	case a.bufTail >= a.bufHead && size < a.bufHead:
		at = 0
	case a.bufTail < a.bufHead && a.bufTail+size < a.bufHead:
	default:
		return -1
	}
	a.bufTail = at + size
	return at
}

// admitQueued handles the queued frames, oldest first, while this
// wakeup's budget lasts.
func (c *ctx) admitQueued() {
	a := &c.admit
	if a.n == 0 {
		return
	}
	for a.n > 0 && a.budget > 0 {
		q := a.queue[a.head]
		if q.halfOpen != nil {
			*q.halfOpen-- // counted as half-open again if it becomes a connect
		}
		a.source, c.rxOff = fromQueue, q.rxOff
		c.dispatchFrame(a.buf[q.off : q.off+q.len])
		a.source, c.rxOff = fromElsewhere, rxOffload{}
		a.head = (a.head + 1) % admitQueueLen
		a.n--
		a.bufHead = int(a.queue[a.head].off)
	}
	c.flushBatches()
}

// doneReading ends the tap's batch of frames.
func (a *admission) doneReading() {
	a.source, a.frame = fromElsewhere, nil
}

// waiting tells whether frames wait for a new flow: the loop must not
// sleep.
func (a *admission) waiting() bool { return a.n > 0 }
