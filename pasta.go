package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// ctx is the state of one pasta instance: configuration, the frame device,
// the epoll loop and the flow table. Every handler takes it first.
type ctx struct {
	cfg      *config
	ip4, ip6 ipConf
	ourMAC   [6]byte
	guestMAC [6]byte // learnt from the guest's frames; broadcast until then
	mtu      int

	dev        frameIO
	epfd       int
	events     [maxEvents]unix.EpollEvent
	spinNext   bool  // the last batch had events, and little data: spinWait follows it
	batchBytes int   // data the current batch moved (countTraffic)
	now        int64 // monotonic nanoseconds, updated once per batch

	nextHousekeeping int64
	nextTimerTick    int64
	quit             bool
	exitCode         int

	parser *frameParser
	rxBuf  []byte    // one received frame (with device header)
	rxOff  rxOffload // the device's segmentation of the frame being handled; zero otherwise
	txBuf  []byte    // one frame being built (with txHeadroom)
	pktBuf []byte    // one datagram read from a host socket

	flows flowTable
	admit admission // new flows set up per wakeup, and the frames waiting (admit.go)
	pcap  *pcapWriter
	stats stats

	// The thread living in the target network namespace.
	ns *nsThread

	// Autoconfiguration of the guest (dns.go, dhcp.go, dhcpv6.go, ndp.go).
	dns   dnsConf
	dhcp  dhcpServer
	dhcp6 dhcpv6Server
	ra    routerAdvertiser

	// Process lifecycle (lifecycle.go).
	wakeFD int      // eventfd for signals
	watch  *nsWatch // quits when the namespace goes away
	child  *childProc

	// TCP (tcp.go): ACKs owed to the guest after this batch, scratch
	// space for segments, socket addresses and the offload description.
	tcpAcks []int32
	// ACKs held back (tcpDelayAck), and when the first of them is due.
	tcpDelayedAcks    []int32
	tcpDelayedAcksDue int64
	scratchFlow       flow
	connectAddr       rawSockaddr
	bindAddr          rawSockaddr
	txOff             txOffload
	gsoOff            txOffload
	peekIov           []unix.Iovec // without SO_PEEK_OFF: skip, then payload
	peekDiscard       []byte
	timersArmed       bool

	// Spliced connections (splice.go): empty pipes for the next ones.
	pipePool [][2]int

	// UDP (udp.go).
	udpBufs *udpBuffers
	udpTx   *udpTxBatch

	// Port forwarding (fwd.go, fwdtable.go) and its control socket
	// (ctl.go).
	listeners     []listener
	listenersOpen int // listeners with a socket, counted in the descriptor budget
	nofile        int // RLIMIT_NOFILE, divided by the budget
	freeListeners []int
	acceptAddr    rawSockaddr
	spareFD       int // held in reserve for accepting when out of descriptors
	auto          *autoScan
	rules         []rule // slots; see fwdtable.go
	ruleSeq       uint64
	ctl           *ctlServer

	// --stats (stats.go).
	statsPending bool      // events were handled since the last line
	statsNext    int64     // when the next line may be printed
	statsLine    []byte    // the line being printed
	statsOut     io.Writer // standard error

	// Warnings that are given once, or once a second.
	warnedPing bool
	nextWarn   [warnKinds]int64 // when each kind of warning may be logged again
}

// stats counts what the loop did, for tests and debugging.
type stats struct {
	rxFrames    uint64
	txFrames    uint64
	rxErrors    uint64
	txErrors    uint64
	malformed   uint64 // frames dropped as malformed or truncated
	unsupported uint64 // well-formed frames we have no handler for
	icmpDropped uint64
	udpDropped  uint64
	udpSuperIn  uint64 // UDP super-frames from the guest (udp_offload.go)
	udpSuperOut uint64 // and to it

	events [numKinds]uint64 // epoll events handled, by kind of descriptor (--stats)
}

// newCtx creates the loop state for a frame device (nil: none, with
// --splice-only). The caller adds protocol configuration (ip4, ip6) before
// running it.
func newCtx(cfg *config, dev frameIO) (*ctx, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	c := &ctx{
		cfg:    cfg,
		dev:    dev,
		epfd:   epfd,
		parser: newFrameParser(),
		rxBuf:  make([]byte, maxFrameWithVnetHdr),
		txBuf:  make([]byte, txHeadroom+maxFrameLength),
		pktBuf: make([]byte, maxFrameLength),
		mtu:    mtuDefault,
		wakeFD: -1,

		spareFD:  -1,
		statsOut: os.Stderr,

		tcpAcks:        make([]int32, 0, 256),
		tcpDelayedAcks: make([]int32, 0, 256),
		peekIov:        make([]unix.Iovec, 0, 1024),
		peekDiscard:    make([]byte, 1<<16),
		udpBufs:        newUDPBuffers(),
		udpTx:          newUDPTxBatch(),
	}
	c.ourMAC = defaultOurMAC
	c.guestMAC = broadcastMAC
	if cfg.ourMAC != nil {
		copy(c.ourMAC[:], cfg.ourMAC)
	}
	if cfg.mtu >= 0 {
		c.mtu = cfg.mtu
	}
	c.admit.init()
	c.nofile = fileLimit()
	growFDTable(epfd, c.nofile)
	if err := c.flows.init(budgetFor(c.nofile)); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("flow table: %w", err)
	}
	c.openSpareFD()
	if dev == nil { // --splice-only
		return c, nil
	}
	if err := c.epollAdd(dev.fd(), unix.EPOLLIN, makeRef(kindTap, 0)); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	return c, nil
}

var (
	defaultOurMAC = [6]byte{0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55} // locally administered, as C pasta
	broadcastMAC  = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

const mtuDefault = 65520 // the largest 802.3 MTU minus the header, in 32-bit words

// handleFrame parses one frame from the guest and hands it to the protocol
// handler. Malformed and unsupported frames are counted and dropped.
func (c *ctx) handleFrame(frame []byte) {
	c.stats.rxFrames++
	c.pcap.write(frame)
	if traceOn() {
		tracef("tap: in: %d bytes", len(frame))
	}
	c.dispatchFrame(frame)
}

// dispatchFrame parses a frame and hands it to the protocol handler; a
// frame that waited in the admission queue (admit.go) comes back here.
func (c *ctx) dispatchFrame(frame []byte) {
	p := c.parser
	if !p.parse(frame) || !c.rxOffloadFits() {
		c.dropMalformed(frame)
		return
	}
	if p.eth.SrcMAC[0]&1 == 0 { // a unicast source: the guest's address
		copy(c.guestMAC[:], p.eth.SrcMAC)
	}
	switch {
	case p.has(layers.LayerTypeARP):
		c.handleARP()
	case p.has(layers.LayerTypeIPv4) && c.ip4.enabled:
		c.handleIPv4()
	case p.has(layers.LayerTypeIPv6) && c.ip6.enabled:
		c.handleIPv6()
	default:
		c.stats.unsupported++
	}
}

// rxOffloadFits tells whether the device's segmentation of the frame just
// parsed agrees with what the frame is: TCP super-segments for TCP, UDP
// super-frames (with a segment size) for UDP, nothing for the rest.
func (c *ctx) rxOffloadFits() bool {
	switch c.rxOff.gsoType &^ vnetGSOECN {
	case vnetGSONone:
		return true
	case vnetGSOTCPv4, vnetGSOTCPv6:
		return c.parser.has(layers.LayerTypeTCP)
	case vnetGSOUDPL4:
		return c.parser.has(layers.LayerTypeUDP) && c.rxOff.gsoSize != 0
	}
	return false
}

func (c *ctx) dropMalformed(frame []byte) {
	c.stats.malformed++
	if debugOn() {
		debugf("dropping malformed frame of %d bytes", len(frame))
	}
}

func (c *ctx) handleIPv4() {
	p := c.parser
	c.ip4.observe(addrFrom4(p.ip4.SrcIP))
	switch {
	case p.has(layers.LayerTypeUDP) && p.udp.DstPort == dhcpServerPort && c.forDHCPServer(addrFrom4(p.ip4.DstIP)):
		c.handleDHCP()
	case p.has(layers.LayerTypeTCP):
		c.handleTCP(addrFrom4(p.ip4.SrcIP), addrFrom4(p.ip4.DstIP))
	case p.has(layers.LayerTypeUDP):
		c.handleUDP(addrFrom4(p.ip4.SrcIP), addrFrom4(p.ip4.DstIP))
	case p.has(layers.LayerTypeICMPv4):
		c.handleICMP4()
	default:
		c.stats.unsupported++
	}
}

func (c *ctx) handleIPv6() {
	p := c.parser
	c.ip6.observe(addrFrom16(p.ip6.SrcIP))
	switch {
	case p.has(layers.LayerTypeICMPv6RouterSolicitation):
		c.handleRouterSolicitation()
	case p.has(layers.LayerTypeUDP) && p.udp.DstPort == dhcpv6ServerPort && addrFrom16(p.ip6.DstIP) == allDHCPServers:
		c.handleDHCPv6()
	case p.has(layers.LayerTypeTCP):
		c.handleTCP(addrFrom16(p.ip6.SrcIP), addrFrom16(p.ip6.DstIP))
	case p.has(layers.LayerTypeUDP):
		c.handleUDP(addrFrom16(p.ip6.SrcIP), addrFrom16(p.ip6.DstIP))
	case p.has(layers.LayerTypeICMPv6NeighborSolicitation):
		c.handleNeighborSolicitation()
	case p.has(layers.LayerTypeICMPv6Echo):
		c.handleICMP6()
	default:
		c.stats.unsupported++
	}
}

// sendFrame transmits the frame in c.txBuf[txHeadroom:txHeadroom+length].
func (c *ctx) sendFrame(length int) {
	c.sendFrameOffload(c.txBuf, length, nil)
}

// sendFrameOffload transmits the frame in buf[txHeadroom:txHeadroom+length]
// with device offloads.
func (c *ctx) sendFrameOffload(buf []byte, length int, off *txOffload) {
	buf = buf[:txHeadroom+length]
	c.pcap.write(buf[txHeadroom:])
	if err := c.dev.send(buf, off); err != nil {
		c.stats.txErrors++
		if debugOn() && !errors.Is(err, unix.EAGAIN) {
			debugf("tap: write: %v", err)
		}
		return
	}
	c.stats.txFrames++
	if traceOn() {
		tracef("tap: out: %d bytes", length)
	}
}

// frame returns the transmit buffer from the Ethernet header on.
func (c *ctx) frame() []byte { return c.txBuf[txHeadroom:] }

// ipConf is the resolved configuration of one IP version.
type ipConf struct {
	enabled         bool
	addr            netip.Addr // the guest's address
	prefixLen       int
	gw              netip.Addr // the guest's default gateway
	observed        netip.Addr // last source address seen from the guest
	observedLL      netip.Addr // last link-local source address seen
	addrs           []netip.Prefix
	routes          []hostRoute
	mapHostLoopback netip.Addr // a guest destination that means the host's loopback
	mapGuestAddr    netip.Addr // a guest destination that means the host's own address
	outAddr         netip.Addr // -o: source address for host sockets
	outIf           string     // --outbound-if4/6: interface for host sockets
	hostIf          string     // upstream interface name
	hostIfIndex     int        // and its index
	hostLL          netip.Addr // IPv6: link-local address of hostIf, if any
}

// observe remembers the guest's source address, which C pasta uses as the
// target of loopback traffic.
func (ic *ipConf) observe(a netip.Addr) {
	switch {
	case !a.IsValid() || a.IsUnspecified():
	case a.IsLinkLocalUnicast():
		ic.observedLL = a
	default:
		ic.observed = a
	}
}

// ipConfFor returns the configuration of the family of a.
func (c *ctx) ipConfFor(a netip.Addr) *ipConf {
	if a.Is4() {
		return &c.ip4
	}
	return &c.ip6
}
