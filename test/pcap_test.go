package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// pcapFrame is one record of a pcap file.
type pcapFrame struct {
	data    []byte // captured bytes
	origLen int    // length on the wire
}

// readPcap parses a classic pcap file (microsecond magic 0xa1b2c3d4 or
// nanosecond magic 0xa1b23c4d, either byte order) and returns its link type
// and frames.
func readPcap(path string) (linkType uint32, frames []pcapFrame, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	if len(b) < 24 {
		return 0, nil, fmt.Errorf("pcap: file is %d bytes, shorter than the global header", len(b))
	}
	var bo binary.ByteOrder
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	default:
		switch binary.BigEndian.Uint32(b) {
		case 0xa1b2c3d4, 0xa1b23c4d:
			bo = binary.BigEndian
		default:
			return 0, nil, fmt.Errorf("pcap: bad magic %#08x", m)
		}
	}
	if major := bo.Uint16(b[4:]); major != 2 {
		return 0, nil, fmt.Errorf("pcap: version %d, want 2", major)
	}
	snaplen := bo.Uint32(b[16:])
	linkType = bo.Uint32(b[20:])
	b = b[24:]
	for len(b) > 0 {
		if len(b) < 16 {
			return linkType, frames, errors.New("pcap: truncated record header")
		}
		incl := bo.Uint32(b[8:])
		orig := bo.Uint32(b[12:])
		if incl > orig || (snaplen > 0 && incl > snaplen) || int(incl) > len(b)-16 {
			return linkType, frames, fmt.Errorf("pcap: bad record lengths incl=%d orig=%d left=%d", incl, orig, len(b)-16)
		}
		frames = append(frames, pcapFrame{data: b[16 : 16+incl], origLen: int(orig)})
		b = b[16+incl:]
	}
	return linkType, frames, nil
}

// echo is an ICMP or ICMPv6 echo request or reply found in a frame.
type echo struct {
	reply    bool
	src, dst netip.Addr
	id, seq  uint16
}

// takeEcho reads an ICMP or ICMPv6 echo message (of the given request and
// reply types) into e.
func (e *echo) takeEcho(icmp []byte, request, reply byte) bool {
	if len(icmp) < 8 || icmp[1] != 0 || (icmp[0] != request && icmp[0] != reply) {
		return false
	}
	e.reply = icmp[0] == reply
	e.id = binary.BigEndian.Uint16(icmp[4:])
	e.seq = binary.BigEndian.Uint16(icmp[6:])
	return true
}

// parseEcho decodes an Ethernet frame carrying an IPv4 ICMP or IPv6 ICMPv6
// echo request or reply. ok is false for anything else.
func parseEcho(f []byte) (e echo, ok bool) {
	if len(f) < 14 {
		return e, false
	}
	etype := binary.BigEndian.Uint16(f[12:])
	p := f[14:]
	switch etype {
	case 0x0800: // IPv4
		if len(p) < 20 || p[0]>>4 != 4 {
			return e, false
		}
		ihl := int(p[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(p[2:]))
		if ihl < 20 || total < ihl || len(p) < total || p[9] != 1 { // 1: ICMP
			return e, false
		}
		if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 { // fragment
			return e, false
		}
		e.src = netip.AddrFrom4([4]byte(p[12:16]))
		e.dst = netip.AddrFrom4([4]byte(p[16:20]))
		return e, e.takeEcho(p[ihl:total], 8, 0)
	case 0x86dd: // IPv6, no extension headers expected for echo
		if len(p) < 40 || p[0]>>4 != 6 || p[6] != 58 { // 58: ICMPv6
			return e, false
		}
		plen := int(binary.BigEndian.Uint16(p[4:]))
		if len(p) < 40+plen {
			return e, false
		}
		e.src = netip.AddrFrom16([16]byte(p[8:24]))
		e.dst = netip.AddrFrom16([16]byte(p[24:40]))
		return e, e.takeEcho(p[40:40+plen], 128, 129)
	}
	return e, false
}

// TestPcapReader checks the reader itself on synthetic files: both byte
// orders, both timestamp resolutions, an IPv4 echo request and an IPv6 echo
// reply. It needs no privileges.
func TestPcapReader(t *testing.T) {
	v4 := []byte{
		// Ethernet: dst, src, type IPv4
		0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00,
		// IPv4: version/IHL, TOS, total length 28, id, flags/frag, TTL, proto ICMP, checksum
		0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0,
		192, 0, 2, 1, 192, 0, 2, 2,
		// ICMP echo request, code 0, checksum, id 0x1234, seq 1
		8, 0, 0, 0, 0x12, 0x34, 0, 1,
	}
	v6 := []byte{
		0x02, 0, 0, 0, 0, 1, 0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55, 0x86, 0xdd,
		// IPv6: version, flow, payload length 8, next header ICMPv6, hop limit
		0x60, 0, 0, 0, 0, 8, 58, 64,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
		// ICMPv6 echo reply, id 0x1234, seq 2
		129, 0, 0, 0, 0x12, 0x34, 0, 2,
	}
	for _, tc := range []struct {
		name  string
		bo    binary.AppendByteOrder
		magic uint32
	}{
		{"le-usec", binary.LittleEndian, 0xa1b2c3d4},
		{"be-nsec", binary.BigEndian, 0xa1b23c4d},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			b = tc.bo.AppendUint32(b, tc.magic)
			b = tc.bo.AppendUint16(b, 2)
			b = tc.bo.AppendUint16(b, 4)
			b = tc.bo.AppendUint32(b, 0)
			b = tc.bo.AppendUint32(b, 0)
			b = tc.bo.AppendUint32(b, 65535)
			b = tc.bo.AppendUint32(b, 1)
			for _, f := range [][]byte{v4, v6} {
				b = tc.bo.AppendUint32(b, 1)
				b = tc.bo.AppendUint32(b, 2)
				b = tc.bo.AppendUint32(b, uint32(len(f)))
				b = tc.bo.AppendUint32(b, uint32(len(f)))
				b = append(b, f...)
			}
			path := filepath.Join(t.TempDir(), "x.pcap")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			lt, frames, err := readPcap(path)
			if err != nil || lt != 1 || len(frames) != 2 {
				t.Fatalf("readPcap: linktype %d, %d frames, %v", lt, len(frames), err)
			}
			e, ok := parseEcho(frames[0].data)
			want := echo{false, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 0x1234, 1}
			if !ok || e != want {
				t.Errorf("frame 0: %+v %v, want %+v", e, ok, want)
			}
			e, ok = parseEcho(frames[1].data)
			want = echo{true, netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1"), 0x1234, 2}
			if !ok || e != want {
				t.Errorf("frame 1: %+v %v, want %+v", e, ok, want)
			}
			if _, _, err := readPcap(path + ".missing"); err == nil {
				t.Errorf("readPcap of a missing file: no error")
			}
			if err := os.WriteFile(path, b[:len(b)-3], 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := readPcap(path); err == nil {
				t.Errorf("readPcap of a truncated file: no error")
			}
		})
	}
}
