package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Routing table and protocol numbers (rtnetlink(7)).
const (
	rtTableMain  = unix.RT_TABLE_MAIN
	rtProtKernel = unix.RTPROT_KERNEL
	rtProtStatic = unix.RTPROT_STATIC
)

// hostRoute is a route of the host's upstream interface, as copied into the
// namespace.
type hostRoute struct {
	dst    netip.Prefix
	gw     netip.Addr // invalid for routes without a gateway
	metric uint32
}

// hostLink is what we learn about the host's upstream interface for one IP
// version: pasta gives the namespace the same addresses and routes.
type hostLink struct {
	name   string
	index  int
	mtu    int
	addrs  []netip.Prefix // non-link-local addresses, kernel order
	gw     netip.Addr     // gateway of the first default route; invalid if none
	routes []hostRoute    // main-table routes through the interface
}

// netlinkConn opens an rtnetlink socket in the calling thread's network
// namespace.
func netlinkConn() (*rtnetlink.Conn, error) {
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return c, nil
}

// discoverUpstream finds the host interface for one IP version: ifname if
// given, else the one with the first default route, else the only interface
// that has any route. It returns nil (no error) when there is none.
func discoverUpstream(conn *rtnetlink.Conn, family int, ifname string) (*hostLink, error) {
	routes, err := conn.Route.List()
	if err != nil {
		return nil, fmt.Errorf("netlink: listing routes: %w", err)
	}
	routes = mainTableRoutes(routes, family)
	index, gw := 0, netip.Addr{}
	if ifname != "" {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", ifname, err)
		}
		index = ifi.Index
		_, gw = defaultRoute(routes, index)
	} else {
		index, gw = defaultRoute(routes, 0)
		if index == 0 {
			index = onlyRoutedInterface(routes)
		}
	}
	if index == 0 {
		return nil, nil
	}
	link, err := conn.Link.Get(uint32(index))
	if err != nil {
		return nil, fmt.Errorf("netlink: interface %d: %w", index, err)
	}
	h := &hostLink{name: link.Attributes.Name, index: index, mtu: int(link.Attributes.MTU), gw: gw}
	if h.addrs, err = interfaceAddrs(conn, family, index); err != nil {
		return nil, err
	}
	h.routes = interfaceRoutes(routes, index)
	return h, nil
}

// mainTableRoutes keeps the unicast routes of the main table for family.
func mainTableRoutes(all []rtnetlink.RouteMessage, family int) []rtnetlink.RouteMessage {
	var out []rtnetlink.RouteMessage
	for _, r := range all {
		if int(r.Family) != family || r.Type != unix.RTN_UNICAST || routeTable(&r) != rtTableMain {
			continue
		}
		out = append(out, r)
	}
	return out
}

func routeTable(r *rtnetlink.RouteMessage) uint32 {
	if r.Attributes.Table != 0 {
		return r.Attributes.Table
	}
	return uint32(r.Table)
}

// defaultRoute returns the interface and gateway of the first default route
// (restricted to interface index if it is not 0). For a multipath route the
// next hop with the highest weight wins, the first one among equals.
func defaultRoute(routes []rtnetlink.RouteMessage, index int) (int, netip.Addr) {
	for _, r := range routes {
		if r.DstLength != 0 {
			continue
		}
		oif, gw := int(r.Attributes.OutIface), ipToAddr(r.Attributes.Gateway)
		best := -1
		for _, nh := range r.Attributes.Multipath {
			if int(nh.Hop.Hops) > best {
				best, oif, gw = int(nh.Hop.Hops), int(nh.Hop.IfIndex), ipToAddr(nh.Gateway)
			}
		}
		if oif != 0 && (index == 0 || oif == index) {
			return oif, gw
		}
	}
	return 0, netip.Addr{}
}

// onlyRoutedInterface returns the interface index if exactly one interface
// (other than loopback) has routes, else 0.
func onlyRoutedInterface(routes []rtnetlink.RouteMessage) int {
	found := 0
	for _, r := range routes {
		oif := int(r.Attributes.OutIface)
		if oif == 0 || isLoopbackIndex(oif) || oif == found {
			continue
		}
		if found != 0 {
			return 0
		}
		found = oif
	}
	return found
}

func isLoopbackIndex(index int) bool {
	ifi, err := net.InterfaceByIndex(index)
	return err == nil && ifi.Flags&net.FlagLoopback != 0
}

// interfaceAddrs lists the non-link-local addresses of an interface.
func interfaceAddrs(conn *rtnetlink.Conn, family, index int) ([]netip.Prefix, error) {
	msgs, err := conn.Address.List()
	if err != nil {
		return nil, fmt.Errorf("netlink: listing addresses: %w", err)
	}
	var out []netip.Prefix
	for _, m := range msgs {
		if int(m.Family) != family || int(m.Index) != index || m.Attributes == nil {
			continue
		}
		ip := m.Attributes.Local
		if ip == nil {
			ip = m.Attributes.Address
		}
		a := ipToAddr(ip)
		if !a.IsValid() || a.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, netip.PrefixFrom(a, int(m.PrefixLength)))
	}
	return out, nil
}

// interfaceRoutes converts the routes through an interface, leaving out
// those the kernel creates by itself when addresses are added.
func interfaceRoutes(routes []rtnetlink.RouteMessage, index int) []hostRoute {
	var out []hostRoute
	for _, r := range routes {
		if int(r.Attributes.OutIface) != index || r.Protocol == rtProtKernel {
			continue
		}
		dstIP := r.Attributes.Dst
		if dstIP == nil {
			dstIP = zeroIP(int(r.Family))
		}
		dst := netip.PrefixFrom(ipToAddr(dstIP), int(r.DstLength))
		if !dst.IsValid() {
			continue
		}
		out = append(out, hostRoute{dst: dst, gw: ipToAddr(r.Attributes.Gateway), metric: r.Attributes.Priority})
	}
	return out
}

func zeroIP(family int) net.IP {
	if family == unix.AF_INET {
		return net.IPv4zero.To4()
	}
	return net.IPv6zero
}

// ipToAddr converts a net.IP (4 or 16 bytes) to a netip.Addr, unmapping
// IPv4 addresses; nil gives the invalid Addr.
func ipToAddr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// nsLinkConfig is what pasta applies to the namespace's links.
type nsLinkConfig struct {
	tapIndex int
	up       bool             // --config-net: set the tap up with mtu, addrs and routes
	mtu      int              // 0: keep the tap's default
	mac      net.HardwareAddr // nil: keep the tap driver's address
	addrs    []netip.Prefix
	routes   []hostRoute
	ipv6     bool       // IPv6 is enabled: skip duplicate address detection of the link-local address
	ll       netip.Addr // out: the tap's link-local address, with ipv6 and up
}

// configureNamespace brings up lo (pasta always does, so that loopback
// works in the namespace) and, unless there is no tap (ifname ""), sets the
// tap's MAC address if asked, and with lc.up configures the tap like the
// host's interface.
func configureNamespace(ifname string, lc *nsLinkConfig) error {
	conn, err := netlinkConn()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := setLink(conn, &rtnetlink.LinkMessage{Index: loopbackIndex, Flags: unix.IFF_UP, Change: unix.IFF_UP}); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	if ifname == "" {
		return nil
	}
	if lc.tapIndex, err = linkIndex(conn, ifname); err != nil {
		return err
	}
	tap := &rtnetlink.LinkMessage{Index: uint32(lc.tapIndex)}
	if lc.up {
		tap.Flags, tap.Change = unix.IFF_UP, unix.IFF_UP
		if lc.ipv6 {
			// The kernel skips duplicate address detection on a
			// NOARP link: the link-local address it makes now is
			// usable at once, as with the C pasta.
			tap.Flags, tap.Change = unix.IFF_UP|unix.IFF_NOARP, unix.IFF_UP|unix.IFF_NOARP
		}
	}
	if lc.mtu > 0 || lc.mac != nil {
		tap.Attributes = &rtnetlink.LinkAttributes{MTU: uint32(lc.mtu), Address: lc.mac}
	}
	if err := setLink(conn, tap); err != nil {
		return fmt.Errorf("setting up the tap: %w", err)
	}
	if err := setTxQueueLen(lc.tapIndex, tapTxQueueLen); err != nil {
		return fmt.Errorf("setting the tap's queue length: %w", err)
	}
	if lc.up && lc.ipv6 {
		if lc.ll, err = markLinkLocalNoDAD(conn, lc.tapIndex); err != nil {
			return fmt.Errorf("the tap's link-local address: %w", err)
		}
		// Neighbour discovery works again, for the guest's other needs.
		if err := setLink(conn, &rtnetlink.LinkMessage{Index: uint32(lc.tapIndex), Change: unix.IFF_NOARP}); err != nil {
			return fmt.Errorf("setting up the tap: %w", err)
		}
	}
	for _, p := range lc.addrs {
		if err := addAddress(conn, lc.tapIndex, p); err != nil {
			return fmt.Errorf("adding address %s: %w", p, err)
		}
	}
	return addRoutes(conn, lc.tapIndex, lc.routes)
}

// markLinkLocalNoDAD finds the link-local address the kernel gave the link
// and marks it IFA_F_NODAD (RFC 4862 section 5.4 has nothing to detect on
// this link: pasta answers for everyone else on it), so that it stays
// usable as it is. It returns the address, or the invalid Addr if the link
// has none.
func markLinkLocalNoDAD(conn *rtnetlink.Conn, index int) (netip.Addr, error) {
	msgs, err := conn.Address.List()
	if err != nil {
		return netip.Addr{}, err
	}
	for i := range msgs {
		m := &msgs[i]
		if int(m.Index) != index || m.Family != unix.AF_INET6 || m.Attributes == nil {
			continue
		}
		ll := ipToAddr(m.Attributes.Address)
		if !ll.IsLinkLocalUnicast() {
			continue
		}
		m.Attributes.Flags |= unix.IFA_F_NODAD
		_, err := conn.Execute(m, unix.RTM_NEWADDR, netlink.Request|netlink.Replace|netlink.Acknowledge)
		return ll, err
	}
	return netip.Addr{}, nil
}

// loopbackIndex is lo's index in every network namespace.
const loopbackIndex = 1

// tapTxQueueLen is the tap's queue length, in frames: longer than the
// default 1000, it absorbs the guest's bursts while pasta is busy with
// other descriptors or waits for a core (a UDP sender at 1 Gbit/s lost 3%
// of its datagrams with 1000 here, none with 5000). A full queue drops
// the frames of every flow alike, in the guest's kernel: when 20,000
// connections were opened at once, 5000 frames overflowed each time the
// guest's SYNs (or their retransmissions) came in a burst, and a request
// on an established connection lost there waited for the guest's
// retransmission timer, 200 ms at least; with 10,000, no frame was lost
// (admit.go keeps what pasta reads from the queue cheap). The kernel
// holds a guest's frames there, 10,000 at most.
const tapTxQueueLen = 10000

// setTxQueueLen sets a link's queue length with an RTM_NEWLINK message
// carrying IFLA_TXQLEN (rtnetlink(7)), which the rtnetlink package does not
// encode. The SIOCSIFTXQLEN ioctl would need CAP_NET_ADMIN in the initial
// user namespace; netlink only needs it in the namespace's own.
func setTxQueueLen(index, qlen int) error {
	conn, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.IFLA_TXQLEN, uint32(qlen))
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	ifinfo := make([]byte, unix.SizeofIfInfomsg)
	ifinfo[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(ifinfo[4:8], uint32(index))
	_, err = conn.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWLINK, Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(ifinfo, attrs...),
	})
	return err
}

func setLink(conn *rtnetlink.Conn, msg *rtnetlink.LinkMessage) error {
	msg.Family = unix.AF_UNSPEC
	if msg.Change == 0 && msg.Attributes == nil {
		return nil
	}
	return conn.Link.Set(msg)
}

// addAddress adds one address; IPv6 ones skip duplicate address detection
// (RFC 4862 section 5.4 does not apply: nobody else is on this link).
func addAddress(conn *rtnetlink.Conn, index int, p netip.Prefix) error {
	family, flags := uint8(unix.AF_INET), uint32(0)
	if p.Addr().Is6() {
		family, flags = unix.AF_INET6, unix.IFA_F_NODAD
	}
	ip := net.IP(p.Addr().AsSlice())
	attrs := &rtnetlink.AddressAttributes{Address: ip, Local: ip, Flags: flags}
	if p.Addr().Is4() && p.Bits() < 31 {
		attrs.Broadcast = broadcastOf(p)
	}
	err := conn.Address.New(&rtnetlink.AddressMessage{
		Family:       family,
		PrefixLength: uint8(p.Bits()),
		Scope:        unix.RT_SCOPE_UNIVERSE,
		Index:        uint32(index),
		Attributes:   attrs,
	})
	if errors.Is(err, os.ErrExist) || errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func broadcastOf(p netip.Prefix) net.IP {
	a := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return net.IP(a[:])
}

// addRoutes adds routes without a gateway first, as routes with one may need
// them to reach their gateway.
func addRoutes(conn *rtnetlink.Conn, index int, routes []hostRoute) error {
	for _, withGW := range []bool{false, true} {
		for _, r := range routes {
			if r.gw.IsValid() != withGW {
				continue
			}
			if err := addRoute(conn, index, r); err != nil {
				return fmt.Errorf("adding route %s via %s: %w", r.dst, r.gw, err)
			}
		}
	}
	return nil
}

func addRoute(conn *rtnetlink.Conn, index int, r hostRoute) error {
	family := uint8(unix.AF_INET)
	if r.dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	scope := uint8(unix.RT_SCOPE_UNIVERSE)
	if !r.gw.IsValid() {
		scope = unix.RT_SCOPE_LINK
	}
	attrs := rtnetlink.RouteAttributes{OutIface: uint32(index), Priority: r.metric, Table: rtTableMain}
	if r.dst.Bits() > 0 {
		attrs.Dst = net.IP(r.dst.Addr().AsSlice())
	}
	if r.gw.IsValid() {
		attrs.Gateway = net.IP(r.gw.AsSlice())
	}
	err := conn.Route.Add(&rtnetlink.RouteMessage{
		Family:     family,
		DstLength:  uint8(r.dst.Bits()),
		Table:      rtTableMain,
		Protocol:   rtProtStatic,
		Scope:      scope,
		Type:       unix.RTN_UNICAST,
		Attributes: attrs,
	})
	if errors.Is(err, os.ErrExist) || errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// linkIndex returns the index of the interface called name.
func linkIndex(conn *rtnetlink.Conn, name string) (int, error) {
	links, err := conn.Link.List()
	if err != nil {
		return 0, fmt.Errorf("netlink: listing links: %w", err)
	}
	for _, l := range links {
		if l.Attributes != nil && l.Attributes.Name == name {
			return int(l.Index), nil
		}
	}
	return 0, fmt.Errorf("interface %s not found in the namespace", name)
}
