package podman

// The forwarding matrix: what Podman's own pasta tests cover
// (test/system/505-networking-pasta.bats in containers/podman), written
// anew: TCP and UDP x IPv4 and IPv6 x the kinds of port specs Podman users
// write (single port, range, translated port, translated range, bound to
// an address, bound to an interface) x where the client stands, plus small
// and large transfers, every byte checked. One container per variant
// serves every port (portcheck, a static Go server mounted into the
// image), so the whole matrix is one run.sh call.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// Ports of the matrix: host port -> container port for each kind of spec.
// The same numbers serve TCP and UDP.
const (
	portSingle     = 10001    // -p 10001:10001
	portRange      = 10011    // -p 10011-10013:10011-10013
	portTrans      = 10021    // -p 10021:10121
	portTransRange = 10031    // -p 10031-10033:10131-10133
	portAddr       = 10040    // +1 host's IPv4, +2 127.0.0.1, +3 host's IPv6, +4 ::1 (-p ADDR:P:P)
	portIface      = 10050    // the same with pasta's ADDR%IF/P (--network pasta:-t,...)
	portXfer       = 10061    // -p 10061:10061, for the transfers
	rangeLen       = 3        // ports in each range
	transDelta     = 100      // container port - host port when translated
	udpChunk       = 8192     // bytes per datagram in UDP transfers
	smallXfer      = 2 << 10  // bytes of a small transfer
	largeXferTCP   = 10 << 20 // bytes of a large TCP transfer
	probeLen       = 64       // bytes of a forwarding check
	udpAttempts    = 3        // a UDP exchange may lose a datagram: tries before failing
	portcheckDir   = "/pc"    // where the container sees portcheck
	portcheckReady = "ready"  // portcheck's line once every socket is bound
	loIf           = "lo"     // the host's loopback interface
	matrixCtr      = "matrix" // container name suffix
	ctrWaitReady   = 100      // tries, 0.1 s apart, for portcheck to be ready
	exchangeLimit  = 30 * time.Second

	// cPastaAttempts is how many tries the C pasta gets at a transfer
	// (see attempts).
	cPastaAttempts = 3
)

// clientPos is where a client stands and which address it connects to.
type clientPos struct {
	name string
	ns   func(w *world) string // netns path
	dst  func(fam int) string  // the address the client connects to
	peer func(fam int) string  // the client address the container must see
}

var (
	// Another machine: the remote netns, to the host's address (tap path).
	posRemote = clientPos{"remote",
		func(w *world) string { return w.sb.RemotePath() },
		func(fam int) string { return pick(fam, sandbox.HostAddr4, sandbox.HostAddr6) },
		func(fam int) string { return pick(fam, sandbox.RemoteAddr4, sandbox.RemoteAddr6) }}
	// A client on the host's loopback (spliced path). The container sees
	// its own address, which is the host's (see loopbackPeer4).
	posLoopback = clientPos{"loopback",
		func(w *world) string { return w.sb.HostPath() },
		func(fam int) string { return pick(fam, "127.0.0.1", "::1") },
		func(fam int) string { return pick(fam, loopbackPeer4, loopbackPeer6) }}
)

// A client on the host itself connecting to the host's own address (what
// Podman's tests call "tap"): pasta takes it on the tap path, and the
// container sees it come from --map-guest-addr's address (169.254.1.2,
// Podman's) over IPv4, and from the gateway's link-local address over
// IPv6, as the C pasta shows it (pasta(1), NOTES, address translation).
var posHostAddr = clientPos{"host-address",
	func(w *world) string { return w.sb.HostPath() },
	func(fam int) string { return pick(fam, sandbox.HostAddr4, sandbox.HostAddr6) },
	func(fam int) string { return pick(fam, mapGuest, sandbox.Gateway6+"%"+sandbox.HostIf) }}

// matrixPositions are the client positions every forwarding case runs from.
var matrixPositions = []clientPos{posRemote, posLoopback, posHostAddr}

func pick(fam int, v4, v6 string) string {
	if fam == 4 {
		return v4
	}
	return v6
}

// boundPort is the host port of an address- or interface-bound spec:
// base+1..4 for the host's IPv4 address, 127.0.0.1, the host's IPv6
// address, ::1.
func boundPort(base, fam int, loopback bool) int {
	p := base + 1
	if loopback {
		p++
	}
	if fam == 6 {
		p += 2
	}
	return p
}

// portMap is one forwarded port: where the client connects, where the
// container must receive.
type portMap struct{ host, ctr int }

// fwdKinds are the kinds of port specs, by name.
var fwdKinds = []string{"single", "range", "translated", "translated-range", "address-bound", "interface-bound"}

// kindPorts returns, for a kind of spec, a family and a client position,
// the ports that must reach the container and the host ports that must be
// refused (bound to the other of loopback and the host's address).
func kindPorts(kind string, fam int, pos clientPos) (reach []portMap, refuse []int) {
	seq := func(host, delta int) []portMap {
		var m []portMap
		for i := range rangeLen {
			m = append(m, portMap{host + i, host + i + delta})
		}
		return m
	}
	lo := pos.name == posLoopback.name
	switch kind {
	case "single":
		return []portMap{{portSingle, portSingle}}, nil
	case "range":
		return seq(portRange, 0), nil
	case "translated":
		return []portMap{{portTrans, portTrans + transDelta}}, nil
	case "translated-range":
		return seq(portTransRange, transDelta), nil
	case "address-bound":
		p := boundPort(portAddr, fam, lo)
		return []portMap{{p, p}}, []int{boundPort(portAddr, fam, !lo)}
	case "interface-bound":
		p := boundPort(portIface, fam, lo)
		return []portMap{{p, p}}, []int{boundPort(portIface, fam, !lo)}
	}
	panic("unknown kind " + kind)
}

// matrixPodmanArgs are the container's port options: -p for every kind but
// interface-bound, which only pasta's own spec can say.
func matrixPodmanArgs() []string {
	var args []string
	var pastaOpts []string
	for _, proto := range []string{"tcp", "udp"} {
		p := func(spec string) { args = append(args, "-p", spec+"/"+proto) }
		p(fmt.Sprintf("%d:%d", portSingle, portSingle))
		p(fmt.Sprintf("%d-%d:%d-%d", portRange, portRange+rangeLen-1, portRange, portRange+rangeLen-1))
		p(fmt.Sprintf("%d:%d", portTrans, portTrans+transDelta))
		p(fmt.Sprintf("%d-%d:%d-%d", portTransRange, portTransRange+rangeLen-1,
			portTransRange+transDelta, portTransRange+transDelta+rangeLen-1))
		p(fmt.Sprintf("%d:%d", portXfer, portXfer))
		flag := map[string]string{"tcp": "-t", "udp": "-u"}[proto]
		for _, fam := range []int{4, 6} {
			for _, lo := range []bool{false, true} {
				addr := pick(fam, sandbox.HostAddr4, sandbox.HostAddr6)
				ifname := sandbox.HostIf
				if lo {
					addr, ifname = posLoopback.dst(fam), loIf
				}
				a := boundPort(portAddr, fam, lo)
				host := addr
				if fam == 6 {
					host = "[" + addr + "]"
				}
				p(fmt.Sprintf("%s:%d:%d", host, a, a))
				i := boundPort(portIface, fam, lo)
				pastaOpts = append(pastaOpts, flag, fmt.Sprintf("%s%%%s/%d", addr, ifname, i))
			}
		}
	}
	return append(args, "--network", "pasta:"+strings.Join(pastaOpts, ","))
}

// matrixServerPorts are the container ports portcheck serves (for TCP and
// for UDP alike).
func matrixServerPorts() string {
	r := func(a, n int) string { return fmt.Sprintf("%d-%d", a, a+n-1) }
	return strings.Join([]string{
		strconv.Itoa(portSingle), r(portRange, rangeLen), strconv.Itoa(portTrans + transDelta),
		r(portTransRange+transDelta, rangeLen), r(portAddr+1, 4), r(portIface+1, 4), strconv.Itoa(portXfer),
	}, ",")
}

var portcheckBuilt struct {
	once sync.Once
	data []byte
	err  error
}

// portcheckBinary builds test/podman/portcheck statically, once per test
// process, and returns the binary.
func portcheckBinary(t *testing.T) []byte {
	t.Helper()
	portcheckBuilt.once.Do(func() {
		root, err := sandbox.ModuleRoot()
		if err != nil {
			portcheckBuilt.err = err
			return
		}
		dir, err := os.MkdirTemp("", "gopasta-portcheck-")
		if err != nil {
			portcheckBuilt.err = err
			return
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out := filepath.Join(dir, "portcheck")
		cmd := exec.CommandContext(ctx, sandbox.GoTool(), "build", "-o", out, "./test/podman/portcheck")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			portcheckBuilt.err = fmt.Errorf("go build portcheck: %v\n%s", err, b)
			return
		}
		portcheckBuilt.data, portcheckBuilt.err = os.ReadFile(out)
	})
	if portcheckBuilt.err != nil {
		t.Fatal(portcheckBuilt.err)
	}
	return portcheckBuilt.data
}

// checkReply is portcheck's answer, parsed.
type checkReply struct {
	peer string
	port int
	n    int
	sum  string
}

func parseReply(line string) (checkReply, error) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return checkReply{}, fmt.Errorf("bad answer %q", line)
	}
	port, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return checkReply{}, fmt.Errorf("bad answer %q", line)
	}
	return checkReply{peerIP(f[0]), port, n, f[3]}, nil
}

// exchange sends data to portcheck at addr from the netns at ns and returns
// its answer.
func exchange(ns, proto, addr string, data []byte) (checkReply, error) {
	if proto == "tcp" {
		return exchangeTCP(ns, addr, data)
	}
	var last error
	for range udpAttempts {
		r, err := exchangeUDP(ns, addr, data)
		if err == nil && r.n == len(data) {
			return r, nil
		}
		if err == nil {
			err = fmt.Errorf("answer says %d bytes arrived of %d", r.n, len(data))
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return r, err
		}
		last = err
	}
	return checkReply{}, fmt.Errorf("%d tries: %w", udpAttempts, last)
}

func exchangeTCP(ns, addr string, data []byte) (checkReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), exchangeLimit)
	defer cancel()
	c, err := dialIn(ctx, ns, "tcp", addr)
	if err != nil {
		return checkReply{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(exchangeLimit))
	if _, err := c.Write(data); err != nil {
		return checkReply{}, fmt.Errorf("write: %w", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return checkReply{}, fmt.Errorf("shutdown: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 4096))
	if err != nil {
		return checkReply{}, fmt.Errorf("read: %w", err)
	}
	return parseReply(string(b))
}

func exchangeUDP(ns, addr string, data []byte) (checkReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), exchangeLimit)
	defer cancel()
	c, err := dialIn(ctx, ns, "udp", addr)
	if err != nil {
		return checkReply{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for off := 0; off < len(data); off += udpChunk {
		if _, err := c.Write(data[off:min(off+udpChunk, len(data))]); err != nil {
			return checkReply{}, fmt.Errorf("write: %w", err)
		}
	}
	if _, err := c.Write(nil); err != nil { // the end
		return checkReply{}, fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return checkReply{}, fmt.Errorf("read: %w", err)
	}
	return parseReply(string(buf[:n]))
}

// checkDelivered sends data and checks portcheck's answer: every byte, the
// container port, the client address, in attempts(w) tries.
func checkDelivered(t *testing.T, w *world, ns, proto, dst string, pm portMap, peer string, data []byte) {
	t.Helper()
	addr := net.JoinHostPort(dst, strconv.Itoa(pm.host))
	tries := attempts(w)
	t0 := time.Now()
	var r checkReply
	var err error
	for i := 1; i <= tries; i++ {
		if r, err = exchange(ns, proto, addr, data); err == nil {
			break
		}
		if i < tries {
			t.Logf("NOTE: the C pasta failed %s %s with %d bytes (try %d of %d): %v", proto, addr, len(data), i, tries, err)
		}
	}
	if err != nil {
		t.Errorf("%s %s: %v", proto, addr, err)
		return
	}
	if r.n != len(data) || r.sum != sha256Hex(data) {
		t.Errorf("%s %s: the container got %d bytes (sha256 %s), sent %d (sha256 %s)", proto, addr, r.n, r.sum, len(data), sha256Hex(data))
	}
	if r.port != pm.ctr {
		t.Errorf("%s %s: arrived at container port %d, want %d", proto, addr, r.port, pm.ctr)
	}
	if r.peer != peer {
		t.Errorf("%s %s: the container saw the client as %s, want %s", proto, addr, r.peer, peer)
	}
	if len(data) > probeLen {
		t.Logf("%s %s: %d bytes in %v", proto, addr, len(data), time.Since(t0).Round(time.Millisecond))
	}
}

// checkRefused expects nothing to listen at the host port: a TCP connection
// is refused, a UDP datagram draws an ICMP port unreachable.
func checkPortRefused(t *testing.T, ns, proto, dst string, port int) {
	t.Helper()
	addr := net.JoinHostPort(dst, strconv.Itoa(port))
	r, err := exchange(ns, proto, addr, []byte("x"))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%s %s: %+v %v, want connection refused (the port is bound elsewhere)", proto, addr, r, err)
	}
}

// attempts is how many tries a transfer gets: one for gopasta, which must
// pass every case, and cPastaAttempts for the C pasta, whose failed tries
// are reported in the log as NOTEs. Both C pastas now and then fail in
// ways that are theirs: the one of 2025-05-03 ended a spliced TCP
// connection after the client's FIN without passing on portcheck's answer
// (a 10 MiB upload from the loopback; the client read EOF), and the one of
// 2026-10-02 stalled a 2 MiB download from a container to the remote over
// IPv6 for 20 s (its uploads from the guest stall on this machine, see
// bench/README.md). A case fails the C pasta only if every try does.
func attempts(w *world) int {
	if w.pasta == "" {
		return cPastaAttempts
	}
	return 1
}

func famName(fam int) string { return "IPv" + strconv.Itoa(fam) }

// TestForwardMatrix: every kind of port spec, TCP and UDP, IPv4 and IPv6,
// from every client position, and small and large transfers, against one
// container serving every port.
func TestForwardMatrix(t *testing.T) {
	bin := portcheckBinary(t)
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		s.file("pc/portcheck", bin, 0o755)
		ctr := s.ctr(matrixCtr)
		ports := matrixServerPorts()
		args := append([]string{"podman", "run", "-d", "--name", ctr, "-v", s.dir() + "/pc:" + portcheckDir + ":ro"}, matrixPodmanArgs()...)
		s.run("start", append(args, image, portcheckDir+"/portcheck", "-tcp", ports, "-udp", ports)...)
		// Serving, and the container's link-local address usable (the
		// tap path of IPv6 may use it).
		s.run("serving", "sh", "-c", fmt.Sprintf(`for i in $(seq %d); do
			podman logs %[2]s 2>/dev/null | grep -qx %[3]s && ! podman exec %[2]s ip -6 addr | grep -q tentative && exit 0
			sleep 0.1; done; exit 1`, ctrWaitReady, ctr, portcheckReady))
		s.step("up")
		s.run("logs", "podman", "logs", ctr)
		s.run("rm", "podman", "rm", "-f", "-t", "0", ctr)
		large := map[string]int{"tcp": largeXferTCP, "udp": udpLargeXfer(t)}
		o := w.exec(t, s, map[string]func(*testing.T, *outcome){"up": func(t *testing.T, o *outcome) {
			if _, ok := o.ok(t, "start"); !ok {
				return
			}
			if _, ok := o.ok(t, "serving"); !ok {
				return
			}
			for _, proto := range []string{"tcp", "udp"} {
				for _, fam := range []int{4, 6} {
					for _, kind := range fwdKinds {
						for _, pos := range matrixPositions {
							name := strings.Join([]string{strings.ToUpper(proto), famName(fam), kind, pos.name}, "/")
							t.Run(name, func(t *testing.T) {
								reach, refuse := kindPorts(kind, fam, pos)
								for _, pm := range reach {
									checkDelivered(t, w, pos.ns(w), proto, pos.dst(fam), pm, pos.peer(fam), randomBytes(t, probeLen))
								}
								for _, p := range refuse {
									checkPortRefused(t, pos.ns(w), proto, pos.dst(fam), p)
								}
							})
						}
					}
					for _, size := range []string{"small", "large"} {
						n := map[string]int{"small": smallXfer, "large": large[proto]}[size]
						for _, pos := range matrixPositions {
							name := strings.Join([]string{strings.ToUpper(proto), famName(fam), size + "-transfer", pos.name}, "/")
							t.Run(name, func(t *testing.T) {
								checkDelivered(t, w, pos.ns(w), proto, pos.dst(fam), portMap{portXfer, portXfer}, pos.peer(fam), randomBytes(t, n))
							})
						}
					}
				}
			}
		}})
		if t.Failed() {
			if r := o.cmd("logs"); r.Code >= 0 {
				t.Logf("container logs:\n%s%s", r.Stdout, r.Stderr)
			}
		}
		o.ok(t, "rm")
	})
}

// udpLargeXfer is the size of a large UDP transfer: a quarter of the
// default socket send buffer, as in Podman's tests.
func udpLargeXfer(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/wmem_default")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || n < 4*smallXfer {
		t.Fatalf("net.core.wmem_default %q", b)
	}
	return n / 4
}
