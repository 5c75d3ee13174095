package main

import (
	"strconv"
)

// --stats DELAY (pasta(1)): how many epoll events of each kind pasta has
// handled since it started, on standard error. A header names the kinds,
// one column each, the first time; then a line of counts, at most every
// DELAY seconds and only when events came since the last line.

// eventKindNames name the columns, one per kind of descriptor the loop
// waits on (loop.go).
var eventKindNames = [numKinds]string{
	kindTap:        "tap device",
	kindPing:       "ICMP/ICMPv6 echo socket",
	kindWake:       "signal wake-up",
	kindNetnsWatch: "namespace file watch",
	kindPidfd:      "command or target process exit",
	kindTCP:        "TCP socket",
	kindTCPListen:  "listening TCP socket",
	kindUDP:        "UDP flow socket",
	kindUDPListen:  "listening UDP socket",
	kindSpliceHost: "spliced TCP socket, host side",
	kindSpliceNs:   "spliced TCP socket, namespace side",
	kindCtlListen:  "control socket",
	kindCtlClient:  "control socket client",
}

// statsColumn is the width of a column of counts.
const statsColumn = 8

// reportStats notes that n events were just handled, and prints a line of
// counts if some came since the last line and the delay has passed.
func (c *ctx) reportStats(n int) {
	if n > 0 {
		c.statsPending = true
	}
	if !c.statsPending || c.now < c.statsNext {
		return
	}
	if c.statsLine == nil {
		c.statsLine = statsHeader()
	}
	c.statsLine = appendStatsLine(c.statsLine, &c.stats.events)
	_, _ = c.statsOut.Write(c.statsLine)
	c.statsLine = c.statsLine[:0]
	c.statsPending = false
	c.statsNext = c.now + int64(c.cfg.statsDelay)*1e9
}

// statsHeader names the columns, one per line, each under the bars of the
// columns before it.
func statsHeader() []byte {
	var b []byte
	for k := kindTap; k < numKinds; k++ {
		for range k - kindTap {
			b = appendPadded(b, []byte("|"), statsColumn)
		}
		b = appendPadded(b, nil, statsColumn-1)
		b = append(b, eventKindNames[k]...)
		b = append(b, '\n')
	}
	return b
}

// appendStatsLine appends the counts of every kind, right-aligned under
// the header's bars.
func appendStatsLine(b []byte, events *[numKinds]uint64) []byte {
	var num [20]byte
	for k := kindTap; k < numKinds; k++ {
		b = appendPadded(b, strconv.AppendUint(num[:0], events[k], 10), statsColumn)
	}
	return append(b, '\n')
}

// appendPadded appends s right-aligned in width columns.
func appendPadded(b, s []byte, width int) []byte {
	for i := len(s); i < width; i++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}
