package main

import "net/netip"

// Address translation between what the guest sees and what host sockets
// use (pasta(1), NOTES: "Handling of traffic with loopback destination and
// source addresses").

var (
	loopback4 = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	loopback6 = netip.IPv6Loopback()
)

// mapDestination translates a destination as the guest addressed it into
// the one a host socket uses: the --map-host-loopback address (by default
// the gateway) means the host's loopback, the --map-guest-addr address
// means the host's own address.
func (c *ctx) mapDestination(dst netip.AddrPort, _ uint8) netip.AddrPort {
	a := dst.Addr()
	ic := c.ipConfFor(a)
	switch {
	case ic.mapHostLoopback.IsValid() && a == ic.mapHostLoopback:
		if a.Is4() {
			return netip.AddrPortFrom(loopback4, dst.Port())
		}
		return netip.AddrPortFrom(loopback6, dst.Port())
	case ic.mapGuestAddr.IsValid() && a == ic.mapGuestAddr:
		return netip.AddrPortFrom(ic.addr, dst.Port())
	}
	return dst
}
