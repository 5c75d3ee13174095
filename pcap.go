package main

import (
	"fmt"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// pcapWriter captures every frame crossing the tap, both ways, to a pcap
// file (-p, --pcap) with nanosecond time stamps.
type pcapWriter struct {
	f *os.File
	w *pcapgo.Writer
}

const pcapSnapLen = 65535 + ethHdrLen

// openPcap creates the capture file and writes its header.
func openPcap(path string) (*pcapWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--pcap: %v", err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(pcapSnapLen, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return nil, fmt.Errorf("--pcap: %v", err)
	}
	return &pcapWriter{f: f, w: w}, nil
}

// write records one frame; a nil writer (no -p) records nothing. A write
// error stops the capture rather than the traffic.
func (p *pcapWriter) write(frame []byte) {
	if p == nil || p.w == nil {
		return
	}
	ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(frame), Length: len(frame)}
	if err := p.w.WritePacket(ci, frame); err != nil {
		warnf("pcap: %v: capture stopped", err)
		p.w = nil
	}
}
