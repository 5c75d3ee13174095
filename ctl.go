package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"gopasta/internal/control"
)

// The control socket (-c, --conf-path, pasta(1)): pesto shows and changes
// the forwarding rules through it, with the protocol of internal/control
// (docs/control.md). It is a UNIX stream socket made at start, before
// pasta reports ready, mode 0600; only the user who started pasta may use
// it, which the peer's credentials (SO_PEERCRED, unix(7)) must show.
//
// It is served by the event loop like any other descriptor, never
// blocking it: a few clients at a time, each with a bounded buffer and a
// deadline to send its request and read the answer. Requests are applied
// one at a time, each as soon as it is complete, all or nothing
// (fwdtable.go). A client that sends nothing, garbage, or too much gets an
// error (if it reads) and is disconnected; while every slot is busy, new
// clients wait in the socket's backlog.

const (
	ctlMaxClients = 4
	ctlBacklog    = 16
	ctlTimeoutNS  = int64(2e9) // to send the request and read the answer
	ctlReadChunk  = 4096
)

// ctlClient is a connected client, or a free slot.
type ctlClient struct {
	fd       int // -1: free
	deadline int64
	in       []byte // the request so far
	out      []byte // the answer, once the request is handled
	sent     int
}

// ctlServer is the control socket and its clients.
type ctlServer struct {
	fd      int
	owner   uint32 // the user who started pasta, as this namespace sees it
	paused  bool   // not accepting: every slot is busy
	clients [ctlMaxClients]ctlClient
	chunk   [ctlReadChunk]byte
}

// setupControl creates the control socket at path, if given.
func (c *ctx) setupControl(path string) error {
	if path == "" {
		return nil
	}
	fd, err := listenUnix(path)
	if err != nil {
		return fmt.Errorf("--conf-path: %w", err)
	}
	s := &ctlServer{fd: fd, owner: uint32(os.Getuid())}
	for i := range s.clients {
		s.clients[i].fd = -1
	}
	if err := c.epollAdd(fd, unix.EPOLLIN, makeRef(kindCtlListen, 0)); err != nil {
		unix.Close(fd)
		return err
	}
	c.ctl = s
	c.rebudget()
	infof("Configuration socket: %s", path)
	return nil
}

// listenUnix makes a listening UNIX stream socket at path, mode 0600. A
// socket left there by a pasta that is gone is replaced; anything else at
// path is an error.
func listenUnix(path string) (int, error) {
	if err := removeStaleSocket(path); err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	old := unix.Umask(0o177) // the socket file gets mode 0600 as it is made
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	unix.Umask(old)
	if err == nil {
		err = unix.Listen(fd, ctlBacklog)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", path, err)
	}
	return fd, nil
}

// removeStaleSocket removes a socket at path that nobody listens on.
func removeStaleSocket(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	probe, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(probe)
	if err := unix.Connect(probe, &unix.SockaddrUnix{Name: path}); err == nil {
		return fmt.Errorf("%s is in use by another process", path)
	}
	return unix.Unlink(path)
}

// ctlAccept takes the clients waiting, while there are free slots.
func (c *ctx) ctlAccept() {
	s := c.ctl
	for {
		slot := s.freeSlot()
		if slot < 0 {
			c.ctlPause(true)
			return
		}
		fd, _, err := unix.Accept4(s.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || cred.Uid != s.owner {
			c.ctlRefuse(fd, cred)
			continue
		}
		cl := &s.clients[slot]
		*cl = ctlClient{fd: fd, deadline: c.now + ctlTimeoutNS}
		if err := c.epollAdd(fd, unix.EPOLLIN, makeRef(kindCtlClient, slot)); err != nil {
			c.ctlClose(slot)
		}
	}
}

// ctlRefuse tells a client of another user that it may not, and hangs up.
func (c *ctx) ctlRefuse(fd int, cred *unix.Ucred) {
	uid := "unknown"
	if cred != nil {
		uid = fmt.Sprint(cred.Uid)
	}
	msg := fmt.Sprintf("permission denied: user %s is not the owner of this pasta (user %d)", uid, c.ctl.owner)
	_, _ = unix.Write(fd, control.Encode(&control.Response{Protocol: control.Protocol, Version: control.Version, Error: msg}))
	unix.Close(fd)
	c.warnRateLimited(warnCtlRefused, "control socket: refused a client of user %s", uid)
}

func (s *ctlServer) freeSlot() int {
	for i := range s.clients {
		if s.clients[i].fd < 0 {
			return i
		}
	}
	return -1
}

// ctlPause stops or resumes accepting clients.
func (c *ctx) ctlPause(pause bool) {
	s := c.ctl
	if s.paused == pause {
		return
	}
	var events uint32
	if !pause {
		events = unix.EPOLLIN
	}
	ev := unix.EpollEvent{Events: events, Fd: int32(makeRef(kindCtlListen, 0))}
	if unix.EpollCtl(c.epfd, unix.EPOLL_CTL_MOD, s.fd, &ev) == nil {
		s.paused = pause
	}
}

// ctlEvent handles readiness of a client: more of its request, or room
// for more of the answer.
func (c *ctx) ctlEvent(slot int, events uint32) {
	cl := &c.ctl.clients[slot]
	switch {
	case cl.fd < 0:
	case cl.out != nil:
		c.ctlFlush(slot)
	case events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0:
		c.ctlRead(slot)
	}
}

// ctlRead reads what the client sent; a request is complete at a newline
// or at the end of the client's stream.
func (c *ctx) ctlRead(slot int) {
	s := c.ctl
	cl := &s.clients[slot]
	for {
		n, err := unix.Read(cl.fd, s.chunk[:])
		switch {
		case isTemporary(err):
			return
		case err != nil:
			c.ctlClose(slot)
			return
		case n == 0 && len(cl.in) == 0:
			c.ctlClose(slot) // connected and left
			return
		case n == 0:
			c.ctlRespond(slot, c.ctlHandle(cl.in))
			return
		}
		cl.in = append(cl.in, s.chunk[:n]...)
		if line, _, complete := bytes.Cut(cl.in, []byte("\n")); complete {
			c.ctlRespond(slot, c.ctlHandle(line))
			return
		}
		if len(cl.in) >= control.MaxRequest {
			c.ctlRespond(slot, ctlError(fmt.Sprintf("request larger than %d bytes", control.MaxRequest)))
			return
		}
	}
}

// ctlHandle applies a request and returns the answer.
func (c *ctx) ctlHandle(line []byte) *control.Response {
	req, err := control.DecodeRequest(line)
	if err != nil {
		return ctlError(err.Error())
	}
	resp := &control.Response{Protocol: control.Protocol, Version: control.Version}
	if req.Before {
		resp.Before = c.wireTables()
	}
	ops, err := c.ruleOpsOf(req.Ops)
	if err == nil {
		err = c.applyRuleOps(ops)
	}
	if err != nil {
		resp.Error = err.Error()
		return resp
	}
	resp.After = c.wireTables()
	return resp
}

func ctlError(msg string) *control.Response {
	return &control.Response{Protocol: control.Protocol, Version: control.Version, Error: msg}
}

// ruleOpsOf turns the operations of a request into rule operations.
func (c *ctx) ruleOpsOf(ops []control.Op) ([]ruleOp, error) {
	var out []ruleOp
	for _, op := range ops {
		switch op.Op {
		case control.OpClear:
			t, ok := tableByName(op.Table)
			if !ok {
				return nil, fmt.Errorf("unknown table '%s' (%s or %s)", op.Table, control.TableHost, control.TableSplice)
			}
			out = append(out, ruleOp{kind: opClear, table: t})
		case control.OpAdd, control.OpDelete:
			d, ok := dirByOption(op.Option)
			if !ok {
				return nil, fmt.Errorf("unknown option '%s'", op.Option)
			}
			spec, err := parsePortSpec(op.Spec, d.proto == protoTCP)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.option, err)
			}
			kind := opAdd
			if op.Op == control.OpDelete {
				kind = opDelete
			}
			for _, r := range spec.ranges {
				out = append(out, ruleOp{kind: kind, dir: d, r: r})
			}
		default:
			return nil, fmt.Errorf("unknown operation '%s'", op.Op)
		}
	}
	return out, nil
}

func tableByName(name string) (fwdTable, bool) {
	for t, n := range tableNames {
		if n == name {
			return fwdTable(t), true
		}
	}
	return 0, false
}

// ctlRespond starts sending an answer; the client is closed once it has
// all of it.
func (c *ctx) ctlRespond(slot int, resp *control.Response) {
	cl := &c.ctl.clients[slot]
	cl.in, cl.out = nil, control.Encode(resp)
	ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(makeRef(kindCtlClient, slot))}
	if err := unix.EpollCtl(c.epfd, unix.EPOLL_CTL_MOD, cl.fd, &ev); err != nil {
		c.ctlClose(slot)
		return
	}
	c.ctlFlush(slot)
}

// ctlFlush writes what the socket takes of the answer.
func (c *ctx) ctlFlush(slot int) {
	cl := &c.ctl.clients[slot]
	for cl.sent < len(cl.out) {
		n, err := unix.Write(cl.fd, cl.out[cl.sent:])
		if isTemporary(err) {
			return
		}
		if err != nil {
			break
		}
		cl.sent += n
	}
	c.ctlClose(slot)
}

// ctlClose hangs up on a client and frees its slot.
func (c *ctx) ctlClose(slot int) {
	cl := &c.ctl.clients[slot]
	if cl.fd >= 0 {
		c.epollDel(cl.fd)
		unix.Close(cl.fd)
	}
	*cl = ctlClient{fd: -1}
	c.ctlPause(false)
}

// ctlExpire hangs up on clients past their deadline, telling those still
// to send their request why.
func (c *ctx) ctlExpire() {
	if c.ctl == nil {
		return
	}
	for slot := range c.ctl.clients {
		cl := &c.ctl.clients[slot]
		if cl.fd < 0 || c.now < cl.deadline {
			continue
		}
		if cl.out == nil {
			_, _ = unix.Write(cl.fd, control.Encode(ctlError("timed out waiting for the request")))
		}
		c.ctlClose(slot)
	}
}

// wireTables describes the tables in force, with each rule's sockets and
// counters.
func (c *ctx) wireTables() []control.Table {
	listening := map[ruleRef]*portSet{}
	sockets := map[ruleRef]int{}
	for i := range c.listeners {
		l := &c.listeners[i]
		if l.fd < 0 || l.rule <= 0 {
			continue
		}
		if listening[l.rule] == nil {
			listening[l.rule] = &portSet{}
		}
		listening[l.rule].add(int(l.port))
		sockets[l.rule]++
	}
	tables := []control.Table{{Name: control.TableHost, Rules: []control.Rule{}}, {Name: control.TableSplice, Rules: []control.Rule{}}}
	for _, slot := range c.ruleOrder() {
		r := &c.rules[slot]
		w := wireRule(r.dir, r.fwdRange)
		ref := refOf(slot)
		w.Listening, w.Sockets = portRanges(listening[ref], r.first, r.last), sockets[ref]
		st := &r.stats
		w.Counters = control.Counters{Connections: st.connections, Flows: st.flows,
			BytesIn: st.bytesIn, BytesOut: st.bytesOut, DatagramsIn: st.datagramsIn, DatagramsOut: st.datagramsOut}
		t := &tables[tableOf(r.dir)]
		t.Rules = append(t.Rules, w)
	}
	return tables
}

// wireRule describes a rule without its state.
func wireRule(d fwdDir, r fwdRange) control.Rule {
	w := control.Rule{Proto: "tcp", Interface: r.bindIf, First: r.first, Last: r.last, Target: r.target,
		Auto: r.auto, BestEffort: r.bestEffort}
	if d.proto == protoUDP {
		w.Proto = "udp"
	}
	if r.bindAddr.IsValid() {
		w.Address = r.bindAddr.String()
	}
	if r.targetAddr.IsValid() {
		w.TargetAddress = r.targetAddr.String()
	}
	return w
}

// portRanges lists the ports of set between first and last as ranges:
// "8000,8005-8007".
func portRanges(set *portSet, first, last uint16) string {
	if set == nil {
		return ""
	}
	var b []byte
	for p := int(first); p <= int(last); p++ {
		if !set.has(p) {
			continue
		}
		end := p
		for end < int(last) && set.has(end+1) {
			end++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%d", p)
		if end > p {
			b = fmt.Appendf(b, "-%d", end)
		}
		p = end
	}
	return string(b)
}
