package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// TestConfinement: in every mode, as root and as the test user, the pasta
// process that runs the loop is confined once it serves the namespace
// (docs/security.md): the seccomp filter with no_new_privs, no capability
// in any thread, nobody when started as root (where the user namespace
// maps it), an empty read-only tmpfs as its root and only mount, and a
// PID namespace of its own in the background (not with -f, not with a
// command); and it still serves the namespace (ping through it).
func TestConfinement(t *testing.T) {
	if sandbox.Reference() {
		t.Skip("the C pasta keeps CAP_NET_BIND_SERVICE and CAP_SYS_ADMIN (see docs/security.md)")
	}
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		user := rootOr(t, m, "65534") // pasta started as root becomes nobody
		t.Run("command", func(t *testing.T) {
			pidFile := filepath.Join(m.fileDir(t, sb), "command.pid")
			ctx := withTimeout(t, pastaTimeout)
			p := sb.Start(t, m.pasta(t, ctx, sb, "--config-net", "-P", pidFile, "--",
				"sh", "-c", "ping -n -c 1 -W 5 "+sandbox.RemoteAddr4+"; sleep 30"))
			defer p.Kill()
			checkConfined(t, waitPIDFile(t, pidFile), user, false)
			if !waitOutput(p, "1 received", 10*time.Second) {
				t.Errorf("no ping reply through the confined pasta; output:\n%s\n%s", p.Stdout(), p.Stderr())
			}
		})
		// Targets: a process in user and network namespaces of its own.
		// As root, pasta joins its user namespace, which maps only root:
		// nobody isn't there to switch to.
		for _, tc := range []struct {
			name     string
			daemon   bool                          // else -f: in the foreground, no PID namespace
			inUserns bool                          // started inside the target's user namespace, as Podman does
			args     func(pid, ns string) []string // pid: the target's; ns: its /proc/PID/ns/
		}{
			{"pid", true, false, func(pid, _ string) []string { return []string{pid} }},
			{"foreground", false, false, func(pid, _ string) []string { return []string{"-f", pid} }},
			// RootlessKit's way: both namespaces by path.
			{"userns-netns", true, false, func(_, ns string) []string { return []string{"--userns", ns + "user", "--netns", ns + "net"} }},
			// Podman's way: from inside the user namespace, the network
			// namespace by path.
			{"inside-userns", true, true, func(_, ns string) []string { return []string{"--netns", ns + "net"} }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				target := startTarget(t, m, sb)
				ns := "/proc/" + strconv.Itoa(target) + "/ns/"
				pidFile := filepath.Join(m.fileDir(t, sb), tc.name+".pid")
				args := append([]string{"--config-net", "-P", pidFile}, tc.args(strconv.Itoa(target), ns)...)
				ctx := withTimeout(t, pastaTimeout)
				cmd := m.pasta(t, ctx, sb, args...)
				if tc.inUserns {
					cmd = sb.Host(ctx, m.as, append([]string{"nsenter", "--user=" + ns + "user", "--preserve-credentials", sandbox.Binary(t)}, args...)...)
				}
				pid := 0
				if tc.daemon {
					mustExit(t, sandbox.Run(cmd), 0)
					pid = readPIDFile(t, pidFile)
				} else {
					defer sb.Start(t, cmd).Kill()
					pid = waitPIDFile(t, pidFile)
				}
				checkConfined(t, pid, rootOr(t, m, "0"), tc.daemon)
				pingFrom(t, sb, target)
			})
		}
		if m.as == sandbox.Root { // the test user can't make named namespaces
			t.Run("netns", func(t *testing.T) {
				ns := sb.NewNetns(t)
				pidFile := filepath.Join(m.fileDir(t, sb), "netns.pid")
				mustExit(t, m.runPasta(t, sb, "--config-net", "-P", pidFile, "--netns", sandbox.NetnsPath(ns)), 0)
				checkConfined(t, readPIDFile(t, pidFile), user, true)
				ctx := withTimeout(t, pastaTimeout)
				checkPing(t, sb.MustRun(t, sb.InNetns(ctx, ns, sandbox.Root, "ping", "-n", "-c", "1", "-W", "5", sandbox.RemoteAddr4)), sandbox.RemoteAddr4, 1)
			})
		}
	})
}

// rootOr is the uid pasta keeps in a user namespace that maps only root,
// as /proc shows it from outside: rootUID in root mode, the test user's
// otherwise.
func rootOr(t *testing.T, m mode, rootUID string) string {
	if m.as == sandbox.Root {
		return rootUID
	}
	uid, _ := sandbox.User(t)
	return strconv.Itoa(uid)
}

// checkConfined reads the confinement of pasta's process pid and reports
// every shortfall.
func checkConfined(t *testing.T, pid int, uid string, ownPIDNS bool) {
	t.Helper()
	checkConfinedAs(t, pid, uid, ownPIDNS, false)
}

func checkConfinedAs(t *testing.T, pid int, uid string, ownPIDNS, chroot bool) {
	t.Helper()
	// The PID file is written before pasta confines itself: in the
	// foreground modes, wait for the filter, its last step.
	deadline := time.Now().Add(10 * time.Second)
	c, err := sandbox.ReadConfinement(pid)
	for err == nil && c.Status["Seccomp"] != "2" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		c, err = sandbox.ReadConfinement(pid)
	}
	if err != nil {
		t.Fatalf("reading the confinement of pasta (PID %d): %v", pid, err)
	}
	for _, p := range c.Problems(uid, ownPIDNS, chroot) {
		t.Errorf("pasta (PID %d): %s", pid, p)
	}
	t.Logf("pasta (PID %d), %d threads: Uid %s, CapEff %s, CapBnd %s, Seccomp %s, NoNewPrivs %s, NSpid %s; mounts: %s",
		pid, len(c.Threads), c.Status["Uid"], c.Status["CapEff"], c.Status["CapBnd"], c.Status["Seccomp"],
		c.Status["NoNewPrivs"], c.Status["NSpid"], strings.Join(c.Mounts, " | "))
}

// startTarget starts, as whoever runs pasta, a process in user and network
// namespaces of its own (a rootless container's), and returns its PID once
// it is there.
func startTarget(t *testing.T, m mode, sb *sandbox.Sandbox) int {
	t.Helper()
	ctx := withTimeout(t, 90*time.Second)
	p := sb.Start(t, sb.Host(ctx, m.as, "unshare", "--user", "--map-root-user", "--net", "sleep", "60"))
	pid := p.Pid()
	deadline := time.Now().Add(5 * time.Second)
	for !(strings.HasPrefix(sandbox.Cmdline(pid), "sleep ") && !sb.InHostNetns(pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("unshare ... sleep did not settle in its namespaces within 5s: %s", p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(p.Kill)
	return pid
}

// pingFrom pings the remote once from the network namespace of pid.
func pingFrom(t *testing.T, sb *sandbox.Sandbox, pid int) {
	t.Helper()
	ctx := withTimeout(t, pastaTimeout)
	out := sb.MustRun(t, sb.InPID(ctx, pid, sandbox.Root, "ping", "-n", "-c", "1", "-W", "5", sandbox.RemoteAddr4))
	checkPing(t, out, sandbox.RemoteAddr4, 1)
}

// waitPIDFile waits up to 10 s for pasta to write its PID file, and
// returns the PID, tracked for cleanup.
func waitPIDFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			return readPIDFile(t, path)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no PID file %s after 10 s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutput waits up to d for s in p's standard output.
func waitOutput(p *sandbox.Proc, s string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(p.Stdout(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// TestChrootFallback: where pivot_root(2) can't work (pasta runs in a
// chroot, whose root is no mount point, as on a tmpfs or initramfs root),
// pasta refuses to run unconfined, naming --chroot-fallback; with that
// option it chroots into its empty filesystem instead, and is otherwise as
// confined as ever (pasta(1), --chroot-fallback).
func TestChrootFallback(t *testing.T) {
	if sandbox.Reference() {
		t.Skip("the C pasta keeps capabilities (see TestConfinement)")
	}
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		dir := m.fileDir(t, sb)
		bin := sandbox.Binary(t)
		// A chroot holding what pasta needs, bound from the host, in a
		// mount namespace of the test's; the target is a network
		// namespace made there too, the chroot's only way to pasta's.
		script := `set -e
R=` + dir + `/chroot
mkdir -p $R/usr $R/dev $R/proc $R/etc $R/tmp $R/files $R` + filepath.Dir(bin) + `
for l in bin sbin lib lib64; do [ -L $R/$l ] || ln -s usr/$l $R/$l; done
mount --rbind /usr $R/usr; mount --rbind /dev $R/dev; mount --rbind /proc $R/proc
mount --bind /etc $R/etc; mount --bind ` + dir + ` $R/files; mount --bind ` + filepath.Dir(bin) + ` $R` + filepath.Dir(bin) + `
unshare --net sleep 60 </dev/null >/dev/null 2>&1 &
echo "target $!"
sleep 0.2
chroot $R ` + bin + ` --config-net --netns /proc/$!/ns/net -P /files/chroot.pid "$@"
`
		unshare := []string{"unshare", "--mount", "--propagation", "private"}
		if m.as == sandbox.Unprivileged {
			unshare = []string{"unshare", "--user", "--map-root-user", "--mount"}
		}
		run := func(t *testing.T, opts ...string) (sandbox.Result, int) {
			ctx := withTimeout(t, pastaTimeout)
			argv := append(append(unshare, "sh", "-c", script, "sh"), opts...)
			res := sandbox.Run(sb.Host(ctx, m.as, argv...))
			t.Logf("%s", res)
			for _, line := range strings.Split(res.Stdout, "\n") {
				if pid, err := strconv.Atoi(strings.TrimPrefix(line, "target ")); err == nil {
					sb.TrackPID(pid)
					return res, pid
				}
			}
			t.Fatalf("no target PID:\n%s", res)
			return res, 0
		}
		t.Run("refused", func(t *testing.T) {
			res, _ := run(t)
			if res.ExitCode != 1 || !strings.Contains(res.Stderr, "pivot_root") || !strings.Contains(res.Stderr, "--chroot-fallback") {
				t.Errorf("exit %d: want 1 and a message naming pivot_root and --chroot-fallback", res.ExitCode)
			}
		})
		t.Run("fallback", func(t *testing.T) {
			res, target := run(t, "--chroot-fallback")
			mustExit(t, res, 0)
			checkConfinedAs(t, readPIDFile(t, filepath.Join(dir, "chroot.pid")), rootOr(t, m, "65534"), true, true)
			pingFrom(t, sb, target)
		})
	})
}

// TestAutoLowPortConfined: -T auto keeps working for ports below 1024 once
// pasta has no capabilities: a server the host starts on its loopback's
// port 81 after pasta started is reached from the command's namespace
// through 127.0.0.1:81 (pasta lowers net.ipv4.ip_unprivileged_port_start
// in the namespace it created for its command).
func TestAutoLowPortConfined(t *testing.T) {
	tool := tcpToolProg.binary(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ctx := withTimeout(t, time.Minute)
		p := sb.Start(t, m.pasta(t, ctx, sb, "--config-net", "-T", "auto", "--", "sh", "-c",
			"echo STARTED; exec "+tool+" hello -retry 15s -c 127.0.0.1:81"))
		defer p.Kill()
		waitForLine(t, p, "STARTED", tcpServerReadyWait)
		time.Sleep(500 * time.Millisecond) // confined by now: its start takes well under that
		startServer(t, sb, sb.Host(ctx, sandbox.Root, tool, "serve", "-name", "HOST", "-l", "127.0.0.1:81"))
		if exited, err := p.Wait(20 * time.Second); !exited || err != nil {
			t.Fatalf("the client in the namespace: exited %v, %v; output:\n%s\n%s", exited, err, p.Stdout(), p.Stderr())
		}
		if greeting := toolLine(t, p.Stdout(), "HELLO"); greeting["name"] != "HOST" {
			t.Errorf("greeting %v, want the host's server", greeting)
		}
	})
}

// TestSignalsPassedOn: SIGTERM and SIGHUP sent to pasta reach its command,
// whose exit status pasta then returns, as root too, where pasta itself
// runs as nobody once confined and can't signal a command that runs as
// root (the launcher passes them on).
func TestSignalsPassedOn(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
			t.Run(sig.String(), func(t *testing.T) {
				ctx := withTimeout(t, pastaTimeout)
				script := `trap "exit 7" TERM; trap "exit 8" HUP; echo READY; while :; do sleep 0.1; done`
				p := sb.Start(t, m.pasta(t, ctx, sb, "--config-net", "--", "sh", "-c", script))
				defer p.Kill()
				waitForLine(t, p, "READY", tcpServerReadyWait)
				time.Sleep(300 * time.Millisecond) // pasta confined by now
				if err := p.Cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				exited, _ := p.Wait(5 * time.Second)
				want := map[syscall.Signal]int{syscall.SIGTERM: 7, syscall.SIGHUP: 8}[sig]
				if !exited || p.Cmd.ProcessState.ExitCode() != want {
					t.Errorf("after %v: exited %v (%v), want exit status %d from the command's trap; output:\n%s\n%s",
						sig, exited, p.Cmd.ProcessState, want, p.Stdout(), p.Stderr())
				}
			})
		}
	})
}

// TestLogFileConfined: the log file, opened before confinement, keeps
// taking lines after it, --log-size truncations included: a daemon
// tracing every frame (--trace) into a 1 KiB log serves pings, then logs
// that its target went away.
func TestLogFileConfined(t *testing.T) {
	if sandbox.Reference() {
		t.Skip("the C pasta's log file format differs")
	}
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		target := startTarget(t, m, sb)
		dir := m.fileDir(t, sb)
		logFile, pidFile := filepath.Join(dir, "pasta.log"), filepath.Join(dir, "log.pid")
		mustExit(t, m.runPasta(t, sb, "--config-net", "--trace", "-l", logFile, "--log-size", "1024", "-P", pidFile, strconv.Itoa(target)), 0)
		pid := readPIDFile(t, pidFile)
		sb.TrackPID(pid)
		ctx := withTimeout(t, pastaTimeout)
		out := sb.MustRun(t, sb.InPID(ctx, target, sandbox.Root, "ping", "-n", "-c", "5", "-i", "0.2", "-W", "5", sandbox.RemoteAddr4))
		checkPing(t, out, sandbox.RemoteAddr4, 5)
		if err := syscall.Kill(target, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if _, gone := sandbox.WaitGone(pid, 5*time.Second); !gone {
			t.Fatalf("pasta (PID %d) still running 5 s after its target died", pid)
		}
		b, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		if len(b) > 1024 || !strings.Contains(log, "log size limit reached") || !strings.Contains(log, "is gone: exiting") {
			t.Errorf("log file of %d bytes, want at most 1024, truncated once at least, ending with the target's end:\n%s", len(b), log)
		}
	})
}
