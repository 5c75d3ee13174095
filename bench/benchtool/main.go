// Command benchtool holds the small load generators and the report of the
// gopasta benchmark (bench/run.sh). Standard library only.
//
//	benchtool connrate-server -l ADDR:PORT [-t LIFETIME]
//	benchtool connrate-client -c ADDR:PORT [-d DURATION] [-p WORKERS] [-max N]
//	benchtool tcprr-server    -l ADDR:PORT [-t LIFETIME]
//	benchtool tcprr-client    -c ADDR:PORT [-d DURATION] [-s SIZE]
//	benchtool udprr-server    -l ADDR:PORT [-t LIFETIME]
//	benchtool udprr-client    -c ADDR:PORT [-d DURATION] [-p WORKERS] [-s SIZE] [-timeout T]
//	benchtool slirp-api       SOCKET JSON
//	benchtool report          [-helpers LIST] [-tests LIST] RESULTS.tsv
//	benchtool chart           [-helpers LIST] [-tests LIST] [-title T] RESULTS.tsv   (a gnuplot program)
//
// connrate: every connection sends a 32-byte request, reads the 32-byte
// answer and then EOF (the server closes first, so TIME_WAIT stays on the
// server's side and the client never runs out of ephemeral ports).
//
// tcprr: ping-pong of SIZE-byte messages on one TCP connection (netperf's
// TCP_RR), one in flight; every round trip is timed, and the client
// reports the rate and the 50th and 99th percentiles in microseconds.
//
// udprr: ping-pong of small datagrams (a DNS-like exchange): each worker has
// one connected socket and one request in flight; a request not answered
// within -timeout counts as lost and the next one is sent.
//
// Every loop here is bounded in time; servers exit after -t.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "connrate-server":
		err = connrateServer(args)
	case "connrate-client":
		err = connrateClient(args)
	case "tcprr-server":
		err = tcprrServer(args)
	case "tcprr-client":
		err = tcprrClient(args)
	case "udprr-server":
		err = udprrServer(args)
	case "udprr-client":
		err = udprrClient(args)
	case "slirp-api":
		err = slirpAPI(args)
	case "report":
		err = report(args)
	case "chart":
		err = chart(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchtool connrate-server|connrate-client|tcprr-server|tcprr-client|udprr-server|udprr-client|slirp-api|report|chart ...")
	os.Exit(2)
}

const reqSize = 32

// printJSON writes v as one line of JSON on stdout.
func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("%s\n", b)
	return err
}

// --- short TCP connections ---

func connrateServer(args []string) error {
	fs := flag.NewFlagSet("connrate-server", flag.ExitOnError)
	addr := fs.String("l", ":5301", "listen address")
	life := fs.Duration("t", 120*time.Second, "exit after this long")
	_ = fs.Parse(args)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	time.AfterFunc(*life, func() { ln.Close() })
	var served atomic.Int64
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				fmt.Fprintf(os.Stderr, "connrate-server: served %d connections\n", served.Load())
				return nil
			}
			// Transient (EMFILE, ECONNABORTED...): back off a little.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var buf [reqSize]byte
			if _, err := io.ReadFull(c, buf[:]); err != nil {
				return
			}
			if _, err := c.Write(buf[:]); err == nil {
				served.Add(1)
			}
		}(c)
	}
}

type rateResult struct {
	Done     int64   `json:"done"`
	Errors   int64   `json:"errors"`
	Timeouts int64   `json:"timeouts,omitempty"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"`
	Workers  int     `json:"workers"`
	FirstErr string  `json:"first_error,omitempty"`
}

func connrateClient(args []string) error {
	fs := flag.NewFlagSet("connrate-client", flag.ExitOnError)
	addr := fs.String("c", "", "server address:port")
	dur := fs.Duration("d", 5*time.Second, "duration")
	workers := fs.Int("p", 4, "concurrent connections")
	maxN := fs.Int64("max", 5_000_000, "stop after this many connections")
	_ = fs.Parse(args)
	if *addr == "" || *workers < 1 {
		return errors.New("need -c ADDR:PORT and -p >= 1")
	}

	var done, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req, resp [reqSize]byte
			d := net.Dialer{Timeout: 2 * time.Second}
			for time.Now().Before(deadline) && done.Load()+errs.Load() < *maxN {
				if err := oneConn(&d, *addr, req[:], resp[:]); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					// Do not spin on a dead path.
					time.Sleep(10 * time.Millisecond)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	r := rateResult{Done: done.Load(), Errors: errs.Load(), Seconds: el, Rate: float64(done.Load()) / el, Workers: *workers}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstErr = s
	}
	if err := printJSON(r); err != nil {
		return err
	}
	if r.Done == 0 {
		return errors.New("no connection completed")
	}
	return nil
}

func oneConn(d *net.Dialer, addr string, req, resp []byte) error {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, resp); err != nil {
		return err
	}
	var one [1]byte
	if n, err := c.Read(one[:]); n != 0 || err != io.EOF {
		return fmt.Errorf("expected EOF after the answer, got %d bytes, %v", n, err)
	}
	return nil
}

// --- TCP request/response ---

func tcprrServer(args []string) error {
	fs := flag.NewFlagSet("tcprr-server", flag.ExitOnError)
	addr := fs.String("l", ":5303", "listen address")
	life := fs.Duration("t", 120*time.Second, "exit after this long")
	size := fs.Int("s", reqSize, "message size in bytes")
	_ = fs.Parse(args)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	end := time.Now().Add(*life)
	time.AfterFunc(*life, func() { ln.Close() })
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(end)
			buf := make([]byte, *size)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}(c)
	}
}

type latencyResult struct {
	Done     int64   `json:"done"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	Errors   int64   `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
}

func tcprrClient(args []string) error {
	fs := flag.NewFlagSet("tcprr-client", flag.ExitOnError)
	addr := fs.String("c", "", "server address:port")
	dur := fs.Duration("d", 5*time.Second, "duration")
	size := fs.Int("s", reqSize, "message size in bytes (>= 8)")
	maxN := fs.Int("max", 5_000_000, "stop after this many round trips")
	_ = fs.Parse(args)
	if *addr == "" || *size < 8 {
		return errors.New("need -c ADDR:PORT and -s >= 8")
	}
	c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetDeadline(start.Add(*dur + 10*time.Second))
	req, resp := make([]byte, *size), make([]byte, *size)
	rtts := make([]time.Duration, 0, 1<<16)
	var r latencyResult
	for seq := uint64(1); time.Since(start) < *dur && len(rtts) < *maxN; seq++ {
		binary.BigEndian.PutUint64(req, seq)
		t0 := time.Now()
		if _, err := c.Write(req); err != nil {
			r.Errors, r.FirstErr = 1, err.Error()
			break
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			r.Errors, r.FirstErr = 1, err.Error()
			break
		}
		if binary.BigEndian.Uint64(resp) != seq {
			r.Errors, r.FirstErr = 1, "answer out of sequence"
			break
		}
		rtts = append(rtts, time.Since(t0))
	}
	r.Seconds = time.Since(start).Seconds()
	r.Done = int64(len(rtts))
	r.Rate = float64(r.Done) / r.Seconds
	if len(rtts) > 0 {
		sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
		pct := func(p float64) float64 {
			return float64(rtts[int(p*float64(len(rtts)-1))].Nanoseconds()) / 1e3
		}
		r.P50, r.P99 = pct(0.50), pct(0.99)
	}
	if err := printJSON(r); err != nil {
		return err
	}
	if r.Done == 0 {
		return errors.New("no round trip completed")
	}
	return nil
}

// --- UDP request/response ---

func udprrServer(args []string) error {
	fs := flag.NewFlagSet("udprr-server", flag.ExitOnError)
	addr := fs.String("l", ":5302", "listen address")
	life := fs.Duration("t", 120*time.Second, "exit after this long")
	_ = fs.Parse(args)

	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	end := time.Now().Add(*life)
	_ = pc.SetDeadline(end)
	buf := make([]byte, 65536)
	var n int64
	for {
		m, from, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				fmt.Fprintf(os.Stderr, "udprr-server: answered %d requests\n", n)
				return nil
			}
			if time.Now().After(end) {
				return err
			}
			continue
		}
		if _, err := pc.WriteTo(buf[:m], from); err == nil {
			n++
		}
	}
}

func udprrClient(args []string) error {
	fs := flag.NewFlagSet("udprr-client", flag.ExitOnError)
	addr := fs.String("c", "", "server address:port")
	dur := fs.Duration("d", 5*time.Second, "duration")
	workers := fs.Int("p", 1, "concurrent sockets, one request in flight each")
	size := fs.Int("s", 48, "request size in bytes (>= 8)")
	timeout := fs.Duration("timeout", 200*time.Millisecond, "a request not answered within this is lost")
	_ = fs.Parse(args)
	if *addr == "" || *workers < 1 || *size < 8 || *size > 65000 {
		return errors.New("need -c ADDR:PORT, -p >= 1, 8 <= -s <= 65000")
	}

	var done, lost, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	deadline := start.Add(*dur)
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", *addr)
			if err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			defer c.Close()
			req := make([]byte, *size)
			resp := make([]byte, 65536)
			seq := uint64(w) << 48
			for time.Now().Before(deadline) {
				seq++
				binary.BigEndian.PutUint64(req, seq)
				if _, err := c.Write(req); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				_ = c.SetReadDeadline(time.Now().Add(*timeout))
				for {
					n, err := c.Read(resp)
					if err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							lost.Add(1)
						} else {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
							time.Sleep(10 * time.Millisecond)
						}
						break
					}
					// A late answer to an earlier request: keep waiting.
					if n >= 8 && binary.BigEndian.Uint64(resp) == seq {
						done.Add(1)
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	r := rateResult{Done: done.Load(), Errors: errs.Load(), Timeouts: lost.Load(), Seconds: el,
		Rate: float64(done.Load()) / el, Workers: *workers}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstErr = s
	}
	if err := printJSON(r); err != nil {
		return err
	}
	if r.Done == 0 {
		return errors.New("no request answered")
	}
	return nil
}

// --- slirp4netns API socket ---

func slirpAPI(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: slirp-api SOCKET JSON")
	}
	c, err := net.DialTimeout("unix", args[0], 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, args[1]); err != nil {
		return err
	}
	// slirp4netns answers once the client has shut down its write side.
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<16))
	if err != nil {
		return err
	}
	fmt.Printf("%s\n", strings.TrimSpace(string(b)))
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("bad answer %q: %v", b, err)
	}
	if e, ok := resp["error"]; ok {
		return fmt.Errorf("slirp4netns says %s", e)
	}
	return nil
}

// --- report ---

// A results line (tab-separated, written by run.sh):
//
//	test  helper  round  status  value  [note]
//
// status is ok, fail, timeout or n/a; value is in the unit of the test.
type sample struct {
	status string
	value  float64
}

type rowSpec struct {
	title string
	unit  string
	prec  int
}

var rows = map[string]rowSpec{
	"tcp4-up":            {"TCP upload, IPv4", "Gbit/s", 2},
	"tcp4-down":          {"TCP download, IPv4", "Gbit/s", 2},
	"tcp6-up":            {"TCP upload, IPv6", "Gbit/s", 2},
	"tcp6-down":          {"TCP download, IPv6", "Gbit/s", 2},
	"tcp4-in":            {"TCP inbound (-t), IPv4", "Gbit/s", 2},
	"tcp6-in":            {"TCP inbound (-t), IPv6", "Gbit/s", 2},
	"tcp4-splice-in":     {"TCP inbound from host 127.0.0.1 (-t, spliced)", "Gbit/s", 2},
	"tcp4-splice-out":    {"TCP to host 127.0.0.1 (-T, spliced)", "Gbit/s", 2},
	"tcp4-crr":           {"TCP short connections, IPv4", "conn/s", 0},
	"tcp4-crr-splice":    {"TCP short connections to host 127.0.0.1 (-T)", "conn/s", 0},
	"tcp4-rr-p50":        {"TCP request/response p50", "us", 1},
	"tcp4-rr-p99":        {"TCP request/response p99", "us", 1},
	"tcp4-rr-splice-p50": {"TCP request/response to host 127.0.0.1 (-T) p50", "us", 1},
	"tcp4-rr-splice-p99": {"TCP request/response to host 127.0.0.1 (-T) p99", "us", 1},
	"udp4-up":            {"UDP upload 1400 B, received", "Gbit/s", 2},
	"udp4-up-loss":       {"UDP upload 1400 B, loss", "%", 1},
	"udp4-down":          {"UDP download 1400 B, received", "Gbit/s", 2},
	"udp4-down-loss":     {"UDP download 1400 B, loss", "%", 1},
	"udp4-up-8k":         {"UDP upload 8000 B, received", "Gbit/s", 2},
	"udp4-up-8k-loss":    {"UDP upload 8000 B, loss", "%", 1},
	"udp4-down-8k":       {"UDP download 8000 B, received", "Gbit/s", 2},
	"udp4-down-8k-loss":  {"UDP download 8000 B, loss", "%", 1},
	"udp4-rr":            {"UDP request/response, IPv4", "req/s", 0},
	"rss":                {"helper memory (PSS)", "MiB", 1},
}

// rowSpecOf is the row of a test id; TEST@1500 is TEST at MTU 1500.
func rowSpecOf(t string) rowSpec {
	base, mtu, found := strings.Cut(t, "@")
	spec, ok := rows[base]
	if !ok {
		spec = rowSpec{base, "", 2}
	}
	if found {
		spec.title += ", MTU " + mtu
	}
	return spec
}

func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	helpersFlag := fs.String("helpers", "veth gopasta cpasta slirp4netns", "columns")
	testsFlag := fs.String("tests", "", "row order (default: order of appearance)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: report [flags] RESULTS.tsv")
	}
	data, order, _, err := readResults(fs.Arg(0), *testsFlag)
	if err != nil {
		return err
	}
	helpers := strings.Fields(*helpersFlag)
	header := []string{"test"}
	for _, h := range helpers {
		header = append(header, nameOf(helperNames, h))
	}
	hasG := contains(helpers, "gopasta")
	var others []string
	if hasG {
		for _, h := range helpers {
			if h != "veth" && h != "gopasta" {
				others = append(others, h)
				header = append(header, "gopasta/"+nameOf(helperNames, h))
			}
		}
	}

	var table [][]string
	partial := false
	for _, t := range order {
		spec := rowSpecOf(t)
		title := spec.title
		if spec.unit != "" {
			title += ", " + spec.unit
		}
		line := []string{title}
		med := map[string]float64{}
		for _, h := range helpers {
			cell, m, ok, part := summarize(data[t][h], spec.prec)
			if ok {
				med[h] = m
			}
			partial = partial || part
			line = append(line, cell)
		}
		for _, o := range others {
			g, okG := med["gopasta"]
			x, okX := med[o]
			switch {
			case okG && okX && x != 0:
				line = append(line, fmt.Sprintf("%.2fx", g/x))
			default:
				line = append(line, "-")
			}
		}
		table = append(table, line)
	}
	printTable(header, table)
	if partial {
		fmt.Println()
		fmt.Println("n/N: only n of N runs succeeded; the value is the median of those.")
	}
	return nil
}

// helperNames are the helpers' names in the table and the chart.
var helperNames = map[string]string{"veth": "veth", "gopasta": "gopasta", "cpasta": "C pasta 2026-10", "cpasta25": "C pasta 2025-05",
	"cpasta12": "C pasta (Debian 12)", "slirp4netns": "slirp4netns"}

// readResults reads results.tsv (test, helper, round, status, value, note
// per line): the samples of each test and helper, the tests in the order
// given by tests and then as they appear, and the helpers as they appear.
func readResults(path, tests string) (data map[string]map[string][]sample, order, helpers []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	data = map[string]map[string][]sample{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 5 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		t, h, st := fields[0], fields[1], fields[3]
		v, _ := strconv.ParseFloat(fields[4], 64)
		if data[t] == nil {
			data[t] = map[string][]sample{}
			order = append(order, t)
		}
		if !contains(helpers, h) {
			helpers = append(helpers, h)
		}
		data[t][h] = append(data[t][h], sample{st, v})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, nil, err
	}
	if tests != "" {
		var o []string
		for _, t := range strings.Fields(tests) {
			if data[t] != nil {
				o = append(o, t)
			}
		}
		for _, t := range order {
			if !contains(o, t) {
				o = append(o, t)
			}
		}
		order = o
	}
	return data, order, helpers, nil
}

func nameOf(names map[string]string, h string) string {
	if n, ok := names[h]; ok {
		return n
	}
	return h
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// summarize gives the cell text, the median of the successful samples and,
// with more than one, their range: "median (min-max)".
func summarize(ss []sample, prec int) (cell string, median float64, ok, partial bool) {
	if len(ss) == 0 {
		return "-", 0, false, false
	}
	var vals []float64
	counts := map[string]int{}
	for _, s := range ss {
		if s.status == "ok" && !math.IsNaN(s.value) {
			vals = append(vals, s.value)
		} else {
			counts[s.status]++
		}
	}
	if len(vals) == 0 {
		// The most telling failure: timeout over fail over n/a.
		for _, st := range []string{"timeout", "fail", "n/a"} {
			if counts[st] > 0 {
				return st, 0, false, false
			}
		}
		return "fail", 0, false, false
	}
	sort.Float64s(vals)
	n := len(vals)
	if n%2 == 1 {
		median = vals[n/2]
	} else {
		median = (vals[n/2-1] + vals[n/2]) / 2
	}
	cell = strconv.FormatFloat(median, 'f', prec, 64)
	if n > 1 {
		cell += " (" + strconv.FormatFloat(vals[0], 'f', prec, 64) + "-" + strconv.FormatFloat(vals[n-1], 'f', prec, 64) + ")"
	}
	if n < len(ss) {
		cell += fmt.Sprintf(" (%d/%d)", n, len(ss))
		partial = true
	}
	return cell, median, true, partial
}

func printTable(header []string, rows [][]string) {
	w := make([]int, len(header))
	for i, h := range header {
		w[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			if len(c) > w[i] {
				w[i] = len(c)
			}
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			if i == 0 {
				fmt.Fprintf(&b, " %-*s |", w[i], c)
			} else {
				fmt.Fprintf(&b, " %*s |", w[i], c)
			}
		}
		fmt.Println(b.String())
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		if i == 0 {
			sep[i] = strings.Repeat("-", w[i])
		} else {
			sep[i] = strings.Repeat("-", w[i]-1) + ":"
		}
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}
