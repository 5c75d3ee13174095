package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// The options of pasta(1) 2026-10 that older pastas lacked: --splice-only
// (no tap device, only loopback traffic forwarded), --no-pidns (the command
// in pasta's PID namespace, with its /proc) and --stats DELAY (event counts
// on standard error).

const (
	spliceXferSize = 4 << 20
	statsPings     = 20                     // echo requests, one every statsPingGap
	statsPingGap   = 200 * time.Millisecond // so the run lasts about 4 s
)

// TestSpliceOnly: no tap in the namespace, only lo; a client on the host's
// loopback reaches the namespace's TCP and UDP servers through -t/-u (on
// the namespace's loopback: it has no other address), bytes checked both
// ways; the namespace reaches a server on the host's loopback through -T
// and -U; any other client of a -t port is reset at once.
func TestSpliceOnly(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		tcpTool, udpTool := tcpToolProg.binary(t), udpToolProg.binary(t)
		ctx := withTimeout(t, 3*time.Minute)

		t.Run("only-lo", func(t *testing.T) {
			res := m.runPasta(t, sb, "--splice-only", "--config-net", "--", "ip", "-j", "link", "show")
			mustExit(t, res, 0)
			links, err := sandbox.ParseLinks(res.Stdout)
			if err != nil {
				t.Fatal(err)
			}
			if len(links) != 1 || links[0].Ifname != "lo" {
				t.Errorf("links in the namespace: %s, want lo alone", res.Stdout)
			}
		})

		opts := []string{"--splice-only", "--config-net", "-t", "8080:8000", "-u", "8080:8000", "-T", "none", "-U", "none"}
		srv := nsServers(t, m, sb, opts, "", hostNsPort)
		defer srv.Kill()
		lo4, lo6 := netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()
		for _, tc := range []inboundCase{
			{"loopback-ipv4", true, "127.0.0.1", "8080", hostNsPort, lo4},
			{"loopback-ipv6", true, "::1", "8080", hostNsPort, lo6},
		} {
			t.Run(tc.name+"/tcp", func(t *testing.T) { tc.check(t, m, sb, ctx, tcpTool) })
			t.Run(tc.name+"/udp", func(t *testing.T) { udpWho(t, m, sb, ctx, udpTool, tc) })
		}
		t.Run("transfers", func(t *testing.T) {
			dst := hostPort("127.0.0.1", "8080")
			res := sandbox.Run(sb.Host(ctx, m.as, tcpTool, "up", "-c", dst, "-n", strconv.Itoa(spliceXferSize), "-seed", "7"))
			mustExit(t, res, 0)
			sum := streamSum(t, tcpTool, 7, spliceXferSize)
			if r := toolLine(t, res.Stdout, "REPLY"); r["bytes"] != strconv.Itoa(spliceXferSize) || r["sha256"] != sum {
				t.Errorf("upload: the server got %v, want %d bytes with sha256 %s", r, spliceXferSize, sum)
			}
			res = sandbox.Run(sb.Host(ctx, m.as, tcpTool, "down", "-c", dst, "-n", strconv.Itoa(spliceXferSize), "-seed", "8"))
			mustExit(t, res, 0)
			if r, sum := toolLine(t, res.Stdout, "RECV"), streamSum(t, tcpTool, 8, spliceXferSize); r["sha256"] != sum || r["err"] != "" {
				t.Errorf("download: got %v, want sha256 %s and end of file", r, sum)
			}
		})
		t.Run("others-reset", func(t *testing.T) {
			for _, dst := range []string{hostPort(sandbox.HostAddr4, "8080"), hostPort(sandbox.HostAddr6, "8080")} {
				for _, from := range []struct {
					name string
					in   func(context.Context, sandbox.As, ...string) *exec.Cmd
				}{{"host", sb.Host}, {"remote", sb.Remote}} {
					res := sandbox.Run(from.in(ctx, m.as, tcpTool, "await", "-c", dst, "-wait", "10s"))
					mustExit(t, res, 0)
					r := toolLine(t, res.Stdout, "AWAIT")
					if ms, _ := strconv.Atoi(r["ms"]); !closedByPasta(r) || time.Duration(ms)*time.Millisecond > hostResetMax {
						t.Errorf("%s client of %s: %v, want a reset within %v", from.name, dst, r, hostResetMax)
					}
				}
			}
			if n := len(toolLines(srv.Stdout(), "ACCEPT")); n != 2 {
				t.Errorf("the namespace's server accepted %d connections, want only the 2 from the loopback", n)
			}
		})
		if !sandbox.Reference() && !strings.Contains(srv.Stderr(), "No tap device") {
			t.Errorf("pasta did not say it runs without a tap:\n%s", srv.Stderr())
		}

		t.Run("namespace-to-host", func(t *testing.T) {
			hctx := withTimeout(t, time.Minute)
			startServer(t, sb, sb.Host(hctx, sandbox.Root, tcpTool, "serve", "-name", "HOSTLO",
				"-l", hostPort("127.0.0.1", tcpHostPort), "-l", hostPort("::1", tcpHostPort)))
			startServer(t, sb, sb.Host(hctx, sandbox.Root, udpTool, "serve", "-name", "HOSTLO",
				"-l", hostPort("127.0.0.1", tcpHostPort), "-l", hostPort("::1", tcpHostPort)))
			script := fmt.Sprintf("%[1]s hello -c 127.0.0.1:%[3]s && %[1]s hello -c [::1]:%[3]s && "+
				"%[2]s who -retry 3s -c 127.0.0.1:%[3]s && %[2]s who -retry 3s -c [::1]:%[3]s", tcpTool, udpTool, tcpHostPort)
			res := m.runPasta(t, sb, "--splice-only", "-t", "none", "-u", "none", "-T", tcpHostPort, "-U", tcpHostPort, "--", "sh", "-c", script)
			mustExit(t, res, 0)
			for _, word := range []string{"HELLO", "WHO"} {
				for _, l := range toolLines(res.Stdout, word) {
					if l["name"] != "HOSTLO" || !peerAddr(t, l["peer"]).IsLoopback() {
						t.Errorf("%s answer %v, want the host's loopback server, seeing a loopback client", word, l)
					}
				}
				if n := len(toolLines(res.Stdout, word)); n != 2 {
					t.Errorf("%d %s answers, want 2 (IPv4 and IPv6):\n%s", n, word, res.Stdout)
				}
			}
		})
	})
}

// TestNoPidns: with --no-pidns the command is not PID 1 of a new PID
// namespace but in pasta's own (here the machine's), with no /proc mounted
// for it, and what it leaves running outlives it; without, the opposite.
// It is refused with a PID or --netns.
func TestNoPidns(t *testing.T) {
	ownPidns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	// The command starts a sleep it leaves behind, and prints its own PID,
	// PID namespace and mounts on /proc, and the sleep's PID.
	script := `sleep 60 >/dev/null 2>&1 </dev/null &
echo "NS pid=$$ pidns=$(readlink /proc/self/ns/pid) procmounts=$(awk '$5 == "/proc"' /proc/self/mountinfo | wc -l) child=$!"`
	hostProcMounts := procMounts(t)
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		for _, tc := range []struct {
			name  string
			opts  []string
			ownNs bool // the command is in pasta's (the machine's) PID namespace, and what it leaves outlives it
		}{
			{"default", nil, false},
			{"no-pidns", []string{"--no-pidns"}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				args := append(append([]string{"--config-net"}, tc.opts...), "--", "sh", "-c", script)
				res := m.runPasta(t, sb, args...)
				mustExit(t, res, 0)
				got := toolLine(t, res.Stdout, "NS")
				child, err := strconv.Atoi(got["child"])
				if err != nil {
					t.Fatalf("no child PID in %q", res.Stdout)
				}
				if tc.ownNs {
					sb.TrackPID(child)
					defer syscall.Kill(child, syscall.SIGKILL)
				}
				switch {
				case tc.ownNs && (got["pid"] == "1" || got["pidns"] != ownPidns):
					t.Errorf("command: %v, want a PID of the machine's namespace %s", got, ownPidns)
				case !tc.ownNs && (got["pid"] != "1" || got["pidns"] == ownPidns):
					t.Errorf("command: %v, want PID 1 of a new PID namespace", got)
				}
				mounts, _ := strconv.Atoi(got["procmounts"])
				if tc.ownNs != (mounts == hostProcMounts) {
					t.Errorf("the command sees %d mounts on /proc, the machine %d; want a /proc of its own: %v", mounts, hostProcMounts, !tc.ownNs)
				}
				// pasta has exited, and so has the command. Its sleep lives
				// on only without a PID namespace of its own, whose end
				// kills everything in it.
				alive := sandbox.Alive(child)
				if !tc.ownNs {
					alive = sleepIn(got["pidns"])
				}
				if alive != tc.ownNs {
					t.Errorf("the command's background sleep (PID %d) outlived it: %v, want %v", child, alive, tc.ownNs)
				}
			})
		}
		for _, args := range [][]string{{"--no-pidns", "--netns", "/run/netns/nonexistent"}, {"--no-pidns", "1"}} {
			t.Run("refused/"+strings.Join(args[1:], "-"), func(t *testing.T) {
				res := m.runPasta(t, sb, args...)
				mustExit(t, res, 1)
				if lines := strings.Split(strings.TrimSpace(res.Stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "--no-pidns") {
					knownRefBug(t, "stderr %q: want one line naming --no-pidns", res.Stderr)
				}
			})
		}
	})
}

// procMounts counts the mounts on /proc in this process's mount namespace.
func procMounts(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == "/proc" {
			n++
		}
	}
	return n
}

// sleepIn tells whether a "sleep 60" is still running in the PID
// namespace pidns, waiting up to 2 s for it to go.
func sleepIn(pidns string) bool {
	deadline := time.Now().Add(2 * time.Second)
	for {
		found := false
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
			found = found || (err == nil && ns == pidns && strings.HasPrefix(sandbox.Cmdline(pid), "sleep 60"))
		}
		if !found || time.Now().After(deadline) {
			return found
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStats: --stats 1 while the namespace pings the remote every 200 ms
// for about 4 s, then waits 3 s: a header naming each kind of descriptor once, then lines
// of cumulative counts (one column per kind), at most about one a second,
// never two alike (a line only when there were events), the tap's count
// growing with the pings. --stats 0 prints nothing. It is refused in the
// background.
func TestStats(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ping := strings.Join(m.pingArgv(t, sb), " ")
		// The pings, then a quiet time in which lines would repeat if
		// they were printed without events.
		script := fmt.Sprintf("i=0; while [ $i -lt %d ]; do %s -c 1 -W 1 %s >/dev/null; sleep %g; i=$((i+1)); done; sleep 3",
			statsPings, ping, sandbox.RemoteAddr4, statsPingGap.Seconds())
		start := time.Now()
		// -f first: the C pasta wants it before --stats, even with a command.
		res := m.runPasta(t, sb, "--config-net", "-f", "--stats", "1", "--", "sh", "-c", script)
		took := time.Since(start)
		mustExit(t, res, 0)
		names, lines := statsOutput(res.Stderr)
		if len(names) == 0 {
			t.Fatalf("no header in stderr:\n%s", res.Stderr)
		}
		// At most one line a second, plus the first one and one for the
		// last partial second.
		if most := int(took/time.Second) + 2; len(lines) < 2 || len(lines) > most {
			t.Errorf("%d lines of counts in %v, want 2 to %d", len(lines), took, most)
		}
		tap := -1
		for i, n := range names {
			if strings.Contains(n, "tap") || strings.Contains(n, "tun") {
				tap = i
			}
		}
		for k, l := range lines {
			if len(l) != len(names) {
				t.Fatalf("line %d has %d counts for %d kinds:\n%s", k, len(l), len(names), res.Stderr)
			}
			if k == 0 {
				continue
			}
			same := true
			for i := range l {
				if l[i] < lines[k-1][i] {
					t.Errorf("column %q went down from %d to %d", names[i], lines[k-1][i], l[i])
				}
				same = same && l[i] == lines[k-1][i]
			}
			if same {
				t.Errorf("lines %d and %d are the same: printed without events", k, k+1)
			}
		}
		if last := lines[len(lines)-1]; tap < 0 || last[tap] < statsPings {
			t.Errorf("tap column %d: last counts %v, want at least %d events (one per echo request)", tap, last, statsPings)
		}

		t.Run("command-without-f", func(t *testing.T) {
			if sandbox.Reference() {
				t.Skip("NOTE: the C pasta wants -f before --stats even with a command (it checks while parsing)")
			}
			res := m.runPasta(t, sb, "--config-net", "--stats", "1", "--", "sh", "-c", ping+" -c 2 -W 1 "+sandbox.RemoteAddr4+" >/dev/null")
			mustExit(t, res, 0)
			if names, lines := statsOutput(res.Stderr); len(names) == 0 || len(lines) == 0 {
				t.Errorf("no statistics:\n%s", res.Stderr)
			}
		})
		t.Run("zero", func(t *testing.T) {
			res := m.runPasta(t, sb, "--config-net", "-f", "--stats", "0", "--", "sh", "-c", ping+" -c 2 -W 1 "+sandbox.RemoteAddr4+" >/dev/null")
			mustExit(t, res, 0)
			if names, lines := statsOutput(res.Stderr); len(names)+len(lines) != 0 {
				t.Errorf("--stats 0 printed statistics:\n%s", res.Stderr)
			}
		})
		t.Run("background-refused", func(t *testing.T) {
			res := m.runPasta(t, sb, "--stats", "1", "--netns", "/run/netns/nonexistent")
			mustExit(t, res, 1)
			if !strings.Contains(res.Stderr, "--stats") && !strings.Contains(res.Stderr, "statistics") {
				t.Errorf("stderr does not name --stats:\n%s", res.Stderr)
			}
		})
	})
}

// statsOutput parses --stats output among pasta's other messages: the
// names of the header (lines ending in a name after blanks and bars) and
// the lines of counts (lines of numbers only).
func statsOutput(stderr string) (names []string, lines [][]uint64) {
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var counts []uint64
		for _, x := range f {
			n, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				counts = nil
				break
			}
			counts = append(counts, n)
		}
		switch {
		case counts != nil:
			lines = append(lines, counts)
		case strings.HasPrefix(line, "       ") && strings.Trim(line[:7], " ") == "":
			names = append(names, strings.TrimSpace(strings.TrimLeft(line, " |")))
		}
	}
	return names, lines
}
