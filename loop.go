package main

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An epoll event's data carries a reference, not a pointer: the kind of
// descriptor in the top 8 bits and a flow (or other) index below.
type epRef uint32

type epKind uint8

const (
	kindTap        epKind = iota + 1 // the tap (or test socketpair)
	kindPing                         // a ping socket of an ICMP flow
	kindWake                         // eventfd poked by the signal goroutine
	kindNetnsWatch                   // inotify on the namespace file's folder
	kindPidfd                        // pidfd of the command or target process
	kindTCP                          // the socket of a TCP flow
	kindTCPListen                    // a listener of a forwarded TCP port
	kindUDP                          // the socket of an outbound UDP flow
	kindUDPListen                    // the socket of a forwarded UDP port
	kindSpliceHost                   // the host side of a spliced connection
	kindSpliceNs                     // the namespace side of a spliced connection
	kindCtlListen                    // the control socket (ctl.go)
	kindCtlClient                    // a client of the control socket
	numKinds
)

func makeRef(kind epKind, index int) epRef { return epRef(uint32(kind)<<24 | uint32(index)&0xffffff) }
func (r epRef) kind() epKind               { return epKind(r >> 24) }
func (r epRef) index() int                 { return int(r & 0xffffff) }

const (
	maxEvents       = 128  // per epoll_wait
	maxFramesPerRun = 1024 // tap frames read per wakeup: the tap's queue drains fast, and socket events wait little
	housekeepingNS  = int64(1e9)
	timerTickNS     = int64(50e6)  // resolution of flow timers
	spinNS          = int64(60e3)  // spinWait's bound: about half a request/response round trip here
	tcpAckDelayNS   = int64(200e3) // longest a delayed ACK waits while the loop is busy (tcpDelayAck)
	// spinMaxBatchBytes: a batch that moved this much data is bulk
	// transfer, whose next event is worth no spin: the socket or tap
	// queues fill while pasta sleeps, and the next batch moves more at
	// once. Spinning after bulk batches cost a quarter of pasta's CPU per
	// MiB on the spliced path (bench/cost.sh splice-out, perf).
	spinMaxBatchBytes = 64 << 10
)

// epollAdd registers fd for events with a reference.
func (c *ctx) epollAdd(fd int, events uint32, ref epRef) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(ref)}
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// epollDel removes fd; closing it would too, but only once every duplicate
// of the descriptor is closed.
func (c *ctx) epollDel(fd int) {
	_ = unix.EpollCtl(c.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// run is the event loop: one locked OS thread waiting on epoll, dispatching
// each ready descriptor, with housekeeping once a second. It returns when
// c.quit is set.
func (c *ctx) run() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c.updateClock()
	c.nextHousekeeping = c.now + housekeepingNS
	for !c.quit {
		if err := c.runOnce(c.waitTimeoutMS()); err != nil {
			return err
		}
	}
	return nil
}

// runOnce waits up to timeoutMS for events and handles one batch of them.
// Tests drive the loop through it directly.
func (c *ctx) runOnce(timeoutMS int) error {
	n := 0
	if timeoutMS > 0 && c.spinNext {
		n = c.spinWait()
	}
	var err error
	if n == 0 {
		if timeoutMS > 0 {
			c.tcpFlushDelayedAcks() // nothing came to carry them: before sleeping
		}
		n, err = unix.EpollWait(c.epfd, c.events[:], timeoutMS)
	}
	if err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("epoll_wait: %w", err)
	}
	c.updateClock()
	c.batchBytes = 0
	c.admit.budget = admitPerWakeup
	for i := 0; i < n; i++ {
		c.dispatch(epRef(c.events[i].Fd), c.events[i].Events)
	}
	c.admitQueued()
	c.spinNext = n > 0 && c.batchBytes < spinMaxBatchBytes
	if len(c.tcpDelayedAcks) > 0 && c.now >= c.tcpDelayedAcksDue {
		c.tcpFlushDelayedAcks()
	}
	if c.cfg.statsDelay > 0 {
		c.reportStats(n)
	}
	if c.timersArmed && c.now >= c.nextTimerTick {
		c.timersArmed = c.flows.runTimers(c)
		c.nextTimerTick = c.now + timerTickNS
	}
	c.flows.sweep(c)
	if c.now >= c.nextHousekeeping {
		c.housekeeping()
		c.nextHousekeeping = c.now + housekeepingNS
	}
	return nil
}

func (c *ctx) waitTimeoutMS() int {
	if c.admit.waiting() {
		return 0
	}
	next := c.nextHousekeeping
	if c.timersArmed {
		next = min(next, c.nextTimerTick)
	}
	ms := (next - c.now) / 1e6
	if ms < 0 {
		ms = 0
	}
	return int(ms) + 1
}

// updateClock reads the monotonic clock. time.Since goes through the
// vDSO: a clock_gettime system call per batch cost a tenth of pasta's time
// with many short connections.
func (c *ctx) updateClock() {
	c.now = int64(time.Since(clockBase))
}

// clockBase is the origin of ctx.now.
var clockBase = time.Now()

func (c *ctx) dispatch(ref epRef, events uint32) {
	c.stats.events[ref.kind()]++
	switch ref.kind() {
	case kindTap:
		c.tapReadable(events)
	case kindPing:
		c.pingReadable(ref.index(), events)
	case kindWake:
		c.wakeReadable()
	case kindNetnsWatch:
		c.netnsWatchReadable()
	case kindPidfd:
		c.pidfdReadable()
	case kindTCP:
		c.tcpSockEvent(ref.index(), events)
	case kindTCPListen:
		c.listenerReadable(ref.index())
	case kindUDP:
		c.udpSockEvent(ref.index(), events)
	case kindUDPListen:
		c.udpListenerReadable(ref.index())
	case kindSpliceHost:
		c.spliceEvent(ref.index(), sideHost, events)
	case kindSpliceNs:
		c.spliceEvent(ref.index(), sideNs, events)
	case kindCtlListen:
		c.ctlAccept()
	case kindCtlClient:
		c.ctlEvent(ref.index(), events)
	}
}

// tapReadable reads and handles the frames waiting on the tap.
func (c *ctx) tapReadable(events uint32) {
	if events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 && events&unix.EPOLLIN == 0 {
		errorf("tap: device gone")
		c.stop(1)
		return
	}
	defer c.flushBatches()
	c.admit.source = fromTap
	defer c.admit.doneReading()
	for i := 0; i < maxFramesPerRun; i++ {
		frame, err := c.dev.recv(c.rxBuf, &c.rxOff)
		if err != nil {
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				c.stats.rxErrors++
				if debugOn() {
					debugf("tap: read: %v", err)
				}
			}
			return
		}
		c.admit.frame = frame
		c.handleFrame(frame)
		c.rxOff = rxOffload{}
	}
}

// flushBatches sends what handling a batch of guest frames queued: TCP
// ACKs and UDP datagrams.
func (c *ctx) flushBatches() {
	c.tcpFlushAcks()
	c.udpFlush()
}

// stop makes the loop return after the current batch.
func (c *ctx) stop(code int) {
	c.quit = true
	c.exitCode = code
}

// housekeeping runs about once a second: flow timeouts, giving back the
// flow table's memory above the flows in use, the auto port scans, control
// clients too slow, and unsolicited router advertisements.
func (c *ctx) housekeeping() {
	c.flows.expire(c)
	c.flows.release()
	c.scanAutoForward()
	c.closeIdleRetired()
	c.ctlExpire()
	c.sendPeriodicRouterAdvert()
}

// spinWait polls epoll without sleeping, for up to spinNS after a batch
// that had events, and returns what it found (0: nothing came). The next
// event of a request/response exchange or of a short connection comes
// within tens of microseconds; a thread that goes to sleep for it pays for
// the wake-up of an idle CPU on top (on this 2-core VM, TCP request/response
// p50 113 -> 66 µs, short connections 5,100 -> 6,300/s). Between polls it
// yields the CPU to whatever else is runnable there (sched_yield(2)), so a
// workload on the same CPU loses nothing to the spin. An idle pasta does
// not spin: a wake-up without events (a timer) is not followed by one.
// Both calls never block: RawSyscall, no hand-off by Go's scheduler.
func (c *ctx) spinWait() int {
	start := time.Since(clockBase)
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(c.epfd), uintptr(unsafe.Pointer(&c.events[0])), uintptr(len(c.events)), 0, 0, 0)
		if e == 0 && r > 0 {
			return int(r)
		}
		if int64(time.Since(clockBase)-start) >= spinNS {
			return 0
		}
		unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}
