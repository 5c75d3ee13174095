package podman

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"gopasta/test/sandbox"
)

// Fixed names and numbers of the Podman environment (see env/build.sh and
// env/run.sh).
const (
	image        = "localhost/bb" // busybox + socat, built locally by build.sh
	rootlessUser = "tester"       // the rootless Podman user of each rootfs
	helperDir    = "/usr/local/libexec/podman-pasta"

	// namePrefix starts the names of the directories, containers and pods a
	// test makes, so that leftovers of killed runs can be found and removed.
	namePrefix = "gptpm-"

	// defaultMTU is pasta's default MTU for the namespace's interface.
	defaultMTU = 65520

	// Addresses that Podman gives pasta (--dns-forward, --map-guest-addr).
	dnsForward = "169.254.1.1"
	mapGuest   = "169.254.1.2"

	// Servers the test runs in the sandbox (in the test process, on sockets
	// created inside the sandbox's namespaces).
	remoteHTTPPort = 8080 // remote netns, all addresses
	hostHTTPPort   = 8090 // host netns, on HostAddr4 only
	remoteName     = "remote.test"

	// Bounds. run.sh serialises the calls on one rootfs (a lock), and its
	// wait for that lock counts in runTimeout.
	runTimeout     = 20 * time.Minute // one run.sh call, waiting for its lock included
	buildTimeout   = 15 * time.Minute // build.sh on a fresh machine (~1 min each)
	cmdTimeout     = 90               // seconds, each command of a script ("run")
	stepTimeout    = 240              // seconds a script waits for the test at a step
	firstContact   = 15 * time.Second // retrying the first request to a container
	requestTimeout = 5 * time.Second  // each later request (big files: 4 times that)
)

// Content served by the sandbox's servers and by the image.
const (
	remoteIndex    = "hello-from-remote\n"
	hostIndex      = "hello-from-host\n"
	containerIndex = "hello-from-container\n" // /www/index.html in localhost/bb
	bigSize        = 2 << 20                  // bytes of the random files
)

// podmanEnv is one root file system of env/build.sh, with its Podman.
type podmanEnv struct {
	label  string // subtest name: the Podman major version
	rootfs string // build.sh's name for it, or the path of a copy
}

// podmans are the Podmans every case runs with.
var podmans = []podmanEnv{
	{"podman5", "trixie"}, // Podman 5.4.2, netavark 1.14, passt 2025-05-03
	{"podman6", "sid"},    // Podman 6.1.1, netavark 2.0.0, passt 2026-10-02
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("GOPASTA_REQUIRE_E2E") == "1" {
		t.Fatalf(format+" (GOPASTA_REQUIRE_E2E=1)", args...)
	}
	t.Skipf(format, args...)
}

// envDir is the folder of build.sh and run.sh, in this repository.
func envDir() (string, error) {
	root, err := sandbox.ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "test", "podman", "env"), nil
}

var rootfsDirs sync.Map // name -> string, from build.sh --dir

// rootfsDir is the root file system called name by this repository's
// build.sh (its folder depends on build.sh's version, see there), or name
// itself if it is a path (run.sh takes either).
func rootfsDir(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if d, ok := rootfsDirs.Load(name); ok {
		return d.(string), nil
	}
	dir, err := envDir()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := sandbox.Run(newCmd(ctx, baseEnv(), "bash", filepath.Join(dir, "build.sh"), "--dir", name))
	if res.Err != nil {
		return "", fmt.Errorf("build.sh --dir %s: %v: %s", name, res.Err, res.Stderr)
	}
	d := filepath.Join(strings.TrimSpace(res.Stdout), "rootfs")
	rootfsDirs.Store(name, d)
	return d, nil
}

// newCmd makes an exec.Cmd in its own process group, killed as a group
// when ctx ends (the same convention as package sandbox).
func newCmd(ctx context.Context, env []string, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func baseEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/root"}
	if c := os.Getenv("GOPASTA_PODMAN_CACHE"); c != "" {
		env = append(env, "GOPASTA_PODMAN_CACHE="+c)
	}
	return env
}

// runSh returns a command running env/run.sh in the rootfs called name,
// with env added to its environment.
func runSh(ctx context.Context, name string, env []string, argv ...string) (*exec.Cmd, error) {
	dir, err := envDir()
	if err != nil {
		return nil, err
	}
	env = append(append(baseEnv(), "ROOTFS="+name), env...)
	return newCmd(ctx, env, append([]string{"bash", filepath.Join(dir, "run.sh")}, argv...)...), nil
}

var prepared struct {
	once sync.Once
	err  error
	log  string
}

// requirePodman makes sure both root file systems are there and current
// (build.sh builds what is missing or stale; it is quick otherwise), that
// tester has the image in each, and removes containers and pods left over
// by killed runs. Once per test process; skips (or fails with
// GOPASTA_REQUIRE_E2E=1) when that is impossible.
func requirePodman(t *testing.T) {
	t.Helper()
	sandbox.RequireRoot(t)
	sandbox.RequireTools(t, "bash", "nsenter", "unshare", "setpriv", "mountpoint", "flock", "timeout", "ip")
	prepared.once.Do(func() { prepared.log, prepared.err = prepare() })
	if prepared.err != nil {
		skipOrFail(t, "Podman environment not usable: %v\n%s", prepared.err, prepared.log)
	}
}

func prepare() (string, error) {
	dir, err := envDir()
	if err != nil {
		return "", err
	}
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	names := make([]string, len(podmans))
	for i, p := range podmans {
		names[i] = p.rootfs
	}
	res := sandbox.Run(newCmd(ctx, baseEnv(), append([]string{"bash", filepath.Join(dir, "build.sh")}, names...)...))
	fmt.Fprintf(&log, "$ build.sh %s\n%s\n", strings.Join(names, " "), res)
	if res.Err != nil {
		return log.String(), fmt.Errorf("build.sh failed (it needs root and Debian's mirror on a new machine)")
	}
	// The image, and leftovers of killed runs (names start with namePrefix).
	pre := `set -u
podman image exists ` + image + ` || { echo "no image ` + image + `"; exit 3; }
podman pod ps -q --filter name=^` + namePrefix + ` | xargs -r podman pod rm -f -t 0 >/dev/null
podman ps -aq --filter name=^` + namePrefix + ` | xargs -r podman rm -f -t 0 >/dev/null
exit 0`
	for _, name := range names {
		pctx, pcancel := context.WithTimeout(context.Background(), runTimeout)
		cmd, err := runSh(pctx, name, []string{"AS_USER=" + rootlessUser}, "bash", "-c", pre)
		if err != nil {
			pcancel()
			return log.String(), err
		}
		res := sandbox.Run(cmd)
		pcancel()
		fmt.Fprintf(&log, "$ run.sh (preflight, %s)\n%s\n", name, res)
		if res.ExitCode != 0 {
			return log.String(), fmt.Errorf("preflight in the %s rootfs failed", name)
		}
		// Old per-run folders of killed runs.
		rdir, err := rootfsDir(name)
		if err != nil {
			return log.String(), err
		}
		old, _ := filepath.Glob(filepath.Join(rdir, "tmp", namePrefix+"*"))
		for _, d := range old {
			if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(d)
			}
		}
	}
	return log.String(), nil
}

// ---------------------------------------------------------------------------
// Variants: which Podman, and which pasta it runs.

const (
	goPasta = "gopasta" // our binary, given to run.sh as PASTA
	cPasta  = "cpasta"  // the rootfs's own /usr/bin/pasta
)

// binaryChecks remembers, per rootfs, whether our binary runs there.
var binaryChecks sync.Map // rootfs name -> *binaryCheck

type binaryCheck struct {
	once sync.Once
	out  string
	err  error
}

// ourBinary returns the gopasta binary for the gopasta variant, after
// checking once per rootfs that it runs there (a cgo binary needs the
// rootfs's glibc and libseccomp).
func ourBinary(t *testing.T, rootfs string) string {
	t.Helper()
	if sandbox.BinaryFromEnv() && sandbox.Reference() {
		t.Skip("GOPASTA_BIN names a reference binary; the cpasta variant covers the C pasta (set GOPASTA_REFERENCE=0 to use it here)")
	}
	bin := sandbox.Binary(t)
	v, _ := binaryChecks.LoadOrStore(rootfs, &binaryCheck{})
	c := v.(*binaryCheck)
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		cmd, err := runSh(ctx, rootfs, []string{"PASTA=" + bin}, helperDir+"/pasta", "--version")
		if err != nil {
			c.err = err
			return
		}
		res := sandbox.Run(cmd)
		c.out = res.String()
		if res.Err != nil {
			c.err = fmt.Errorf("%s does not run inside the %s rootfs", bin, rootfs)
		}
	})
	if c.err != nil {
		t.Fatalf("%v:\n%s", c.err, c.out)
	}
	return bin
}

// world is one variant's sandbox: the host and remote namespaces, and the
// servers the containers talk to.
type world struct {
	podman  podmanEnv
	variant string
	pasta   string // PASTA for run.sh; "" means the rootfs's C pasta
	pesto   string // PESTO for run.sh; "" means the rootfs's C pesto
	sb      *sandbox.Sandbox

	// rootInUserns runs the scripts as root of a user namespace (run.sh's
	// USERNS=1) instead of the rootless user.
	rootInUserns bool

	remoteHTTP *httpServer // remote netns, [::]:8080
	hostHTTP   *httpServer // host netns, 192.0.2.1:8090
	dns        *dnsServer  // host netns, 127.0.0.1:53 (the rootfs resolv.conf's server)

	remoteBig    []byte // /big.bin on the remote server
	remoteBigSum string
}

// eachVariant runs fn as parallel subtests PODMAN/PASTA: podman5 and
// podman6, each with gopasta and cpasta, each with its own sandbox and
// servers. run.sh serialises the calls on one rootfs; the two rootfs run
// side by side.
func eachVariant(t *testing.T, fn func(t *testing.T, w *world)) {
	t.Parallel()
	for _, p := range podmans {
		t.Run(p.label, func(t *testing.T) {
			t.Parallel()
			for _, v := range []string{goPasta, cPasta} {
				t.Run(v, func(t *testing.T) {
					t.Parallel()
					fn(t, newWorld(t, p, v))
				})
			}
		})
	}
}

func newWorld(t *testing.T, p podmanEnv, variant string) *world {
	t.Helper()
	requirePodman(t)
	w := &world{podman: p, variant: variant}
	if variant == goPasta {
		w.pasta = ourBinary(t, p.rootfs)
	}
	w.sb = sandbox.New(t)

	w.remoteBig = randomBytes(t, bigSize)
	w.remoteBigSum = sha256Hex(w.remoteBig)
	w.remoteHTTP = startHTTP(t, w.sb.RemotePath(), fmt.Sprintf(":%d", remoteHTTPPort), map[string][]byte{
		"/index.html": []byte(remoteIndex),
		"/big.bin":    w.remoteBig,
	})
	w.hostHTTP = startHTTP(t, w.sb.HostPath(), net.JoinHostPort(sandbox.HostAddr4, strconv.Itoa(hostHTTPPort)),
		map[string][]byte{"/index.html": []byte(hostIndex)})
	w.dns = startDNS(t, w.sb.HostPath(), "127.0.0.1:53")
	return w
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ---------------------------------------------------------------------------
// Sockets in the sandbox's namespaces, from this process.

// inNetns calls fn on an OS thread switched to the network namespace at
// path, so that the sockets fn creates belong to that namespace (they can
// be used from any thread afterwards). If the thread cannot be switched
// back, it stays locked and dies with its goroutine.
func inNetns(path string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer self.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns %s: %v", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns back from %s: %v", path, err)
			return // still locked: the thread exits with this goroutine
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// dialIn connects from inside the netns at path.
func dialIn(ctx context.Context, path, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(path, func() error {
		var err error
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// httpGet fetches url with a client in the netns at path, without proxies
// or keep-alive. Any status other than 200 is an error.
func httpGet(path, url string, timeout time.Duration) ([]byte, error) {
	tr := &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, path, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: timeout}
	resp, err := cl.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return body, fmt.Errorf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// udpExchange sends msg from a UDP socket in the netns at path and returns
// the first datagram that comes back within timeout.
func udpExchange(path, addr, msg string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := dialIn(ctx, path, "udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// retry calls fn until it succeeds or d has passed (at least once, at most
// every 200 ms), and returns its last error.
func retry(d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// httpServer serves fixed files, and /peer: the client's address as the
// server sees it. It records the address of every client.
type httpServer struct {
	srv   *http.Server
	mu    sync.Mutex
	peers []string
}

func startHTTP(t *testing.T, nsPath, addr string, files map[string][]byte) *httpServer {
	t.Helper()
	var ln net.Listener
	if err := inNetns(nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, nsPath, err)
	}
	s := &httpServer{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		peer := peerIP(r.RemoteAddr)
		s.mu.Lock()
		s.peers = append(s.peers, peer)
		s.mu.Unlock()
		if r.URL.Path == "/peer" {
			fmt.Fprintln(rw, peer)
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/octet-stream")
		_, _ = rw.Write(b)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *httpServer) Peers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.peers...)
}

// peerIP normalises a peer address as printed by Go ("ip:port"), busybox
// httpd ("[::ffff:a.b.c.d]") or socat ("[2001:0db8:...]", "a.b.c.d"):
// brackets, port and IPv4 mapping are removed.
func peerIP(s string) string {
	s = strings.TrimSpace(s)
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return s
}

// dnsServer answers A and AAAA for remote.test (192.0.2.2, 2001:db8::2) and
// NXDOMAIN for every other name, over UDP. It records every query.
type dnsServer struct {
	pc      net.PacketConn
	mu      sync.Mutex
	queries []dnsQuery
}

type dnsQuery struct {
	Name, Type, From string
}

func startDNS(t *testing.T, nsPath, addr string) *dnsServer {
	t.Helper()
	s := &dnsServer{}
	if err := inNetns(nsPath, func() error {
		var err error
		s.pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("DNS server on %s in %s: %v", addr, nsPath, err)
	}
	go s.serve()
	t.Cleanup(func() { s.pc.Close() })
	return s
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		if resp, q, ok := dnsAnswer(buf[:n]); ok {
			s.mu.Lock()
			s.queries = append(s.queries, dnsQuery{q.Name.String(), strings.TrimPrefix(q.Type.String(), "Type"), peerIP(from.String())})
			s.mu.Unlock()
			_, _ = s.pc.WriteTo(resp, from)
		}
	}
}

func (s *dnsServer) Queries() []dnsQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]dnsQuery(nil), s.queries...)
}

func dnsAnswer(req []byte) ([]byte, dnsmessage.Question, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response {
		return nil, dnsmessage.Question{}, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, dnsmessage.Question{}, false
	}
	known := strings.EqualFold(q.Name.String(), remoteName+".")
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, q, false
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
	if known && q.Type == dnsmessage.TypeA {
		_ = b.AResource(rr, dnsmessage.AResource{A: netip.MustParseAddr(sandbox.RemoteAddr4).As4()})
	}
	if known && q.Type == dnsmessage.TypeAAAA {
		_ = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: netip.MustParseAddr(sandbox.RemoteAddr6).As16()})
	}
	resp, err := b.Finish()
	return resp, q, err == nil
}

// ---------------------------------------------------------------------------
// Scripts run by run.sh as tester, inside the rootfs, in the host netns.

// script is a bash script run by run.sh. Its commands write their results
// into a folder shared with the test (the rootfs's /tmp/NAME), and at
// steps it waits for the test, which meanwhile talks to the containers
// from the host and remote namespaces.
type script struct {
	name  string // namePrefix + random: the folder, and the prefix of container and pod names
	body  strings.Builder
	files map[string]scriptFile // relative to the folder
}

type scriptFile struct {
	data []byte
	mode os.FileMode
}

func newScript() *script {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &script{name: namePrefix + hex.EncodeToString(b[:]), files: map[string]scriptFile{}}
}

// file adds a file to the shared folder (rel is relative to it): the
// script and its containers (through -v) see it under dir().
func (s *script) file(rel string, data []byte, mode os.FileMode) {
	s.files[rel] = scriptFile{data, mode}
}

// ctr is the name of a container (or pod) of this script.
func (s *script) ctr(suffix string) string { return s.name + "-" + suffix }

// dir is the shared folder as seen inside the rootfs.
func (s *script) dir() string { return "/tmp/" + s.name }

// sh appends a raw bash line.
func (s *script) sh(line string) { s.body.WriteString(line + "\n") }

// run appends a command whose stdout, stderr and exit status are kept
// under name (see outcome.cmd); it is bounded by cmdTimeout.
func (s *script) run(name string, argv ...string) {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = sandbox.ShellQuote(a)
	}
	s.sh("run " + name + " " + strings.Join(q, " "))
}

// step makes the script wait until the test has run the function given for
// name to exec.
func (s *script) step(name string) { s.sh("step " + name) }

// gone polls, for 1 s from now, until no pasta process is left, and keeps
// how long that took and what was left under name (see outcome.gone).
func (s *script) gone(name string) { s.sh("gone " + name) }

// pastas keeps the list of live pasta processes under name (see outcome.pastas).
func (s *script) pastas(name string) { s.sh("pastas > $D/" + name + ".pastas") }

func (s *script) text() string {
	return `#!/bin/bash
# made by gopasta's test/podman; run by run.sh as ` + rootlessUser + ` inside the rootfs
set -u
D=` + s.dir() + `
N=` + s.name + `
run() { local n=$1; shift; timeout -k 5 ` + strconv.Itoa(cmdTimeout) + ` "$@" >"$D/$n.out" 2>"$D/$n.err"; echo $? >"$D/$n.rc"; }
step() {
	touch "$D/.reached.$1"; local i
	for ((i = 0; i < ` + strconv.Itoa(stepTimeout*20) + `; i++)); do
		[ -e "$D/.go.$1" ] && return 0; [ -e "$D/.abort" ] && exit 97; sleep 0.05
	done
	echo "step $1: no answer from the test" >&2; exit 98
}
# Live pasta processes, zombies excluded, as "PID COMM EXE ARGV...": the
# name or argv[0] says pasta, or the command line has --config-net (Podman
# always passes it; a binary re-executed through /proc/self/exe is named
# "exe"). EXE is "?" when it cannot be read (not dumpable). No fork per
# process but for matches, so that a scan is quick.
pastas() {
	local p c s e a
	for p in /proc/[0-9]*; do
		read -r c <"$p/comm" 2>/dev/null || continue
		mapfile -d '' -t a <"$p/cmdline" 2>/dev/null || continue
		[ ${#a[@]} -gt 0 ] || continue
		case "$c ${a[0]}" in *pasta*) ;; *) case " ${a[*]} " in *" --config-net "*) ;; *) continue ;; esac ;; esac
		read -r s <"$p/stat" 2>/dev/null || continue
		s=${s##*) }; s=${s%% *}; [ "$s" = Z ] && continue
		e=$(readlink "$p/exe" 2>/dev/null) || e="?"
		echo "${p#/proc/} $c $e ${a[*]}"
	done
}
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
gone() {
	local t0 t left; t0=$(now_us)
	while :; do
		left=$(pastas); t=$(now_us)
		[ -z "$left" ] && break; [ $((t - t0)) -ge 1000000 ] && break; sleep 0.02
	done
	echo $(((t - t0) / 1000)) >"$D/$1.ms"; printf '%s' "$left" >"$D/$1.pastas"
}
cleanup() {
	timeout 60 podman pod ps -q --filter "name=^$N" 2>/dev/null | xargs -r timeout 60 podman pod rm -f -t 0 >/dev/null 2>&1
	timeout 60 podman ps -aq --filter "name=^$N" 2>/dev/null | xargs -r timeout 60 podman rm -f -t 0 >/dev/null 2>&1
}
trap cleanup EXIT
# ---- the case
` + s.body.String()
}

// outcome is what a script left behind.
type outcome struct {
	dir string // host path of the shared folder
	res sandbox.Result
}

// cmdResult is one "run" of a script.
type cmdResult struct {
	Name           string
	Stdout, Stderr string
	Code           int // -1: the command did not run
}

func (r cmdResult) String() string {
	return fmt.Sprintf("[%s] exit %d\n[stdout]\n%s[stderr]\n%s", r.Name, r.Code, r.Stdout, r.Stderr)
}

func (o *outcome) read(name string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(o.dir, name))
	return string(b), err == nil
}

// cmd returns the result of the script's "run NAME ...".
func (o *outcome) cmd(name string) cmdResult {
	r := cmdResult{Name: name, Code: -1}
	rc, ok := o.read(name + ".rc")
	if !ok {
		return r
	}
	if n, err := strconv.Atoi(strings.TrimSpace(rc)); err == nil {
		r.Code = n
	}
	r.Stdout, _ = o.read(name + ".out")
	r.Stderr, _ = o.read(name + ".err")
	return r
}

// ok returns the result of "run NAME", failing the test (not fatally)
// unless it exited 0.
func (o *outcome) ok(t *testing.T, name string) (cmdResult, bool) {
	t.Helper()
	r := o.cmd(name)
	if r.Code != 0 {
		t.Errorf("%s failed:\n%s", name, r)
		return r, false
	}
	return r, true
}

// pastas returns the process lines kept by script.pastas or script.gone.
func (o *outcome) pastas(name string) []string {
	s, _ := o.read(name + ".pastas")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// checkGone checks a script.gone: no pasta left within 1 s.
func (o *outcome) checkGone(t *testing.T, name string) {
	t.Helper()
	ms, ok := o.read(name + ".ms")
	if !ok {
		t.Errorf("%s: the script did not get there", name)
		return
	}
	if left := o.pastas(name); len(left) > 0 {
		t.Errorf("%s: pasta still running after %s ms:\n%s", name, strings.TrimSpace(ms), strings.Join(left, "\n"))
		return
	}
	t.Logf("%s: no pasta left after %s ms", name, strings.TrimSpace(ms))
}

// exec runs the script with run.sh (as tester, in the host netns, with this
// world's pasta), calling steps[NAME] when the script reaches "step NAME".
// The run.sh call holds the rootfs lock. A failure of the script itself
// (not of its "run" commands, which the caller checks) fails the test.
func (w *world) exec(t *testing.T, s *script, steps map[string]func(t *testing.T, o *outcome)) *outcome {
	t.Helper()
	rdir, err := rootfsDir(w.podman.rootfs)
	if err != nil {
		t.Fatal(err)
	}
	hostDir := filepath.Join(rdir, "tmp", s.name)
	if err := os.Mkdir(hostDir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hostDir) })
	if err := os.Chmod(hostDir, 0o777); err != nil { // tester writes here
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "script.sh"), []byte(s.text()), 0o644); err != nil {
		t.Fatal(err)
	}
	for rel, f := range s.files {
		p := filepath.Join(hostDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // umask
			t.Fatal(err)
		}
	}
	o := &outcome{dir: hostDir}

	pastaLog := filepath.Join(t.TempDir(), "pasta-argv.log")
	t.Cleanup(func() {
		if t.Failed() {
			logPastaCalls(t, pastaLog)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	env := []string{"AS_USER=" + rootlessUser, "NETNS=" + w.sb.HostNS, "PASTA_LOG=" + pastaLog}
	if w.rootInUserns {
		env[0] = "AS_USER=root"
		env = append(env, "USERNS=1")
	}
	if w.pasta != "" {
		env = append(env, "PASTA="+w.pasta)
	}
	if w.pesto != "" {
		env = append(env, "PESTO="+w.pesto)
	}
	cmd, err := runSh(ctx, w.podman.rootfs, env, "bash", s.dir()+"/script.sh")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := w.sb.Start(t, cmd)
	// However this function ends (a step may call t.FailNow), tell the
	// script to stop and wait for run.sh, so that the script's cleanup
	// (podman rm) runs before the lock is released.
	finished := false
	defer func() {
		if !finished {
			_ = os.WriteFile(filepath.Join(hostDir, ".abort"), nil, 0o644)
			if exited, _ := p.Wait(60 * time.Second); !exited {
				p.Kill()
			}
		}
	}()

	done := map[string]bool{}
	for {
		for _, name := range readySteps(hostDir) {
			if done[name] {
				continue
			}
			done[name] = true
			fn, ok := steps[name]
			if !ok {
				t.Errorf("script reached unknown step %q", name)
			} else {
				t0 := time.Now()
				fn(t, o)
				t.Logf("step %s took %v", name, time.Since(t0).Round(time.Millisecond))
			}
			if err := os.WriteFile(filepath.Join(hostDir, ".go."+name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-p.Done():
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	finished = true
	_, werr := p.Wait(10 * time.Second)
	o.res = sandbox.Result{Stdout: p.Stdout(), Stderr: p.Stderr(), Err: werr, Duration: time.Since(start)}
	o.res.ExitCode = p.Cmd.ProcessState.ExitCode()
	t.Logf("run.sh took %v", o.res.Duration.Round(time.Millisecond))
	if o.res.ExitCode != 0 {
		t.Errorf("run.sh failed:\n%s\n[script]\n%s", o.res, s.text())
	}
	for name := range steps {
		if !done[name] {
			t.Errorf("the script never reached step %q", name)
		}
	}
	return o
}

// readySteps lists the steps the script has reached.
func readySteps(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, ".reached.*"))
	var names []string
	for _, f := range m {
		names = append(names, strings.TrimPrefix(filepath.Base(f), ".reached."))
	}
	sort.Strings(names)
	return names
}

// logPastaCalls logs each pasta command line that Podman ran (PASTA_LOG).
func logPastaCalls(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("no pasta call was recorded (%v)", err)
		return
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "===") || strings.HasPrefix(l, "argv:") || strings.HasPrefix(l, "parent:") {
			keep = append(keep, l)
		}
	}
	t.Logf("pasta calls recorded by run.sh (PASTA_LOG):\n%s", strings.Join(keep, "\n"))
}

// ---------------------------------------------------------------------------
// Commands run inside a container: a busybox sh script made of sections,
// each with its output and exit status.

type sec struct{ name, cmd string }

// sections returns a busybox sh script that runs each command (stderr
// merged into stdout) between markers, see parseSections.
func sections(secs ...sec) string {
	var b strings.Builder
	for _, s := range secs {
		fmt.Fprintf(&b, "echo '@@<%s>'; { %s ; } 2>&1; printf '\\n@@</%s> %%d\\n' $?\n", s.name, s.cmd, s.name)
	}
	return b.String()
}

type secResult struct {
	Out string
	RC  int // -1 when the section is missing
}

// parseSections splits the output of a sections script: the exact bytes
// each command wrote, and its exit status.
func parseSections(out string) map[string]secResult {
	m := map[string]secResult{}
	for {
		i := strings.Index(out, "@@<")
		if i < 0 {
			return m
		}
		j := strings.Index(out[i:], ">\n")
		if j < 0 {
			return m
		}
		name := out[i+3 : i+j]
		rest := out[i+j+2:]
		end := "\n@@</" + name + "> "
		k := strings.Index(rest, end)
		if k < 0 {
			m[name] = secResult{Out: rest, RC: -1}
			return m
		}
		r := secResult{Out: rest[:k], RC: -1}
		tail := rest[k+len(end):]
		nl := strings.IndexByte(tail, '\n')
		if nl < 0 {
			nl = len(tail)
		}
		if n, err := strconv.Atoi(tail[:nl]); err == nil {
			r.RC = n
		}
		m[name] = r
		out = tail[nl:]
	}
}

// section returns one section of a container's output, failing the test
// (not fatally) when it is missing or exited non-zero.
func section(t *testing.T, m map[string]secResult, name string) (string, bool) {
	t.Helper()
	r, ok := m[name]
	if !ok {
		t.Errorf("section %s: missing from the container's output", name)
		return "", false
	}
	if r.RC != 0 {
		t.Errorf("section %s: exit status %d:\n%s", name, r.RC, r.Out)
		return r.Out, false
	}
	return r.Out, true
}
