// Package e2e holds end-to-end tests of the pasta binary: each test builds a
// sandbox (two network namespaces, see package sandbox), runs pasta in its
// "host" namespace as root and as an unprivileged user, and checks what the
// namespace pasta serves looks like and what goes through it.
//
// Run: GOPASTA_REQUIRE_E2E=1 go test ./test/... (as root). Set GOPASTA_BIN to
// test another binary, e.g. the C pasta. See test/README.md.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

func TestMain(m *testing.M) { sandbox.Main(m) }

const (
	defaultMTU   = 65520 // pasta's default MTU for the tap interface
	pastaTimeout = 30 * time.Second
)

// mode is who runs pasta.
type mode struct {
	name  string
	as    sandbox.As
	extra []string // options put before each test's own
}

// rootExtra is what root mode adds to every pasta command line: nothing for
// our binary (plain "sudo pasta ..."), "--runas 0" for the reference C
// pasta, which as real root otherwise switches to "nobody" and then cannot
// set up its namespaces at all (see README). GOPASTA_ROOT_ARGS overrides
// both (an empty value adds nothing).
func rootExtra() []string {
	if v, ok := os.LookupEnv("GOPASTA_ROOT_ARGS"); ok {
		return strings.Fields(v)
	}
	if sandbox.Reference() {
		return []string{"--runas", "0"}
	}
	return nil
}

var (
	rootMode = mode{name: "root", as: sandbox.Root, extra: rootExtra()}
	userMode = mode{name: "user", as: sandbox.Unprivileged}
)

// eachMode runs fn as parallel subtests "root" and "user", each with its own
// sandbox.
func eachMode(t *testing.T, fn func(t *testing.T, m mode, sb *sandbox.Sandbox)) {
	t.Parallel()
	for _, m := range []mode{rootMode, userMode} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			sb := sandbox.New(t)
			fn(t, m, sb)
		})
	}
}

// pasta returns the command line "pasta <mode options> args..." in the host
// netns of sb.
func (m mode) pasta(t *testing.T, ctx context.Context, sb *sandbox.Sandbox, args ...string) *exec.Cmd {
	argv := append([]string{sandbox.Binary(t)}, m.extra...)
	return sb.Host(ctx, m.as, append(argv, args...)...)
}

// runPasta runs pasta to completion, bounded by pastaTimeout.
func (m mode) runPasta(t *testing.T, sb *sandbox.Sandbox, args ...string) sandbox.Result {
	t.Helper()
	ctx := withTimeout(t, pastaTimeout)
	cmd := m.pasta(t, ctx, sb, args...)
	res := sandbox.Run(cmd)
	t.Logf("$ %s\n%s", strings.Join(cmd.Args[indexOf(cmd.Args, sandbox.Binary(t)):], " "), res)
	return res
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return 0
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fileDir is a directory pasta may create files in (PID file, pcap): one
// owned by the test user in user mode, one owned by root in root mode (C
// pasta drops CAP_DAC_OVERRIDE before opening these files, so even root
// cannot write into a directory it does not own).
func (m mode) fileDir(t *testing.T, sb *sandbox.Sandbox) string {
	if m.as == sandbox.Unprivileged {
		return sb.UserDir()
	}
	return sb.RootDir()
}

// knownRefBug reports a failure that is a known bug of the reference (C)
// pasta: only logged when testing the reference, an error otherwise.
func knownRefBug(t *testing.T, format string, args ...any) {
	t.Helper()
	if sandbox.Reference() {
		t.Logf("NOTE (known bug of the reference binary, tolerated): "+format, args...)
		return
	}
	t.Errorf(format, args...)
}

// commandIdentity runs "id -u" and the uid_map under pasta and returns them.
func (m mode) commandIdentity(t *testing.T, sb *sandbox.Sandbox) (uid string, uidMap []string) {
	t.Helper()
	res := m.runPasta(t, sb, "--config-net", "--", "sh", "-c", "id -u; cat /proc/self/uid_map")
	mustExit(t, res, 0)
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(lines) > 1 {
		uidMap = strings.Fields(lines[1]) // empty: no mapping at all
	}
	return strings.TrimSpace(lines[0]), uidMap
}

// pingArgv is the ping command to run under pasta. With the reference
// binary as root it skips the test instead: C pasta (2025-05) cannot map uid
// 0 into the command's user namespace (it drops CAP_SETFCAP before writing
// "0 0 1" to uid_map, and kernels >= 5.12 want it for a root mapping), so
// the command runs as the overflow uid without capabilities and nothing in
// it can ping (iputils dies in setuid(), ICMP sockets are not allowed). The
// root data path is still covered, for the reference too, by the daemon
// tests, which ping from a namespace pasta did not create.
func (m mode) pingArgv(t *testing.T, sb *sandbox.Sandbox) []string {
	t.Helper()
	if m.as == sandbox.Root && sandbox.Reference() {
		if uid, _ := m.commandIdentity(t, sb); uid != "0" {
			t.Skipf("NOTE (known bug of the reference binary): as root it runs the command as uid %s, not 0, so the command cannot ping", uid)
		}
	}
	return []string{"ping", "-n"}
}

// inspectScript prints, separated by lines "@@", the addresses, IPv4 routes,
// IPv6 routes and link details of the namespace it runs in, all as JSON.
const inspectScript = `ip -j addr show && echo @@ && ip -j route show && echo @@ && ip -j -6 route show && echo @@ && ip -j -d link show`

type nsView struct {
	addrs, links    []sandbox.Link
	routes4, route6 []sandbox.Route
	raw             string
}

func parseInspect(t *testing.T, out string) nsView {
	t.Helper()
	parts := strings.Split(out, "@@\n")
	if len(parts) != 4 {
		t.Fatalf("inspect output has %d sections, want 4:\n%s", len(parts), out)
	}
	var v nsView
	var err error
	v.raw = out
	if v.addrs, err = sandbox.ParseLinks(parts[0]); err != nil {
		t.Fatal(err)
	}
	if v.routes4, err = sandbox.ParseRoutes(parts[1]); err != nil {
		t.Fatal(err)
	}
	if v.route6, err = sandbox.ParseRoutes(parts[2]); err != nil {
		t.Fatal(err)
	}
	if v.links, err = sandbox.ParseLinks(parts[3]); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkConfigured asserts that the namespace has pasta's interface ifname,
// up, a tap, with the given MTU, the host's addresses and the host's default
// routes (IPv6 via the link-local gateway).
func checkConfigured(t *testing.T, v nsView, ifname string, mtu int) {
	t.Helper()
	l := sandbox.FindLink(v.addrs, ifname)
	if l == nil {
		var names []string
		for _, x := range v.addrs {
			names = append(names, x.Ifname)
		}
		t.Fatalf("no interface %q in the namespace, only %v:\n%s", ifname, names, v.raw)
	}
	if !l.HasFlag("UP") {
		t.Errorf("%s flags %v: not UP", ifname, l.Flags)
	}
	if l.MTU != mtu {
		t.Errorf("%s MTU %d, want %d", ifname, l.MTU, mtu)
	}
	for _, want := range []struct {
		addr, family string
		plen         int
	}{
		{sandbox.HostAddr4, "inet", sandbox.Prefix4},
		{sandbox.HostAddr6, "inet6", sandbox.Prefix6},
	} {
		a := l.Addr(want.addr)
		if a == nil {
			t.Errorf("%s lacks address %s/%d; has %+v", ifname, want.addr, want.plen, l.AddrInfo)
			continue
		}
		if a.Family != want.family || a.Prefixlen != want.plen {
			t.Errorf("%s: address %s is %s/%d, want %s/%d", ifname, want.addr, a.Family, a.Prefixlen, want.family, want.plen)
		}
	}
	if dl := sandbox.FindLink(v.links, ifname); dl == nil {
		t.Errorf("no %s in ip -d link output", ifname)
	} else if dl.LinkInfo == nil || dl.LinkInfo.InfoKind != "tun" || dl.LinkInfo.InfoData["type"] != "tap" {
		t.Errorf("%s is not a tap device: linkinfo %+v", ifname, dl.LinkInfo)
	}

	if r := sandbox.DefaultRoute(v.routes4); r == nil {
		t.Errorf("no IPv4 default route: %+v", v.routes4)
	} else if r.Gateway != sandbox.Gateway4 || r.Dev != ifname {
		t.Errorf("IPv4 default route via %s dev %s, want via %s dev %s", r.Gateway, r.Dev, sandbox.Gateway4, ifname)
	}
	if r := sandbox.DefaultRoute(v.route6); r == nil {
		t.Errorf("no IPv6 default route: %+v", v.route6)
	} else if r.Gateway != sandbox.Gateway6 || r.Dev != ifname {
		t.Errorf("IPv6 default route via %s dev %s, want via %s dev %s", r.Gateway, r.Dev, sandbox.Gateway6, ifname)
	}
}

// receivedRE matches the summary line of ping.
var receivedRE = regexp.MustCompile(`(\d+) received`)

// checkPing asserts ping output shows count replies from dst.
func checkPing(t *testing.T, out, dst string, count int) {
	t.Helper()
	if m := receivedRE.FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(count) {
		t.Errorf("ping %s: want %d received:\n%s", dst, count, out)
	}
	if n := strings.Count(out, "bytes from "+dst+":"); n < count {
		t.Errorf("ping %s: %d reply lines from %s, want %d:\n%s", dst, n, dst, count, out)
	}
}

func mustExit(t *testing.T, res sandbox.Result, code int) {
	t.Helper()
	if res.ExitCode != code {
		t.Fatalf("exit status %d, want %d\n%s", res.ExitCode, code, res)
	}
}

// a. --config-net: the namespace copies the host's interface name, addresses
// and routes, with pasta's default MTU.
func TestConfigNet(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		res := m.runPasta(t, sb, "--config-net", "--", "sh", "-c", inspectScript)
		mustExit(t, res, 0)
		checkConfigured(t, parseInspect(t, res.Stdout), sandbox.HostIf, defaultMTU)
	})
}

// a'. -m and -I change the MTU and the interface name.
func TestConfigNetMTUIfname(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		res := m.runPasta(t, sb, "--config-net", "-m", "1500", "-I", "myeth0", "--", "sh", "-c", inspectScript)
		mustExit(t, res, 0)
		v := parseInspect(t, res.Stdout)
		checkConfigured(t, v, "myeth0", 1500)
		if sandbox.FindLink(v.addrs, sandbox.HostIf) != nil {
			t.Errorf("interface %s exists although -I myeth0 was given", sandbox.HostIf)
		}
	})
}

// b. ping through pasta reaches the remote namespace, IPv4 and IPv6.
func TestPing(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ping := m.pingArgv(t, sb)
		for _, tc := range []struct{ name, flag, dst string }{
			{"ipv4", "-4", sandbox.RemoteAddr4},
			{"ipv6", "-6", sandbox.RemoteAddr6},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := append([]string{"--config-net", "--"}, ping...)
				res := m.runPasta(t, sb, append(args, tc.flag, "-c", "2", "-W", "2", tc.dst)...)
				mustExit(t, res, 0)
				checkPing(t, res.Stdout, tc.dst, 2)
			})
		}
	})
}

// c. -p writes a pcap file of the tap traffic that holds the echo requests
// and replies.
func TestPcap(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		// In user mode the file goes into a directory the user owns; the
		// test (root) reads it afterwards.
		file := filepath.Join(m.fileDir(t, sb), "ping.pcap")
		ping := strings.Join(m.pingArgv(t, sb), " ")
		script := ping + " -4 -c 2 -W 2 " + sandbox.RemoteAddr4 + " && " + ping + " -6 -c 2 -W 2 " + sandbox.RemoteAddr6
		res := m.runPasta(t, sb, "--config-net", "-p", file, "--", "sh", "-c", script)
		mustExit(t, res, 0)

		lt, frames, err := readPcap(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if lt != 1 {
			t.Fatalf("pcap link type %d, want 1 (Ethernet)", lt)
		}
		type key struct {
			v6    bool
			reply bool
			seq   uint16
		}
		seen := map[key]bool{}
		h4, r4 := netip.MustParseAddr(sandbox.HostAddr4), netip.MustParseAddr(sandbox.RemoteAddr4)
		h6, r6 := netip.MustParseAddr(sandbox.HostAddr6), netip.MustParseAddr(sandbox.RemoteAddr6)
		for _, f := range frames {
			e, ok := parseEcho(f.data)
			if !ok {
				continue
			}
			switch {
			case !e.reply && e.src == h4 && e.dst == r4, e.reply && e.src == r4 && e.dst == h4:
				seen[key{false, e.reply, e.seq}] = true
			case !e.reply && e.src == h6 && e.dst == r6, e.reply && e.src == r6 && e.dst == h6:
				seen[key{true, e.reply, e.seq}] = true
			}
		}
		for _, v6 := range []bool{false, true} {
			for _, reply := range []bool{false, true} {
				for seq := uint16(1); seq <= 2; seq++ {
					if !seen[key{v6, reply, seq}] {
						t.Errorf("pcap (%d frames) lacks echo %s seq %d (IPv6: %v)", len(frames),
							map[bool]string{false: "request", true: "reply"}[reply], seq, v6)
					}
				}
			}
		}

		sandbox.RequireTools(t, "tcpdump")
		ctx := withTimeout(t, pastaTimeout)
		dump := sandbox.Run(sb.Host(ctx, sandbox.Root, "tcpdump", "-r", file, "-nn"))
		if dump.Err != nil {
			t.Fatalf("tcpdump -r: %s", dump)
		}
		for _, want := range []string{"ICMP echo request", "ICMP echo reply", sandbox.RemoteAddr4} {
			if !strings.Contains(dump.Stdout, want) {
				t.Errorf("tcpdump -r output lacks %q:\n%s", want, dump.Stdout)
			}
		}
	})
}

// d. pasta exits with the status of the command it runs.
func TestExitStatus(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		t.Run("exit7", func(t *testing.T) {
			mustExit(t, m.runPasta(t, sb, "--config-net", "--", "sh", "-c", "exit 7"), 7)
		})
		t.Run("true", func(t *testing.T) {
			mustExit(t, m.runPasta(t, sb, "--config-net", "--", "true"), 0)
		})
		t.Run("false", func(t *testing.T) {
			mustExit(t, m.runPasta(t, sb, "--config-net", "--", "false"), 1)
		})
		t.Run("missing", func(t *testing.T) {
			res := m.runPasta(t, sb, "--config-net", "--", "/nonexistent/gopasta-no-such-command")
			if res.ExitCode <= 0 {
				t.Fatalf("missing command: exit status %d, want a non-zero exit\n%s", res.ExitCode, res)
			}
			t.Logf("missing command: exit status %d, stderr %q", res.ExitCode, res.Stderr)
		})
	})
}

// The command gets the environment pasta was given, GODEBUG included:
// pasta's own stages run with a GODEBUG setting of theirs (isolation.go),
// which must not reach the command, and a user's must.
func TestCommandEnvironment(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		for _, tc := range []struct{ name, env, want string }{
			{"unset", "", "unset"},
			{"given", "GODEBUG=madvdontneed=1", "[madvdontneed=1]"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := withTimeout(t, pastaTimeout)
				cmd := m.pasta(t, ctx, sb, "--config-net", "--", "sh", "-c", `if [ -n "${GODEBUG+set}" ]; then echo "[$GODEBUG]"; else echo unset; fi`)
				if tc.env != "" {
					cmd.Env = append(cmd.Env, tc.env)
				}
				res := sandbox.Run(cmd)
				mustExit(t, res, 0)
				if got := strings.TrimSpace(res.Stdout); got != tc.want {
					t.Errorf("the command's GODEBUG: %q, want %q", got, tc.want)
				}
			})
		}
	})
}

// The command runs as uid 0 inside its user namespace, which maps it to
// whoever ran pasta.
func TestCommandIdentity(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		uid, uidMap := m.commandIdentity(t, sb)
		outer := "0"
		if m.as == sandbox.Unprivileged {
			outer = strconv.Itoa(sb.UID)
		}
		// uid 0 inside must be the invoking user outside. The extent's
		// length is free: C pasta maps one uid ("0 UID 1"); a root pasta
		// may also leave the command in the initial user namespace
		// ("0 0 4294967295").
		if uid != "0" || len(uidMap) != 3 || uidMap[0] != "0" || uidMap[1] != outer {
			msg := fmt.Sprintf("command runs as uid %s with uid_map %v, want uid 0 with uid_map \"0 %s N\"", uid, uidMap, outer)
			if m.as == sandbox.Root {
				// C pasta as root drops CAP_SETFCAP before writing "0 0 1".
				knownRefBug(t, "%s", msg)
			} else {
				t.Error(msg)
			}
		}
	})
}

// readPIDFile reads a PID file written by pasta.
func readPIDFile(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("PID file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("PID file %s holds %q", path, b)
	}
	return pid
}

// checkDaemon asserts pid is a live pasta process.
func checkDaemon(t *testing.T, sb *sandbox.Sandbox, pid int) {
	t.Helper()
	sb.TrackPID(pid)
	if !sandbox.Alive(pid) {
		t.Fatalf("pasta daemon (PID %d from the PID file) is not running", pid)
	}
	if cl := sandbox.Cmdline(pid); !strings.Contains(cl, "pasta") {
		t.Errorf("PID %d is %q, not pasta", pid, cl)
	}
	// C pasta's main thread stays in the host netns (it enters the target
	// only from helper threads). Not required, but worth knowing.
	if !sb.InHostNetns(pid) {
		t.Logf("NOTE: pasta daemon PID %d (its main thread) is not in the host network namespace", pid)
	}
}

// e. Daemon mode on a named netns (root only: the test user cannot make
// named namespaces): the parent returns at once with status 0 and closes
// its stdout/stderr (Podman waits for EOF on them), the daemon serves the
// namespace, and exits when the namespace is deleted.
func TestDaemonNetns(t *testing.T) {
	t.Parallel()
	m := rootMode
	sb := sandbox.New(t)
	ns := sb.NewNetns(t)
	pidFile := filepath.Join(m.fileDir(t, sb), "pasta.pid")

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := withTimeout(t, pastaTimeout)
	cmd := m.pasta(t, ctx, sb, "--config-net", "--netns", sandbox.NetnsPath(ns), "-P", pidFile)
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitErr := cmd.Wait()
	elapsed := time.Since(start)
	if waitErr != nil {
		out, _ := readWithin(r, time.Second)
		t.Fatalf("pasta parent: %v after %v\n%s", waitErr, elapsed, out)
	}
	if elapsed > 10*time.Second {
		t.Errorf("pasta parent took %v to exit, want < 10s", elapsed)
	}
	out, err := readWithin(r, 5*time.Second)
	t.Logf("pasta parent exited 0 after %v; stdout+stderr:\n%s", elapsed.Round(time.Millisecond), out)
	if err != nil {
		t.Errorf("stdout/stderr pipe not at EOF 5s after the parent exited (the daemon keeps it open): %v", err)
	}

	pid := readPIDFile(t, pidFile)
	checkDaemon(t, sb, pid)

	ictx := withTimeout(t, pastaTimeout)
	v := parseInspect(t, sb.MustRun(t, sb.InNetns(ictx, ns, sandbox.Root, "sh", "-c", inspectScript)))
	checkConfigured(t, v, sandbox.HostIf, defaultMTU)
	for _, dst := range []string{sandbox.RemoteAddr4, sandbox.RemoteAddr6} {
		out := sb.MustRun(t, sb.InNetns(ictx, ns, sandbox.Root, "ping", "-n", "-c", "2", "-W", "2", dst))
		checkPing(t, out, dst, 2)
	}

	sb.DeleteNetns(t, ns)
	if d, gone := sandbox.WaitGone(pid, 2*time.Second); !gone {
		t.Errorf("pasta (PID %d) still running %v after ip netns del", pid, d)
	} else {
		t.Logf("pasta exited %v after ip netns del", d.Round(time.Millisecond))
	}
}

// readWithin reads r to EOF, failing if that takes longer than d.
func readWithin(r *os.File, d time.Duration) (string, error) {
	if err := r.SetReadDeadline(time.Now().Add(d)); err != nil {
		return "", err
	}
	b, err := io.ReadAll(r)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return string(b), fmt.Errorf("no EOF within %v", d)
	}
	return string(b), err
}

// f. Daemon mode on the netns of a PID (as Podman does for rootless
// containers before it learned --netns): pasta joins the PID's user and
// network namespaces, serves it, and exits once the process is gone.
func TestDaemonPID(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ctx := withTimeout(t, 90*time.Second)
		// The target: a process in its own user and network namespace,
		// created by whoever runs pasta, as Podman's rootless containers are.
		sleeper := sb.Start(t, sb.Host(ctx, m.as, "unshare", "--user", "--map-root-user", "--net", "sleep", "60"))
		spid := sleeper.Pid()
		deadline := time.Now().Add(5 * time.Second)
		for !(strings.HasPrefix(sandbox.Cmdline(spid), "sleep ") && !sb.InHostNetns(spid) && sandbox.Alive(spid)) {
			if time.Now().After(deadline) {
				t.Fatalf("unshare ... sleep did not settle in its own netns within 5s (%q); stderr: %s",
					sandbox.Cmdline(spid), sleeper.Stderr())
			}
			time.Sleep(20 * time.Millisecond)
		}

		pidFile := filepath.Join(m.fileDir(t, sb), "pasta.pid")
		res := m.runPasta(t, sb, "--config-net", "-P", pidFile, strconv.Itoa(spid))
		mustExit(t, res, 0)
		if res.Duration > 10*time.Second {
			t.Errorf("pasta parent took %v, want < 10s", res.Duration)
		}
		pid := readPIDFile(t, pidFile)
		checkDaemon(t, sb, pid)

		ictx := withTimeout(t, pastaTimeout)
		v := parseInspect(t, sb.MustRun(t, sb.InPID(ictx, spid, sandbox.Root, "sh", "-c", inspectScript)))
		checkConfigured(t, v, sandbox.HostIf, defaultMTU)
		out := sb.MustRun(t, sb.InPID(ictx, spid, sandbox.Root, "ping", "-n", "-c", "2", "-W", "2", sandbox.RemoteAddr4))
		checkPing(t, out, sandbox.RemoteAddr4, 2)
		// The owner of the namespaces, from inside them (as "podman exec").
		out = sb.MustRun(t, sb.InPID(ictx, spid, m.as, "ping", "-6", "-n", "-c", "2", "-W", "2", sandbox.RemoteAddr6))
		checkPing(t, out, sandbox.RemoteAddr6, 2)

		sleeper.Kill()
		if d, gone := sandbox.WaitGone(pid, 2*time.Second); !gone {
			t.Errorf("pasta (PID %d) still running %v after its target process died", pid, d)
		} else {
			t.Logf("pasta exited %v after the target process was killed", d.Round(time.Millisecond))
		}
	})
}

// g. Bad options: exit status 1 for an unknown option, non-zero for bad
// values, with a message naming the culprit, and the command is not run.
func TestBadOptions(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		t.Run("unknown", func(t *testing.T) {
			res := m.runPasta(t, sb, "--bogus")
			mustExit(t, res, 1)
			if !strings.Contains(res.Stderr, "unrecognized option '--bogus'") {
				t.Errorf("stderr lacks \"unrecognized option '--bogus'\":\n%s", res.Stderr)
			}
		})
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"address", []string{"-a", "1.2.3"}, "1.2.3"},
			{"mtu", []string{"--mtu", "70000"}, "70000"},
			// A range mapped to a target range of another size is refused
			// by the parser, naming the spec, before anything is bound.
			{"range sizes", []string{"-t", "1-2:3"}, "1-2:3"},
			{"range sizes udp", []string{"-u", "1-65535:1"}, "1-65535:1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := append(append([]string{"--config-net"}, tc.args...), "--", "sh", "-c", "echo COMMAND-RAN")
				res := m.runPasta(t, sb, args...)
				if res.ExitCode <= 0 {
					t.Fatalf("exit status %d, want non-zero\n%s", res.ExitCode, res)
				}
				if !strings.Contains(res.Stderr, tc.want) {
					t.Errorf("stderr does not mention %q:\n%s", tc.want, res.Stderr)
				}
				if strings.Contains(res.Stdout, "COMMAND-RAN") {
					t.Errorf("the command ran despite the bad option")
				}
			})
		}
	})
}

// h. --version exits 0 and prints a first line naming pasta.
func TestVersion(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		// On a pipe, as Podman reads it.
		res := m.runPasta(t, sb, "--version")
		mustExit(t, res, 0)
		first := firstLine(res.Stdout)
		if first == "" {
			msg := "--version printed nothing on stdout when it is a pipe"
			// C pasta (2025-05) writes the version with buffered stdio
			// and leaves with _exit(), so nothing comes out unless stdout
			// is a terminal.
			knownRefBug(t, "%s", msg)
		}

		// On a terminal (script(1) allocates one).
		sandbox.RequireTools(t, "script")
		ctx := withTimeout(t, pastaTimeout)
		var q []string
		for _, a := range append(append([]string{sandbox.Binary(t)}, m.extra...), "--version") {
			q = append(q, sandbox.ShellQuote(a))
		}
		tty := sandbox.Run(sb.Host(ctx, m.as, "script", "-q", "-e", "-c", strings.Join(q, " "), "/dev/null"))
		mustExit(t, tty, 0)
		if first == "" {
			// The terminal also shows stderr (the C pasta wrapper writes a
			// warning there first): take the first line naming pasta.
			for _, l := range strings.Split(strings.ReplaceAll(tty.Stdout, "\r", ""), "\n") {
				if strings.HasPrefix(l, "pasta") {
					first = l
					break
				}
			}
		}
		if !strings.Contains(first, "pasta") {
			t.Errorf("--version first line %q does not name pasta\npipe:\n%s\ntty:\n%s", first, res.Stdout, tty.Stdout)
		}
		t.Logf("version: %q", first)
	})
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
