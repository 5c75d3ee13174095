//go:build hostile

package e2e

import (
	"bytes"
	_ "embed"
	"fmt"
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

// Built only with -tags hostile, and run by scripts/test.sh in a step of
// its own, after the other packages' tests: a load takes the machine's two
// cores, and beside the rest of the suite (the Podman tests above all) the
// storm's legitimate traffic fell to 83% and pasta's exit took 245 ms, so
// the figures would measure the machine, not pasta. By hand:
//
//	go test -tags hostile ./test -run 'TestHostile|TestExitWhileBusy' -v
//
// Hostile load from the namespace (issue 13): a UDP port spray, a SYN
// flood to an address that never answers, a storm of connections opened
// at once, and the namespace deleted while traffic flows. During each
// load, loadtool (testdata/loadtool) keeps legitimate traffic going from
// the same namespace to an echo server of its own in the remote netns
// (loadProbeAddr): requests on an established connection (their round
// trips), and new TCP connections and UDP flows. The load runs in worker
// processes and the probe in a process of its own, and the load's server
// is another process than the probe's: what the probe measures is pasta,
// not the Go runtime of a process with 20,000 connections. The test
// samples pasta's resident memory and descriptors all along, prints the
// figures, and checks them against the bounds below (for our binary; the
// reference's figures are only printed).

//go:embed testdata/loadtool/main.go
var loadToolSource string

var loadToolProg = &testTool{name: "loadtool", source: loadToolSource}

const (
	loadEchoPort  = "7007"
	loadBlackHole = "192.0.2.3" // a neighbour nobody answers for: SYNs to it vanish
	// loadProbeAddr is a second address of the remote netns, where the
	// probe's echo server listens: the storm's connections go to
	// RemoteAddr4, and one address may hold only 6/8 of pasta's TCP
	// connections (budget.go), so that connections to others still work.
	loadProbeAddr = "192.0.2.5"
	loadNofile    = 20000 // pasta's RLIMIT_NOFILE in these tests, as in the issue
	// The storm: 20,000 connections at once, as in the issue, from four
	// processes (one process may hold only RLIMIT_NOFILE sockets, 20000
	// on this machine, and raising the hard limit needs a privilege the
	// test may not have). pasta holds what its budget allows for one
	// address, 6/8 of the TCP share (5/8 of what the reserve leaves of
	// 20000 descriptors): 8758; it refuses the others with a RST.
	loadStormConn  = 20000
	loadStormProcs = 4
	loadStormHeld  = 8758
	loadMinSuccess = 0.90 // new flows that must work during a load
	// p99 of the round trips of requests on an established connection,
	// as the issue asks. On this 2-core machine with nothing else
	// running: spray 4-5 ms, flood 4.5-5 ms, storm 23-35 ms. The storm
	// saturates both cores for its first second (the guest's processes,
	// the server and pasta), so other work on the machine shows in its
	// figure at once: a storm whose p99 alone misses the bound is run
	// again, loadStormTries times at most, in a new sandbox; the other
	// checks hold for every run.
	loadMaxP99     = 50 * time.Millisecond
	loadStormTries = 3
	loadRSSGrowth  = 4 << 20 // after a load, RSS may exceed the start by this much
	loadExitMax    = 200 * time.Millisecond
)

// loadFigures is what one hostile run measured.
type loadFigures struct {
	peakRSS, beforeRSS, afterRSS int64 // bytes
	peakFDs, beforeFDs, afterFDs int
	cpu                          float64 // pasta's CPU seconds from the start of the load to SETTLED
	probe                        map[string]string
	load                         map[string]string
	stderr                       string
}

func (f loadFigures) String() string {
	return fmt.Sprintf("RSS MiB before %.1f peak %.1f after %.1f; descriptors before %d peak %d after %d; pasta CPU %.2f s; load %v; probe %v",
		mib(f.beforeRSS), mib(f.peakRSS), mib(f.afterRSS), f.beforeFDs, f.peakFDs, f.afterFDs, f.cpu, f.load, f.probe)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// withNofile makes cmd run with RLIMIT_NOFILE n (soft and hard), set by
// prlimit as root before nsenter and setpriv drop privileges.
func withNofile(t *testing.T, cmd *exec.Cmd, n int) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("prlimit")
	if err != nil {
		sandbox.RequireTools(t, "prlimit")
	}
	cmd.Args = append([]string{path, fmt.Sprintf("--nofile=%d:%d", n, n), "--"}, cmd.Args...)
	cmd.Path = path
	return cmd
}

// startEchoServers runs loadtool's TCP and UDP echo servers in the remote
// netns: one for the load on RemoteAddr4, one for the probe on
// loadProbeAddr, an address added to the remote netns for it. Listen
// queues there are as long as the kernel allows, so that the storm's
// server takes its connections as fast as pasta makes them.
func startEchoServers(t *testing.T, sb *sandbox.Sandbox, tool string) {
	t.Helper()
	sb.MustRemote(t, sandbox.Root, "ip", "addr", "add", loadProbeAddr+"/24", "dev", sandbox.RemoteIf)
	sb.MustRemote(t, sandbox.Root, "sysctl", "-qw", "net.core.somaxconn=65535")
	ctx := withTimeout(t, 5*time.Minute)
	for _, addr := range []string{sandbox.RemoteAddr4, loadProbeAddr} {
		p := sb.Start(t, sb.Remote(ctx, sandbox.Root, tool, "serve", "-addr", addr, "-port", loadEchoPort))
		waitForLine(t, p, "READY", 10*time.Second)
	}
}

// runHostile runs "loadtool ARGS -probe" under pasta (--config-net,
// RLIMIT_NOFILE nofile) and samples pasta while it runs.
func runHostile(t *testing.T, m mode, sb *sandbox.Sandbox, nofile int, args ...string) loadFigures {
	t.Helper()
	tool := loadToolProg.binary(t)
	startEchoServers(t, sb, tool)
	ctx := withTimeout(t, 90*time.Second)
	argv := append([]string{"--config-net", "--", tool}, args...)
	argv = append(argv, "-probe", hostPort(loadProbeAddr, loadEchoPort))

	cmd := withNofile(t, m.pasta(t, ctx, sb, argv...), nofile)
	p := sb.Start(t, cmd)
	pid := findPastaPID(t, p)
	s := startSampler(pid)
	defer s.stop()

	var f loadFigures
	waitForLine(t, p, "LOADING", 30*time.Second)
	f.beforeRSS, f.beforeFDs = sampleOnce(pid)
	cpuBefore := cpuSeconds(pid)
	waitForLine(t, p, "SETTLED", 80*time.Second)
	f.afterRSS, f.afterFDs = sampleOnce(pid)
	f.cpu = cpuSeconds(pid) - cpuBefore
	if exited, _ := p.Wait(20 * time.Second); !exited {
		t.Fatalf("pasta did not exit after loadtool\n[stdout]\n%s[stderr]\n%s", p.Stdout(), p.Stderr())
	}
	f.peakRSS, f.peakFDs = s.stop()
	f.load = toolLine(t, p.Stdout(), "LOAD-END")
	f.probe = toolLine(t, p.Stdout(), "PROBE")
	f.stderr = p.Stderr()
	t.Logf("%s (%s, RLIMIT_NOFILE %d): %s", strings.Join(args, " "), m.name, nofile, f)
	return f
}

// checkService checks the legitimate traffic of a run: new flows and the
// established connection.
func checkService(t *testing.T, f loadFigures) {
	t.Helper()
	if sandbox.Reference() {
		return
	}
	for _, proto := range []string{"tcp", "udp"} {
		n, _ := strconv.Atoi(f.probe[proto+"_new"])
		ok, _ := strconv.Atoi(f.probe[proto+"_ok"])
		if n == 0 || float64(ok) < loadMinSuccess*float64(n) {
			t.Errorf("%d of %d new %s flows worked during the load, want at least %.0f%%", ok, n, proto, 100*loadMinSuccess)
		}
	}
	if e := f.probe["rtt_error"]; e != "" {
		t.Errorf("the established connection failed during the load: %s", e)
	}
}

// p99Within tells whether the p99 of the requests on the established
// connection was under loadMaxP99, and says so if not.
func p99Within(t *testing.T, f loadFigures, report func(string, ...any)) bool {
	t.Helper()
	p99, err := strconv.ParseFloat(f.probe["p99_ms"], 64)
	if err != nil || p99 < 0 || time.Duration(p99*float64(time.Millisecond)) >= loadMaxP99 {
		report("p99 of requests on an established connection %s ms, want < %v (slowest, s@ms: %s)", f.probe["p99_ms"], loadMaxP99, f.probe["slowest"])
		return false
	}
	return true
}

// checkMemoryReturns checks that resident memory after a load is what it
// was before it, and that descriptors were not exhausted.
func checkMemoryReturns(t *testing.T, f loadFigures, nofile int) {
	t.Helper()
	if sandbox.Reference() {
		return
	}
	if f.afterRSS > f.beforeRSS+loadRSSGrowth {
		t.Errorf("resident memory %.1f MiB after the load, %.1f MiB before: grew by more than %d MiB",
			mib(f.afterRSS), mib(f.beforeRSS), loadRSSGrowth>>20)
	}
	if f.peakFDs > nofile*9/10 {
		t.Errorf("pasta held %d descriptors of its %d", f.peakFDs, nofile)
	}
}

// TestHostileUDPSpray: one datagram to each of 50,000 ports of the remote.
// UDP flows have a cap: pasta evicts the oldest idle ones, never holds
// more than its UDP share of descriptors, warns naming the pool, and new
// TCP connections and UDP flows keep working.
func TestHostileUDPSpray(t *testing.T) {
	eachModeAlone(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		f := runHostile(t, m, sb, loadNofile, "spray", "-dst", sandbox.RemoteAddr4, "-ports", "10001-60000", "-rate", "20000", "-settle", "2s")
		checkService(t, f)
		if sandbox.Reference() {
			return
		}
		p99Within(t, f, t.Errorf)
		if f.peakFDs > loadNofile/2 {
			t.Errorf("pasta held %d descriptors during the spray, want at most half of %d", f.peakFDs, loadNofile)
		}
		if !strings.Contains(f.stderr, "UDP flows") {
			t.Errorf("no warning naming the UDP pool in pasta's output:\n%s", f.stderr)
		}
	})
}

// TestHostileSYNFlood: 200,000 SYNs to an address that never answers.
// Half-open connects have a cap, the oldest is evicted for a new one, so
// connections to a live server keep working; memory comes back.
func TestHostileSYNFlood(t *testing.T) {
	eachModeAlone(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		sb.MustHost(t, sandbox.Root, "ip", "neigh", "replace", loadBlackHole, "lladdr", "02:00:00:00:00:03",
			"dev", sandbox.HostIf, "nud", "permanent")
		// Half-open connects time out after 10 s: settle past that.
		f := runHostile(t, m, sb, loadNofile, "flood", "-dst", hostPort(loadBlackHole, "80"), "-n", "200000", "-settle", "12s")
		checkService(t, f)
		checkMemoryReturns(t, f, loadNofile)
		if !sandbox.Reference() {
			p99Within(t, f, t.Errorf)
		}
	})
}

// TestHostileConnStorm: 20,000 connections opened at once to a live
// server, from four processes, held, then closed. pasta holds what its
// budget allows for one address and refuses the rest at once; meanwhile
// new connections and flows to another server work, and requests on an
// established connection are served.
func TestHostileConnStorm(t *testing.T) {
	for _, m := range []mode{userMode, rootMode} {
		t.Run(m.name, func(t *testing.T) {
			for try := 1; ; try++ {
				f := runHostile(t, m, sandbox.New(t), loadNofile, "storm", "-dst", hostPort(sandbox.RemoteAddr4, loadEchoPort),
					"-n", strconv.Itoa(loadStormConn), "-procs", strconv.Itoa(loadStormProcs), "-hold", "2s", "-limit", "30s", "-settle", "5s")
				checkService(t, f)
				checkMemoryReturns(t, f, loadNofile)
				if sandbox.Reference() {
					return
				}
				checkStormAnswered(t, f)
				if t.Failed() || p99Within(t, f, t.Logf) {
					return
				}
				if try == loadStormTries {
					p99Within(t, f, t.Errorf)
					return
				}
				t.Logf("run %d of %d at most: again", try, loadStormTries)
			}
		})
	}
}

// checkStormAnswered checks that pasta answered every connection of the
// storm: those its budget holds opened and carried their byte, the rest
// were refused, none was left waiting; and that it said why.
func checkStormAnswered(t *testing.T, f loadFigures) {
	t.Helper()
	opened, _ := strconv.Atoi(f.load["opened"])
	refused, _ := strconv.Atoi(f.load["refused"])
	if opened < loadStormHeld*9/10 || opened > loadStormHeld || opened+refused != loadStormConn {
		t.Errorf("storm: %d connections opened, %d refused, %s failed; want about %d opened, the other %d refused, none failed",
			opened, refused, f.load["failed"], loadStormHeld, loadStormConn-loadStormHeld)
	}
	if want := fmt.Sprintf("TCP connections: %d to or from one address", loadStormHeld); !strings.Contains(f.stderr, want) {
		t.Errorf("no warning %q in pasta's output:\n%s", want, f.stderr)
	}
}

// TestExitWhileBusy: the namespace goes away while traffic flows; pasta
// is gone within loadExitMax. As root, the named netns is deleted (ip
// netns del); as the test user, who cannot name namespaces, the process
// owning the namespace is killed (pasta PID, as Podman ran it).
func TestExitWhileBusy(t *testing.T) {
	eachModeAlone(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		tool := loadToolProg.binary(t)
		startEchoServers(t, sb, tool)
		ctx := withTimeout(t, 60*time.Second)
		pidFile := filepath.Join(m.fileDir(t, sb), "pasta.pid")
		var inNs func(argv ...string) *exec.Cmd
		var end func() // makes the namespace go away, and returns once it has
		if m.as == sandbox.Root {
			ns := sb.NewNetns(t)
			mustExit(t, m.runPasta(t, sb, "--config-net", "--netns", sandbox.NetnsPath(ns), "-P", pidFile), 0)
			inNs = func(argv ...string) *exec.Cmd { return sb.InNetns(ctx, ns, sandbox.Root, argv...) }
			end = func() { sb.DeleteNetns(t, ns) }
		} else {
			sleeper := sb.Start(t, sb.Host(ctx, m.as, "unshare", "--user", "--map-root-user", "--net", "sleep", "60"))
			spid := sleeper.Pid()
			deadline := time.Now().Add(5 * time.Second)
			for !(strings.HasPrefix(sandbox.Cmdline(spid), "sleep ") && !sb.InHostNetns(spid)) {
				if time.Now().After(deadline) {
					t.Fatalf("unshare ... sleep did not settle in its own netns within 5s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			mustExit(t, m.runPasta(t, sb, "--config-net", "-P", pidFile, strconv.Itoa(spid)), 0)
			inNs = func(argv ...string) *exec.Cmd { return sb.InPID(ctx, spid, m.as, argv...) }
			end = func() { _ = syscall.Kill(spid, syscall.SIGKILL) }
		}
		pid := readPIDFile(t, pidFile)
		sb.TrackPID(pid)
		load := sb.Start(t, inNs(tool, "soak", "-dst", hostPort(sandbox.RemoteAddr4, loadEchoPort), "-d", "30s", "-settle", "0s"))
		waitForLine(t, load, "LOADING", 10*time.Second)
		time.Sleep(2 * time.Second) // traffic is flowing
		end()
		d, gone := sandbox.WaitGone(pid, 5*time.Second) // from the moment the namespace is gone
		t.Logf("pasta gone %v after the namespace went away (gone: %v)", d.Round(time.Millisecond), gone)
		switch {
		case !gone:
			t.Errorf("pasta (PID %d) still running 5s after its namespace went away", pid)
		case d > loadExitMax && !sandbox.Reference():
			t.Errorf("pasta took %v to exit after its namespace went away, want < %v", d.Round(time.Millisecond), loadExitMax)
		}
	})
}

// eachModeAlone runs fn as subtests "user" then "root", one after the
// other and not in parallel with other tests of the package (Go runs
// tests that are not parallel before it releases the parallel ones): a
// hostile load takes the machine's two cores, and its figures would say
// nothing with another test's load beside it.
func eachModeAlone(t *testing.T, fn func(t *testing.T, m mode, sb *sandbox.Sandbox)) {
	for _, m := range []mode{userMode, rootMode} {
		t.Run(m.name, func(t *testing.T) { fn(t, m, sandbox.New(t)) })
	}
}

// --- sampling pasta ------------------------------------------------------------

// findPastaPID finds the process started by p (or one of its descendants)
// that holds the tap: pasta's data path.
func findPastaPID(t *testing.T, p *sandbox.Proc) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if pid := tapHolder(p.Pid()); pid != 0 {
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no descendant of PID %d holds /dev/net/tun\n[stderr]\n%s", p.Pid(), p.Stderr())
	return 0
}

func tapHolder(root int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !descendsFrom(pid, root) {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
		for _, fd := range fds {
			// A tun descriptor's fdinfo names its interface ("iff:"); its
			// path can't be used: once pasta is confined, /dev is not in
			// its mount namespace and the link reads "/net/tun".
			info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
			if bytes.Contains(info, []byte("\niff:\t")) {
				return pid
			}
		}
	}
	return 0
}

func descendsFrom(pid, root int) bool {
	for i := 0; i < 64 && pid > 1; i++ {
		if pid == root {
			return true
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return false
}

// sampleOnce reads a process's resident memory and descriptor count.
func sampleOnce(pid int) (rss int64, fds int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb << 10
		}
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rss, len(ents)
}

// cpuSeconds is the CPU time a process used so far, user and system.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // clock ticks: USER_HZ is 100 on Linux
}

// sampler records the peaks of a process's memory and descriptors.
type sampler struct {
	done     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
	peakRSS  int64
	peakFDs  int
	stopping sync.Mutex
}

func startSampler(pid int) *sampler {
	s := &sampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			rss, fds := sampleOnce(pid)
			s.stopping.Lock()
			s.peakRSS, s.peakFDs = max(s.peakRSS, rss), max(s.peakFDs, fds)
			s.stopping.Unlock()
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) stop() (int64, int) {
	s.once.Do(func() { close(s.done) })
	s.wg.Wait()
	s.stopping.Lock()
	defer s.stopping.Unlock()
	return s.peakRSS, s.peakFDs
}
