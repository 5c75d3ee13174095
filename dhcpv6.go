package main

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Stateful DHCPv6 server (RFC 8415) for the one guest: the guest's address
// in an IA_NA, with infinite lifetimes, and the DNS servers, domain search
// list (RFC 3646) and FQDN (RFC 4704) when configured. Like router
// advertisements, replies come from our link-local address.
//
// C pasta's option choices are kept (infinite T1, T2 and lifetimes, the
// configuration in every reply, FQDN flags 0). Where it departs from RFC
// 8415 we follow the RFC: our DUID is a DUID-LL (section 11.4; C pasta's
// DUID-LLT changes with the time it starts), rapid commit is honoured,
// messages are validated as section 16 says, Confirm, Release, Decline and
// Information-request get the replies sections 18.3.3 to 18.3.8 describe,
// and addresses the client asks to renew that are not its own are returned
// with lifetimes 0 (section 18.3.4) instead of a NotOnLink status.

const (
	dhcpv6ClientPort = 546 // RFC 8415 section 7.2
	dhcpv6ServerPort = 547
	dhcpv6Infinity   = 0xffffffff // RFC 8415 section 7.7
	dhcpv6IAHdrLen   = 12         // IAID, T1, T2 (RFC 8415 section 21.4)
	dhcpv6IAAddrLen  = 24         // address, preferred and valid lifetimes (RFC 8415 section 21.6)
	duidTypeLL       = 3          // RFC 8415 section 11.4
	hwTypeEthernet   = 1          // hardware type of DUIDs, from ARP (RFC 826)

	// Status codes (RFC 8415 section 21.13).
	dhcpv6Success      = 0
	dhcpv6NoAddrsAvail = 2
	dhcpv6NotOnLink    = 4
)

// allDHCPServers is All_DHCP_Relay_Agents_and_Servers (RFC 8415 section
// 7.1), where clients send everything.
var allDHCPServers = netip.MustParseAddr("ff02::1:2")

// dhcpv6Server keeps the decoder of guest messages, reused between them.
type dhcpv6Server struct {
	msg layers.DHCPv6
}

// dhcpv6Request is what a client message carries at its top level.
type dhcpv6Request struct {
	clientID    []byte
	serverID    []byte   // nil if absent
	iaNA        [][]byte // data of each IA_NA option, validated
	anyIA       bool     // an IA_NA, IA_TA or IA_PD option is present
	rapidCommit bool
}

// handleDHCPv6 answers a DHCPv6 message from the guest (UDP to port 547
// of All_DHCP_Relay_Agents_and_Servers).
func (c *ctx) handleDHCPv6() {
	if c.cfg.noDHCPv6 {
		c.stats.unsupported++
		return
	}
	p := c.parser
	src := addrFrom16(p.ip6.SrcIP)
	m := &c.dhcp6.msg
	if p.udp.SrcPort != dhcpv6ClientPort || src.IsUnspecified() || src.IsMulticast() ||
		m.DecodeFromBytes(p.udp.Payload, gopacket.NilDecodeFeedback) != nil {
		c.dropControl("DHCPv6: malformed message")
		return
	}
	req, ok := parseDHCPv6Request(m)
	if !ok || !c.dhcpv6Acceptable(m.MsgType, &req) {
		c.dropControl("DHCPv6: invalid " + m.MsgType.String())
		return
	}
	if debugOn() {
		debugf("DHCPv6: %s from %s", m.MsgType, src)
	}
	c.answerDHCPv6(m, &req)
}

// answerDHCPv6 replies to a valid client message.
func (c *ctx) answerDHCPv6(m *layers.DHCPv6, req *dhcpv6Request) {
	switch m.MsgType {
	case layers.DHCPv6MsgTypeSolicit:
		c.answerSolicit(m, req)
	case layers.DHCPv6MsgTypeRequest, layers.DHCPv6MsgTypeRenew, layers.DHCPv6MsgTypeRebind:
		renewing := m.MsgType != layers.DHCPv6MsgTypeRequest
		c.sendDHCPv6(m, layers.DHCPv6MsgTypeReply, req, append(c.iaNABindings(req, renewing), c.dhcpv6Config()...)...)
	case layers.DHCPv6MsgTypeConfirm:
		c.answerConfirm(m, req)
	case layers.DHCPv6MsgTypeRelease, layers.DHCPv6MsgTypeDecline:
		// RFC 8415 sections 18.3.7 and 18.3.8: nothing to release or mark,
		// but the client waits for a Success.
		c.sendDHCPv6(m, layers.DHCPv6MsgTypeReply, req, dhcpv6Status(dhcpv6Success, "done"))
	case layers.DHCPv6MsgTypeInformationRequest:
		c.sendDHCPv6(m, layers.DHCPv6MsgTypeReply, req, c.dhcpv6Config()...)
	}
}

// parseDHCPv6Request collects the top-level options a server looks at and
// checks that every IA_NA is well-formed.
func parseDHCPv6Request(m *layers.DHCPv6) (dhcpv6Request, bool) {
	var req dhcpv6Request
	for _, o := range m.Options {
		switch o.Code {
		case layers.DHCPv6OptClientID:
			req.clientID = o.Data
		case layers.DHCPv6OptServerID:
			req.serverID = o.Data
		case layers.DHCPv6OptRapidCommit:
			req.rapidCommit = true
		case layers.DHCPv6OptIANA:
			if _, ok := iaNAAddresses(o.Data); !ok {
				return req, false
			}
			req.iaNA = append(req.iaNA, o.Data)
			req.anyIA = true
		case layers.DHCPv6OptIATA, layers.DHCPv6OptIAPD:
			req.anyIA = true // no temporary addresses nor prefixes to delegate: not answered, as in C pasta
		}
	}
	return req, true
}

// dhcpv6Acceptable applies the checks of RFC 8415 section 16 on the
// Client and Server Identifier and IA options of each message type.
// Relay and server messages are not for us.
func (c *ctx) dhcpv6Acceptable(typ layers.DHCPv6MsgType, req *dhcpv6Request) bool {
	hasClient := len(req.clientID) > 0
	hasServer := req.serverID != nil
	ours := bytes.Equal(req.serverID, c.serverDUID())
	switch typ {
	case layers.DHCPv6MsgTypeSolicit, layers.DHCPv6MsgTypeConfirm, layers.DHCPv6MsgTypeRebind:
		return hasClient && !hasServer // sections 16.2, 16.5, 16.7
	case layers.DHCPv6MsgTypeRequest, layers.DHCPv6MsgTypeRenew,
		layers.DHCPv6MsgTypeRelease, layers.DHCPv6MsgTypeDecline:
		return hasClient && ours // sections 16.4, 16.6, 16.8, 16.9
	case layers.DHCPv6MsgTypeInformationRequest:
		return (!hasServer || ours) && !req.anyIA // section 16.12
	}
	return false
}

// answerSolicit advertises the guest's address, or commits it at once
// when the client asks for rapid commit (RFC 8415 section 18.3.1).
func (c *ctx) answerSolicit(m *layers.DHCPv6, req *dhcpv6Request) {
	switch {
	case len(req.iaNA) == 0 || !c.ip6.addr.IsValid():
		// RFC 8415 section 18.3.9: nothing to assign, only a status.
		c.sendDHCPv6(m, layers.DHCPv6MsgTypeAdvertise, req, dhcpv6Status(dhcpv6NoAddrsAvail, "only IA_NA is served"))
	case req.rapidCommit:
		opts := append(c.iaNABindings(req, false), opt6(layers.DHCPv6OptRapidCommit, nil))
		c.sendDHCPv6(m, layers.DHCPv6MsgTypeReply, req, append(opts, c.dhcpv6Config()...)...)
	default:
		c.sendDHCPv6(m, layers.DHCPv6MsgTypeAdvertise, req, append(c.iaNABindings(req, false), c.dhcpv6Config()...)...)
	}
}

// answerConfirm tells whether the addresses the client has are on our link
// (RFC 8415 section 18.3.3), and stays silent if it gave none.
func (c *ctx) answerConfirm(m *layers.DHCPv6, req *dhcpv6Request) {
	prefix := netip.PrefixFrom(c.ip6.addr, c.ip6.prefixLen).Masked()
	status, seen := uint16(dhcpv6Success), false
	for _, ia := range req.iaNA {
		addrs, _ := iaNAAddresses(ia)
		for _, a := range addrs {
			seen = true
			if !prefix.Contains(a) {
				status = dhcpv6NotOnLink
			}
		}
	}
	if !seen {
		return
	}
	c.sendDHCPv6(m, layers.DHCPv6MsgTypeReply, req, dhcpv6Status(status, "confirmed"))
}

// iaNABindings returns the IA_NA options of a reply: the guest's address,
// with infinite lifetimes, in the first IA_NA; no address for any other,
// or for any if the host has no IPv6 address to give (RFC 8415 section
// 18.3.2: NoAddrsAvail in the IA). When renewing, other
// addresses the client lists are returned with lifetimes 0 (RFC 8415
// section 18.3.4), so that it stops using them.
func (c *ctx) iaNABindings(req *dhcpv6Request, renewing bool) []layers.DHCPv6Option {
	var out []layers.DHCPv6Option
	for i, ia := range req.iaNA {
		iaid := ia[:4]
		if i > 0 || !c.ip6.addr.IsValid() {
			body := appendIAHeader(nil, iaid, 0, 0)
			body = appendOption6(body, dhcpv6Status(dhcpv6NoAddrsAvail, "one address per client"))
			out = append(out, opt6(layers.DHCPv6OptIANA, body))
			continue
		}
		body := appendIAHeader(nil, iaid, dhcpv6Infinity, dhcpv6Infinity)
		body = appendOption6(body, iaAddress(c.ip6.addr, dhcpv6Infinity))
		if renewing {
			hinted, _ := iaNAAddresses(ia)
			for _, a := range hinted {
				if a != c.ip6.addr {
					body = appendOption6(body, iaAddress(a, 0))
				}
			}
		}
		out = append(out, opt6(layers.DHCPv6OptIANA, body))
	}
	return out
}

// dhcpv6Config returns the configuration options every reply carries, as
// in C pasta: DNS servers and domain search list (RFC 3646 sections 3 and
// 4) and the FQDN (RFC 4704 section 4, flags 0) when configured.
func (c *ctx) dhcpv6Config() []layers.DHCPv6Option {
	var out []layers.DHCPv6Option
	if len(c.dns.guest6) > 0 {
		out = append(out, opt6(layers.DHCPv6OptDNSServers, concatAddrs(c.dns.guest6)))
	}
	if len(c.dns.searchWire) > 0 {
		out = append(out, opt6(layers.DHCPv6OptDomainList, c.dns.searchWire))
	}
	if fqdn, ok := appendDomainName([]byte{0}, c.cfg.fqdn); ok {
		out = append(out, opt6(layers.DHCPv6OptClientFQDN, fqdn))
	}
	return out
}

// sendDHCPv6 sends a message of type typ answering m: our Server
// Identifier, the client's Client Identifier if it sent one, then opts.
func (c *ctx) sendDHCPv6(m *layers.DHCPv6, typ layers.DHCPv6MsgType, req *dhcpv6Request, opts ...layers.DHCPv6Option) {
	r := &layers.DHCPv6{MsgType: typ, TransactionID: m.TransactionID}
	r.Options = append(r.Options, opt6(layers.DHCPv6OptServerID, c.serverDUID()))
	if req.clientID != nil {
		r.Options = append(r.Options, opt6(layers.DHCPv6OptClientID, req.clientID))
	}
	r.Options = append(r.Options, opts...)
	buf := gopacket.NewSerializeBuffer()
	if err := r.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
		c.stats.txErrors++
		return
	}
	p := c.parser
	src, dst := c.ourLinkLocal(), addrFrom16(p.ip6.SrcIP)
	n := copy(c.udpPayload(src), buf.Bytes())
	c.sendUDP(p.eth.SrcMAC, netip.AddrPortFrom(src, dhcpv6ServerPort), netip.AddrPortFrom(dst, dhcpv6ClientPort), n)
}

// serverDUID is our DUID-LL (RFC 8415 section 11.4), from our MAC address.
func (c *ctx) serverDUID() []byte {
	return append([]byte{0, duidTypeLL, 0, hwTypeEthernet}, c.ourMAC[:]...)
}

// iaNAAddresses returns the addresses in the IA Address options of an
// IA_NA (RFC 8415 sections 21.4 and 21.6), and whether it is well-formed.
func iaNAAddresses(ia []byte) ([]netip.Addr, bool) {
	if len(ia) < dhcpv6IAHdrLen {
		return nil, false
	}
	var addrs []netip.Addr
	ok := forEachOption6(ia[dhcpv6IAHdrLen:], func(code uint16, data []byte) bool {
		if code != uint16(layers.DHCPv6OptIAAddr) {
			return true
		}
		if len(data) < dhcpv6IAAddrLen {
			return false
		}
		addrs = append(addrs, addrFrom16(data[:16]))
		return true
	})
	return addrs, ok
}

// forEachOption6 calls fn for each option encoded in b (RFC 8415 section
// 21.1: code, length, data) and reports whether b held whole options only
// and fn accepted each.
func forEachOption6(b []byte, fn func(code uint16, data []byte) bool) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		n := 4 + int(binary.BigEndian.Uint16(b[2:4]))
		if len(b) < n || !fn(binary.BigEndian.Uint16(b[0:2]), b[4:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

func opt6(code layers.DHCPv6Opt, data []byte) layers.DHCPv6Option {
	return layers.DHCPv6Option{Code: code, Length: uint16(len(data)), Data: data}
}

// appendOption6 appends an option in wire format, for options nested in
// others.
func appendOption6(b []byte, o layers.DHCPv6Option) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(o.Code))
	b = binary.BigEndian.AppendUint16(b, uint16(len(o.Data)))
	return append(b, o.Data...)
}

// appendIAHeader appends the fixed part of an IA_NA (RFC 8415 section
// 21.4).
func appendIAHeader(b, iaid []byte, t1, t2 uint32) []byte {
	b = append(b, iaid...)
	b = binary.BigEndian.AppendUint32(b, t1)
	return binary.BigEndian.AppendUint32(b, t2)
}

// iaAddress returns an IA Address option (RFC 8415 section 21.6) with the
// same preferred and valid lifetime.
func iaAddress(a netip.Addr, lifetime uint32) layers.DHCPv6Option {
	b := a.AsSlice()
	b = binary.BigEndian.AppendUint32(b, lifetime)
	b = binary.BigEndian.AppendUint32(b, lifetime)
	return opt6(layers.DHCPv6OptIAAddr, b)
}

// dhcpv6Status returns a Status Code option (RFC 8415 section 21.13).
func dhcpv6Status(code uint16, msg string) layers.DHCPv6Option {
	return opt6(layers.DHCPv6OptStatusCode, append(binary.BigEndian.AppendUint16(nil, code), msg...))
}
