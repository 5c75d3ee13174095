// Package sandbox builds throw-away network namespaces for end-to-end tests of
// the pasta binary, and runs commands inside them as root or as an
// unprivileged test user.
//
// A Sandbox is two named network namespaces joined by a veth pair:
//
//	 "host" netns (pasta runs here)              "remote" netns
//	+--------------------------------+          +-----------------------------+
//	| gptveth0  192.0.2.1/24         |  veth    | gptpeer0  192.0.2.2/24      |
//	|           2001:db8::1/64       |<-------->|           192.0.2.254/24    |
//	| default via 192.0.2.254        |          |           2001:db8::2/64    |
//	| default via fe80::fe (IPv6)    |          |           fe80::fe/64       |
//	+--------------------------------+          +-----------------------------+
//
// The host namespace plays the part of the machine pasta runs on: its
// interface, addresses and routes are what pasta copies into the namespace it
// serves. The remote namespace plays the part of the rest of the network.
// Nothing in a sandbox can reach any address outside these two namespaces.
//
// All commands run with a context (hence a timeout), and everything a sandbox
// started or created is killed or deleted by a t.Cleanup.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Addresses and names inside every sandbox.
const (
	HostIf   = "gptveth0" // host side of the veth pair: pasta's "upstream" interface
	RemoteIf = "gptpeer0" // remote side of the veth pair

	HostAddr4   = "192.0.2.1"   // host's IPv4 address (/24)
	RemoteAddr4 = "192.0.2.2"   // remote's first IPv4 address (/24)
	Gateway4    = "192.0.2.254" // host's IPv4 default gateway, an address of remote
	Prefix4     = 24

	HostAddr6   = "2001:db8::1" // host's IPv6 address (/64)
	RemoteAddr6 = "2001:db8::2" // remote's IPv6 address (/64)
	Gateway6    = "fe80::fe"    // host's IPv6 default gateway: remote's link-local address
	Prefix6     = 64

	DefaultMTU = 1500 // MTU of the veth pair unless WithMTU is given

	// NetnsPrefix starts the name of every namespace a sandbox creates.
	NetnsPrefix = "gpt-"

	// DefaultTimeout bounds the helper commands that take no context.
	DefaultTimeout = 30 * time.Second
)

// As says who runs a command.
type As int

const (
	Root         As = iota // root, all capabilities, in the init user namespace
	Unprivileged           // the test user (UserName), no capabilities
)

func (a As) String() string {
	if a == Root {
		return "root"
	}
	return "user"
}

// Option changes how New builds a sandbox.
type Option func(*options)

type options struct {
	mtu int
}

// WithMTU sets the MTU of both ends of the veth pair (default 1500).
func WithMTU(mtu int) Option { return func(o *options) { o.mtu = mtu } }

// Sandbox is one pair of network namespaces with the processes and extra
// namespaces started through it.
type Sandbox struct {
	t testing.TB

	HostNS   string // name of the host netns, in /run/netns
	RemoteNS string // name of the remote netns, in /run/netns
	MTU      int    // MTU of the veth pair

	UID, GID int    // the unprivileged test user
	userDir  string // directory owned by the test user, also its HOME
	rootDir  string // directory owned by root, mode 0700

	mu      sync.Mutex
	procs   []*Proc
	pids    []trackedPID
	extraNS []string
	nsIDs   map[string]nsID // netns name -> identity, for the process sweep
}

type nsID struct{ dev, ino uint64 }

type trackedPID struct {
	pid   int
	start string // start time from /proc/PID/stat, to survive PID reuse
}

var nameSeq atomic.Uint32

// New creates a sandbox and registers its cleanup with t. It skips (or fails,
// with GOPASTA_REQUIRE_E2E=1) when not root or when a needed tool is missing.
func New(t testing.TB, opts ...Option) *Sandbox {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip", "nsenter", "setpriv", "unshare", "ping", "sysctl")

	o := options{mtu: DefaultMTU}
	for _, f := range opts {
		f(&o)
	}

	if err := fixTun(); err != nil {
		t.Fatalf("sandbox: /dev/net/tun: %v", err)
	}
	uid, gid := User(t)

	s := &Sandbox{t: t, MTU: o.mtu, UID: uid, GID: gid, nsIDs: map[string]nsID{}}

	// Directories first, so that their removal (cleanups run last-in,
	// first-out) comes after the process sweep in s.cleanup.
	s.userDir = s.mkdir(t, "gpt-user-", uid, gid)
	s.rootDir = s.mkdir(t, "gpt-root-", 0, 0)
	t.Cleanup(s.cleanup)

	s.HostNS = s.addNetns(t, "h")
	s.RemoteNS = s.addNetns(t, "r")
	s.setup(t)
	return s
}

// uniqueName returns a fresh namespace name: prefix, PID, sequence number and
// random bits, so that parallel test processes and stale leftovers of earlier
// runs never collide.
func uniqueName(role string) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%d-%d%s-%s", NetnsPrefix, os.Getpid(), nameSeq.Add(1), hex.EncodeToString(b[:]), role)
}

// addNetns creates a fresh named netns and records it for cleanup.
func (s *Sandbox) addNetns(t testing.TB, role string) string {
	t.Helper()
	var lastErr error
	for range 5 {
		name := uniqueName(role)
		if _, err := os.Stat(NetnsPath(name)); err == nil {
			continue
		}
		res := runRoot("ip", "netns", "add", name)
		if res.Err != nil {
			lastErr = fmt.Errorf("ip netns add %s: %v: %s", name, res.Err, res.Stderr)
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(NetnsPath(name), &st); err != nil {
			lastErr = err
			continue
		}
		s.mu.Lock()
		s.extraNS = append(s.extraNS, name)
		s.nsIDs[name] = nsID{uint64(st.Dev), st.Ino}
		s.mu.Unlock()
		return name
	}
	t.Fatalf("sandbox: cannot create a network namespace: %v", lastErr)
	return ""
}

// NewNetns creates one more empty named network namespace (only lo, down),
// deleted at cleanup unless the test deletes it first. It returns its name;
// NetnsPath gives its path.
func (s *Sandbox) NewNetns(t testing.TB) string {
	t.Helper()
	return s.addNetns(t, "x")
}

// NetnsPath is the path of a named network namespace.
func NetnsPath(name string) string { return "/run/netns/" + name }

// HostPath is the path of the host netns.
func (s *Sandbox) HostPath() string { return NetnsPath(s.HostNS) }

// RemotePath is the path of the remote netns.
func (s *Sandbox) RemotePath() string { return NetnsPath(s.RemoteNS) }

func (s *Sandbox) mkdir(t testing.TB, pattern string, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	mode := os.FileMode(0o700)
	if uid != 0 {
		mode = 0o755
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	return dir
}

// RootDir is a directory owned by root (mode 0700), removed at cleanup after
// the sandbox's processes are killed. Put files that pasta writes in root
// mode here: a root pasta that dropped CAP_DAC_OVERRIDE cannot write into
// UserDir.
func (s *Sandbox) RootDir() string { return s.rootDir }

// UserDir is a directory owned by the test user (mode 0755), removed at
// cleanup. It is also the test user's HOME for commands run through the
// sandbox. Put files that pasta writes in user mode (pcap, PID file) here.
func (s *Sandbox) UserDir() string { return s.userDir }

func (s *Sandbox) setup(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Sysctls first: accept_dad=0 applies to devices created afterwards, so
	// the host's own link-local address is usable at once. ping_group_range
	// lets the unprivileged user (and pasta running as that user) open ICMP
	// echo sockets in the host netns; it is set only in the sandbox's netns.
	for _, ns := range []string{s.HostNS, s.RemoteNS} {
		args := []string{"sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0",
			"net.ipv6.conf.default.accept_dad=0"}
		if ns == s.HostNS {
			args = append(args, "net.ipv4.ping_group_range=0 2147483647")
		}
		s.MustRun(t, s.InNetns(ctx, ns, Root, args...))
	}

	mtu := strconv.Itoa(s.MTU)
	s.MustRun(t, rootCmd(ctx, "ip", "link", "add", HostIf, "netns", s.HostNS, "mtu", mtu,
		"type", "veth", "peer", "name", RemoteIf, "netns", s.RemoteNS, "mtu", mtu))

	remote := strings.Join([]string{
		"link set lo up",
		"link set " + RemoteIf + " addrgenmode none",
		"address add " + Gateway6 + "/64 dev " + RemoteIf + " nodad",
		"address add " + RemoteAddr4 + "/24 dev " + RemoteIf,
		"address add " + Gateway4 + "/24 dev " + RemoteIf,
		"address add " + RemoteAddr6 + "/64 dev " + RemoteIf + " nodad",
		"link set " + RemoteIf + " up",
		"",
	}, "\n")
	cmd := rootCmd(ctx, "ip", "-n", s.RemoteNS, "-batch", "-")
	cmd.Stdin = strings.NewReader(remote)
	s.MustRun(t, cmd)

	host := strings.Join([]string{
		"link set lo up",
		"address add " + HostAddr4 + "/24 dev " + HostIf,
		"address add " + HostAddr6 + "/64 dev " + HostIf + " nodad",
		"link set " + HostIf + " up",
		"route add default via " + Gateway4 + " dev " + HostIf,
		"route add default via " + Gateway6 + " dev " + HostIf,
		"",
	}, "\n")
	cmd = rootCmd(ctx, "ip", "-n", s.HostNS, "-batch", "-")
	cmd.Stdin = strings.NewReader(host)
	s.MustRun(t, cmd)

	// Wait until no IPv6 address is tentative on either side (bounded).
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range []string{s.HostNS, s.RemoteNS} {
		for {
			out := s.MustRun(t, rootCmd(ctx, "ip", "-n", ns, "-j", "-6", "addr", "show"))
			links, err := ParseLinks(out)
			if err != nil {
				t.Fatalf("sandbox: %v", err)
			}
			if !anyTentative(links) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandbox: IPv6 addresses still tentative in %s after 10s:\n%s", ns, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Sanity check: the host reaches the remote over both families. This
	// also fills the neighbour caches.
	for _, dst := range []string{RemoteAddr4, RemoteAddr6} {
		out := s.MustRun(t, s.Host(ctx, Root, "ping", "-n", "-c", "1", "-W", "2", dst))
		if !strings.Contains(out, "1 received") {
			t.Fatalf("sandbox: host cannot ping %s:\n%s", dst, out)
		}
	}
}

func anyTentative(links []Link) bool {
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Tentative {
				return true
			}
		}
	}
	return false
}

// fixTun makes /dev/net/tun usable by the unprivileged user (idempotent).
func fixTun() error {
	fi, err := os.Stat("/dev/net/tun")
	if err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o666 {
		return os.Chmod("/dev/net/tun", 0o666)
	}
	return nil
}

// Host returns a command that runs argv in the host netns as the given user.
func (s *Sandbox) Host(ctx context.Context, as As, argv ...string) *exec.Cmd {
	return s.InNetns(ctx, s.HostNS, as, argv...)
}

// Remote returns a command that runs argv in the remote netns.
func (s *Sandbox) Remote(ctx context.Context, as As, argv ...string) *exec.Cmd {
	return s.InNetns(ctx, s.RemoteNS, as, argv...)
}

// InNetns returns a command that runs argv in the network namespace ns (a
// name in /run/netns or an absolute path), through nsenter. Only the network
// namespace changes: mounts, PIDs and so on are the test's own.
func (s *Sandbox) InNetns(ctx context.Context, ns string, as As, argv ...string) *exec.Cmd {
	path := ns
	if !strings.HasPrefix(ns, "/") {
		path = NetnsPath(ns)
	}
	pre := []string{"nsenter", "--net=" + path}
	if as == Unprivileged {
		pre = append(pre, s.setprivArgs()...)
	}
	return s.command(ctx, as, append(pre, argv...))
}

// InPID returns a command that runs argv in the network namespace of process
// pid. As Root it joins only the netns (root has every capability over it).
// As Unprivileged it also joins pid's user namespace, keeping its
// credentials (nsenter --user --preserve-credentials), which works when the
// test user owns that user namespace.
func (s *Sandbox) InPID(ctx context.Context, pid int, as As, argv ...string) *exec.Cmd {
	target := strconv.Itoa(pid)
	var pre []string
	if as == Unprivileged {
		pre = append([]string{"setpriv"}, s.setprivArgs()[1:]...)
		pre = append(pre, "nsenter", "--target", target, "--user", "--net", "--preserve-credentials")
	} else {
		pre = []string{"nsenter", "--target", target, "--net"}
	}
	return s.command(ctx, as, append(pre, argv...))
}

// AsUser returns argv prefixed with what runs it as the test user without
// capabilities (setpriv), for commands that start as root and change user
// later, such as a script that mounts first.
func (s *Sandbox) AsUser(argv ...string) []string {
	return append(s.setprivArgs(), argv...)
}

func (s *Sandbox) setprivArgs() []string {
	return []string{"setpriv",
		"--reuid=" + strconv.Itoa(s.UID), "--regid=" + strconv.Itoa(s.GID),
		"--clear-groups", "--inh-caps=-all", "--"}
}

// Env returns the whole environment that commands run as `as` get: a fixed
// PATH, HOME (UserDir for the test user, /root for root), USER, LOGNAME,
// SHELL=/bin/sh and LC_ALL=C. Nothing of the test process's environment
// leaks in.
func (s *Sandbox) Env(as As) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SHELL=/bin/sh",
		"LC_ALL=C",
	}
	if as == Unprivileged {
		env = append(env, "HOME="+s.userDir, "USER="+UserName, "LOGNAME="+UserName)
	} else {
		env = append(env, "HOME=/root", "USER=root", "LOGNAME=root")
	}
	return env
}

func (s *Sandbox) command(ctx context.Context, as As, argv []string) *exec.Cmd {
	cmd := newCmd(ctx, argv)
	cmd.Env = s.Env(as)
	return cmd
}

// rootCmd is a root command in the test's own namespaces, used only for the
// "ip netns" and "ip -n" plumbing.
func rootCmd(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := newCmd(ctx, argv)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	return cmd
}

// runRoot runs a plumbing command bounded by DefaultTimeout.
func runRoot(argv ...string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return Run(rootCmd(ctx, argv...))
}

// newCmd makes an exec.Cmd in its own process group: when ctx ends, the whole
// group gets SIGKILL, and pipes are closed at most 5 s later even if some
// other process still holds them.
func newCmd(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Result is the outcome of a finished command.
type Result struct {
	Stdout, Stderr string
	ExitCode       int   // -1 when the command did not exit normally
	Err            error // nil only for exit status 0
	Duration       time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d (%v) after %v\n[stdout]\n%s[stderr]\n%s", r.ExitCode, r.Err,
		r.Duration.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Run runs cmd to completion and collects its output. Stdout and Stderr are
// captured unless the caller already set them.
func Run(cmd *exec.Cmd) Result {
	var stdout, stderr bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &stderr
	}
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String(), Err: err, Duration: time.Since(start)}
	res.ExitCode = -1
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if err == nil {
		res.ExitCode = 0
	}
	return res
}

// MustRun runs cmd and returns its stdout; on any error it fails the test
// with the command line, exit status and stderr.
func (s *Sandbox) MustRun(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	res := Run(cmd)
	if res.Err != nil {
		t.Fatalf("command failed: %s\n%s", strings.Join(cmd.Args, " "), res)
	}
	return res.Stdout
}

// MustHost runs argv in the host netns (bounded by DefaultTimeout) and
// returns its stdout, failing the test on error.
func (s *Sandbox) MustHost(t testing.TB, as As, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return s.MustRun(t, s.Host(ctx, as, argv...))
}

// MustRemote is MustHost for the remote netns.
func (s *Sandbox) MustRemote(t testing.TB, as As, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	return s.MustRun(t, s.Remote(ctx, as, argv...))
}

// Proc is a background process started through a sandbox.
type Proc struct {
	Cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error
}

// Start starts cmd in the background. Its stdout and stderr are captured
// (unless already set); it is killed, with its process group, at cleanup.
func (s *Sandbox) Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = &p.stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits at most timeout for the process to exit. It returns false if
// it is still running.
func (p *Proc) Wait(timeout time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(timeout):
		return false, nil
	}
}

// Kill sends SIGKILL to the process and its group and waits (at most 10 s)
// for it to be reaped.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// Stdout returns what the process wrote to stdout so far (if captured).
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr returns what the process wrote to stderr so far (if captured).
func (p *Proc) Stderr() string { return p.stderr.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TrackPID makes cleanup kill pid (e.g. a daemon that wrote a PID file), if
// it is still the same process then.
func (s *Sandbox) TrackPID(pid int) {
	st, err := procStart(pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.pids = append(s.pids, trackedPID{pid, st})
	s.mu.Unlock()
}

// procStat returns the fields of /proc/PID/stat after the command name:
// index 0 is the state, index 19 the start time.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("bad /proc stat")
	}
	return strings.Fields(string(b[i+1:])), nil
}

func procStart(pid int) (string, error) {
	f, err := procStat(pid)
	if err != nil {
		return "", err
	}
	if len(f) < 20 {
		return "", errors.New("short /proc stat")
	}
	return f[19], nil
}

// Alive reports whether pid is a running process. A zombie counts as gone:
// a daemon that has exited but whose new parent (PID 1, which reaps lazily
// on some machines) has not reaped it yet has still exited.
func Alive(pid int) bool {
	f, err := procStat(pid)
	if err != nil || len(f) == 0 {
		return false
	}
	return f[0] != "Z" && f[0] != "X"
}

// WaitGone polls (every 20 ms) until pid is no longer Alive, at most
// timeout. It returns how long that took and whether it happened.
func WaitGone(pid int, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	for {
		if !Alive(pid) {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cmdline returns the NUL-separated argv of pid joined with spaces.
func Cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// NetnsOf returns the identity of pid's network namespace.
func netnsOf(pid int) (nsID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		return nsID{}, err
	}
	return nsID{uint64(st.Dev), st.Ino}, nil
}

// SameNetns reports whether two processes share a network namespace.
func SameNetns(pid1, pid2 int) (bool, error) {
	a, err := netnsOf(pid1)
	if err != nil {
		return false, err
	}
	b, err := netnsOf(pid2)
	if err != nil {
		return false, err
	}
	return a == b, nil
}

// InHostNetns reports whether pid is in the sandbox's host netns.
func (s *Sandbox) InHostNetns(pid int) bool {
	id, err := netnsOf(pid)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return id == s.nsIDs[s.HostNS]
}

// DeleteNetns deletes a namespace made by NewNetns ("ip netns del").
func (s *Sandbox) DeleteNetns(t testing.TB, name string) {
	t.Helper()
	res := runRoot("ip", "netns", "del", name)
	if res.Err != nil {
		t.Fatalf("ip netns del %s: %s", name, res)
	}
}

func (s *Sandbox) cleanup() {
	s.mu.Lock()
	procs := append([]*Proc(nil), s.procs...)
	pids := append([]trackedPID(nil), s.pids...)
	names := append([]string(nil), s.extraNS...)
	ids := map[nsID]bool{}
	for _, id := range s.nsIDs {
		ids[id] = true
	}
	s.mu.Unlock()

	for _, p := range procs {
		p.Kill()
	}
	for _, tp := range pids {
		if st, err := procStart(tp.pid); err == nil && st == tp.start {
			_ = syscall.Kill(tp.pid, syscall.SIGKILL)
		}
	}
	// Sweep: kill whatever still lives in one of our namespaces (daemons
	// that escaped the process group, their children, ...).
	if ents, err := os.ReadDir("/proc"); err == nil {
		self := os.Getpid()
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self || pid == 1 {
				continue
			}
			if id, err := netnsOf(pid); err == nil && ids[id] {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for i := len(names) - 1; i >= 0; i-- {
		if _, err := os.Stat(NetnsPath(names[i])); err != nil {
			continue
		}
		res := runRoot("ip", "netns", "del", names[i])
		if res.Err != nil {
			s.t.Errorf("sandbox cleanup: ip netns del %s: %s", names[i], res)
		}
	}
}

// RequireRoot skips the test when not running as root, or fails it when
// GOPASTA_REQUIRE_E2E=1 (so that CI cannot pass by skipping).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
}

// RequireTools skips (or fails, see RequireRoot) if a program is not in PATH.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, "needs "+n+" in PATH")
		}
	}
}

// SkipOrFail skips the test for a missing prerequisite, or fails it with
// GOPASTA_REQUIRE_E2E=1 (CI), where nothing may be skipped.
func SkipOrFail(t testing.TB, why string) {
	t.Helper()
	skipOrFail(t, why)
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("GOPASTA_REQUIRE_E2E") == "1" {
		t.Fatalf("%s (GOPASTA_REQUIRE_E2E=1)", why)
	}
	t.Skip(why)
}

// ShellQuote quotes s for /bin/sh.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
