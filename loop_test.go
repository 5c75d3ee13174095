package main

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// junkFrame is a frame too short to parse: pasta drops it, but reading it
// is an event of the loop.
var junkFrame = []byte{0xde, 0xad}

func TestSpinWaitReturnsPendingEvents(t *testing.T) {
	tp := newTestPasta(t, nil)
	if _, err := unix.Write(tp.peer, junkFrame); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n := tp.c.spinWait()
	if n < 1 {
		t.Fatalf("spinWait found %d events with a frame waiting on the tap", n)
	}
	if ref := epRef(tp.c.events[0].Fd); ref.kind() != kindTap {
		t.Fatalf("spinWait's event is of kind %d, want the tap's (%d)", ref.kind(), kindTap)
	}
	// It returned on the event, not at its bound (with a generous margin
	// for a loaded machine, the bound itself is 60 µs).
	if d := time.Since(start); d > time.Second {
		t.Fatalf("spinWait took %v with an event pending", d)
	}
}

func TestSpinWaitIsBounded(t *testing.T) {
	tp := newTestPasta(t, nil)
	start := time.Now()
	if n := tp.c.spinWait(); n != 0 {
		t.Fatalf("spinWait found %d events on an idle loop", n)
	}
	d := time.Since(start)
	if d < time.Duration(spinNS) {
		t.Fatalf("spinWait gave up after %v, before its bound of %v", d, time.Duration(spinNS))
	}
	if d > time.Second {
		t.Fatalf("spinWait spun for %v, far past its bound of %v", d, time.Duration(spinNS))
	}
}

// An idle loop never spins: only a batch with events is followed by a
// spin, and a wake-up without events (a timer) ends it.
func TestRunOnceSpinsOnlyAfterEvents(t *testing.T) {
	tp := newTestPasta(t, nil)
	tp.injectRaw(junkFrame)
	if !tp.c.spinNext {
		t.Fatal("after a frame, the next wait would not spin")
	}
	// Nothing comes: the spin finds nothing, the wait times out.
	if err := tp.c.runOnce(1); err != nil {
		t.Fatal(err)
	}
	if tp.c.spinNext {
		t.Fatal("after an empty wait, an idle loop would spin")
	}
}

func TestSpinWaitAllocatesNothing(t *testing.T) {
	tp := newTestPasta(t, nil)
	if a := testing.AllocsPerRun(50, func() { tp.c.spinWait() }); a != 0 {
		t.Fatalf("spinWait allocates %v times per call", a)
	}
}
