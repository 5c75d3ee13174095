// Package control is the protocol between pasta's control socket (-c,
// --conf-path) and pesto: over a UNIX stream socket, the client sends one
// request and pasta answers with one response, then closes. Each is a JSON
// object followed by a newline. docs/control.md describes it.
package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// Protocol names the protocol in every message.
	Protocol = "gopasta-control"
	// Version is the version this code speaks. A peer refuses versions it
	// does not know.
	Version = 1
	// MaxRequest bounds a request, newline included.
	MaxRequest = 256 << 10
	// maxResponse bounds what a client reads: tables of every port.
	maxResponse = 64 << 20
)

// Request asks pasta to apply Ops, in order and all or nothing, and to
// answer with its tables.
type Request struct {
	Protocol string `json:"protocol"`
	Version  int    `json:"version"`
	Ops      []Op   `json:"ops,omitempty"`
	Before   bool   `json:"before,omitempty"` // also send the tables as they were
}

// The operations.
const (
	OpAdd    = "add"    // add the rules of Spec to the table of Option
	OpDelete = "delete" // delete the rules of Spec, which must all be in force
	OpClear  = "clear"  // delete every rule of Table
)

// Op is one operation of a request.
type Op struct {
	Op     string `json:"op"`
	Option string `json:"option,omitempty"` // add, delete: "tcp-ports", "udp-ports", "tcp-ns" or "udp-ns"
	Spec   string `json:"spec,omitempty"`   // add, delete: a port spec, as pasta(1) -t takes it
	Table  string `json:"table,omitempty"`  // clear: "HOST" or "SPLICE"
}

// Response is pasta's answer: an error, and nothing changed; or the tables
// after the request.
type Response struct {
	Protocol string  `json:"protocol"`
	Version  int     `json:"version"`
	Error    string  `json:"error,omitempty"`
	Before   []Table `json:"before,omitempty"`
	After    []Table `json:"after,omitempty"`
}

// The tables, named as pesto(1) --clear takes them.
const (
	TableHost   = "HOST"   // -t and -u: ports bound on the host
	TableSplice = "SPLICE" // -T and -U: ports bound in the namespace
)

// Table is one forwarding table.
type Table struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// Rule is a forwarding rule in force: ports First to Last, bound to
// Address and Interface (any if empty), forwarded to Target to
// Target+Last-First on the other side.
type Rule struct {
	Proto     string `json:"proto"` // "tcp" or "udp"
	Address   string `json:"address,omitempty"`
	Interface string `json:"interface,omitempty"`
	First     uint16 `json:"first"`
	Last      uint16 `json:"last"`
	Target    uint16 `json:"target"`
	// TargetAddress is the address on the other side the ports go to, if
	// the rule gives one; else the namespace's (or the host's loopback).
	TargetAddress string `json:"target_address,omitempty"`
	Auto          bool   `json:"auto,omitempty"`        // ports follow the other side
	BestEffort    bool   `json:"best_effort,omitempty"` // ports that can't be bound are skipped
	// Listening lists the ports that have a socket now, as comma-separated
	// ranges ("8000,8005-8007"); empty if none.
	Listening string   `json:"listening"`
	Sockets   int      `json:"sockets"`
	Counters  Counters `json:"counters"`
}

// Counters count what a rule forwarded. "In" is from the clients of its
// ports to the other side, "out" back to the clients.
type Counters struct {
	Connections  uint64 `json:"connections"` // TCP connections accepted
	Flows        uint64 `json:"flows"`       // UDP senders, each a flow
	BytesIn      uint64 `json:"bytes_in"`
	BytesOut     uint64 `json:"bytes_out"`
	DatagramsIn  uint64 `json:"datagrams_in"`
	DatagramsOut uint64 `json:"datagrams_out"`
}

// DecodeRequest reads a request from its line, newline excluded.
func DecodeRequest(line []byte) (*Request, error) {
	var r Request
	if err := decode(line, &r, &r.Protocol, &r.Version, "request", "pasta"); err != nil {
		return nil, err
	}
	return &r, nil
}

// Encode returns a message as it goes on the wire.
func Encode(msg any) []byte {
	b, err := json.Marshal(msg)
	if err != nil {
		panic(err) // only our own types are encoded, and they always can be
	}
	return append(b, '\n')
}

// Do sends a request to the control socket at path and returns the
// response, giving up after timeout. It uses the socket calls directly,
// not package net, so that pesto needs no C library.
func Do(path string, req *Request, timeout time.Duration) (*Response, error) {
	req.Protocol, req.Version = Protocol, Version
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	// SO_SNDTIMEO bounds connect too, while pasta's backlog is full
	// (unix(7)); SO_RCVTIMEO bounds each read.
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			return nil, err
		}
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	deadline := time.Now().Add(timeout)
	// pasta may answer (and hang up) before taking the request, to refuse
	// a client: its answer counts more than the failed write.
	werr := writeAll(fd, Encode(req))
	data, rerr := readAll(fd, deadline)
	resp, err := decodeResponse(data)
	switch {
	case err == nil:
		return resp, nil
	case werr != nil:
		return nil, fmt.Errorf("write: %w", werr)
	case rerr != nil:
		return nil, fmt.Errorf("read: %w", rerr)
	}
	return nil, err
}

// writeAll writes all of b.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readAll reads until the end of the stream, at most maxResponse bytes
// and until deadline.
func readAll(fd int, deadline time.Time) ([]byte, error) {
	var data []byte
	buf := make([]byte, 64<<10)
	for len(data) < maxResponse {
		if time.Now().After(deadline) {
			return data, unix.ETIMEDOUT
		}
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return data, unix.ETIMEDOUT // SO_RCVTIMEO passed
		case err != nil:
			return data, err
		case n == 0:
			return data, nil
		}
		data = append(data, buf[:n]...)
	}
	return data, nil
}

// decodeResponse reads a response, which must be complete.
func decodeResponse(data []byte) (*Response, error) {
	line, complete := bytes.CutSuffix(data, []byte("\n"))
	if !complete {
		return nil, errors.New("pasta closed the connection without a complete answer")
	}
	var r Response
	if err := decode(line, &r, &r.Protocol, &r.Version, "response", "pesto"); err != nil {
		return nil, err
	}
	return &r, nil
}

// decode reads a message into msg, whose protocol and version fields are
// given, and checks them; what and reader name the message and the
// program reading it, for errors.
func decode(line []byte, msg any, protocol *string, version *int, what, reader string) error {
	if err := json.Unmarshal(line, msg); err != nil || *protocol != Protocol {
		return fmt.Errorf("not a %s %s", Protocol, what)
	}
	if *version != Version {
		return fmt.Errorf("unsupported protocol version %d (this %s speaks version %d)", *version, reader, Version)
	}
	return nil
}

// RuleText describes a rule as the C pasta does in its tables:
// "TCP [*]:8000-8010  =>  9000-9010  (auto-scan)". Rules of the SPLICE
// table bound to any address are on the namespace's loopback: "[*]%lo".
func RuleText(table string, r *Rule) string {
	addr := "*"
	if r.Address != "" {
		addr = r.Address
	}
	ifname := r.Interface
	if ifname == "" && r.Address == "" && table == TableSplice {
		ifname = "lo"
	}
	if ifname != "" {
		ifname = "%" + ifname
	}
	to := portRange(r.Target, r.Target+(r.Last-r.First))
	if r.TargetAddress != "" {
		to = r.TargetAddress + ":" + to
	}
	s := fmt.Sprintf("%s [%s]%s:%s  =>  %s", strings.ToUpper(r.Proto), addr, ifname, portRange(r.First, r.Last), to)
	var flags []string
	if r.BestEffort {
		flags = append(flags, "(best effort)")
	}
	if r.Auto {
		flags = append(flags, "(auto-scan)")
	}
	if len(flags) > 0 {
		s += "  " + strings.Join(flags, " ")
	}
	return s
}

func portRange(first, last uint16) string {
	if first == last {
		return fmt.Sprint(first)
	}
	return fmt.Sprintf("%d-%d", first, last)
}

// CountersText describes a rule's counters, and its sockets where not
// every port has one: "connections 2, bytes in 1534, out 80".
func CountersText(r *Rule) string {
	c := &r.Counters
	s := fmt.Sprintf("connections %d, bytes in %d, out %d", c.Connections, c.BytesIn, c.BytesOut)
	if r.Proto == "udp" {
		s = fmt.Sprintf("flows %d, datagrams in %d (%d bytes), out %d (%d bytes)",
			c.Flows, c.DatagramsIn, c.BytesIn, c.DatagramsOut, c.BytesOut)
	}
	if r.Auto || r.Listening != portRange(r.First, r.Last) {
		listening := r.Listening
		if listening == "" {
			listening = "none"
		}
		s += "; listening: " + listening
	}
	return s
}

// FormatTables writes tables as pesto shows them, under a title line:
// each table's name, then each rule and its counters.
func FormatTables(w io.Writer, title string, tables []Table) {
	fmt.Fprintln(w, title)
	for _, t := range tables {
		fmt.Fprintf(w, "  %s\n", t.Name)
		for i := range t.Rules {
			r := &t.Rules[i]
			fmt.Fprintf(w, "    %s\n      %s\n", RuleText(t.Name, r), CountersText(r))
		}
	}
}
