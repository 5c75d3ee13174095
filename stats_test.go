package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// --stats: the header once, then a line of counts at most every DELAY
// seconds, and only after events.
func TestStatsLines(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.statsDelay = 2 })
	c := tp.c
	var out bytes.Buffer
	c.statsOut = &out
	step := func(at float64, tap, tcp uint64) string {
		t.Helper()
		out.Reset()
		c.now = int64(at * 1e9)
		for range tap {
			c.dispatch(makeRef(kindTap, 0), 0)
		}
		c.stats.events[kindTCP] += tcp // as many TCP events as the loop would count
		c.reportStats(int(tap + tcp))
		return out.String()
	}
	kinds := int(numKinds - kindTap)
	// counts is the line of counts expected with tap and TCP events.
	counts := func(tap, tcp int) string {
		f := make([]string, kinds)
		for i := range f {
			f[i] = "       0"
		}
		f[0] = fmt.Sprintf("%8d", tap) // the tap is the first kind
		f[kindTCP-kindTap] = fmt.Sprintf("%8d", tcp)
		return strings.Join(f, "") + "\n"
	}
	lines := strings.SplitAfter(step(10, 3, 0), "\n")
	if len(lines) != kinds+2 || lines[0] != "       tap device\n" || lines[1] != "       |       ICMP/ICMPv6 echo socket\n" {
		t.Fatalf("first output: %q, want a header of %d lines, then a line", lines, kinds)
	}
	if got := lines[kinds]; got != counts(3, 0) {
		t.Errorf("first line %q, want %q", got, counts(3, 0))
	}
	if got := step(11, 1, 0); got != "" {
		t.Errorf("a line 1 s after the last, with a delay of 2 s: %q", got)
	}
	if got := step(12, 0, 5); got != counts(4, 5) {
		t.Errorf("line at 2 s: %q, want the counts since the start, no header: %q", got, counts(4, 5))
	}
	if got := step(20, 0, 0); got != "" {
		t.Errorf("a line without events since the last one: %q", got)
	}
	if got := step(20.5, 1, 0); got != counts(5, 5) {
		t.Errorf("events again, long after the last line: %q, want at once %q", got, counts(5, 5))
	}
}

// With statistics on, the loop still allocates nothing per event once the
// first line is out.
func TestStatsAllocatesNothing(t *testing.T) {
	tp := newTestPasta(t, func(c *config) { c.statsDelay = 1 })
	c := tp.c
	c.statsOut = &bytes.Buffer{}
	c.reportStats(1)
	allocs := testing.AllocsPerRun(100, func() {
		c.now += 2e9
		c.dispatch(makeRef(kindTap, 0), 0)
		c.reportStats(1)
		c.statsOut.(*bytes.Buffer).Reset()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per event and line, want 0", allocs)
	}
}
