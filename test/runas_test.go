package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// TestRunas: started as root, the daemon gives up root once set up: to
// nobody by default (pasta(1), --runas), or to the --runas user; it keeps
// serving the namespace, and has no capabilities left. An unknown user
// fails at once. Root only: an unprivileged pasta has no one to switch to.
func TestRunas(t *testing.T) {
	if sandbox.Reference() {
		t.Skip("the reference C pasta can't run as root here without --runas 0 (see README)")
	}
	t.Parallel()
	sb := sandbox.New(t)
	for _, tc := range []struct {
		name     string
		opts     []string
		uid, gid string
	}{
		{"default", nil, "65534", "65534"},
		{"uid:gid", []string{"--runas", "12345:23456"}, "12345", "23456"},
		{"root", []string{"--runas", "0"}, "0", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := sb.NewNetns(t)
			pidFile := filepath.Join(rootMode.fileDir(t, sb), tc.name+".pid")
			args := append([]string{"--config-net", "--netns", sandbox.NetnsPath(ns), "-P", pidFile}, tc.opts...)
			if res := rootMode.runPasta(t, sb, args...); res.ExitCode != 0 {
				t.Fatalf("pasta exited %d", res.ExitCode)
			}
			pid := readPIDFile(t, pidFile)
			sb.TrackPID(pid)
			status, err := os.ReadFile(filepathForPID(pid))
			if err != nil {
				t.Fatal(err)
			}
			fields := statusFields(string(status))
			if got := strings.Fields(fields["Uid"]); len(got) != 4 || got[0] != tc.uid || got[1] != tc.uid {
				t.Errorf("Uid %q, want %s", fields["Uid"], tc.uid)
			}
			if got := strings.Fields(fields["Gid"]); len(got) != 4 || got[0] != tc.gid {
				t.Errorf("Gid %q, want %s", fields["Gid"], tc.gid)
			}
			if fields["Seccomp"] != "2" || fields["NoNewPrivs"] != "1" {
				t.Errorf("Seccomp %q, NoNewPrivs %q: want the filter loaded (2) with no_new_privs", fields["Seccomp"], fields["NoNewPrivs"])
			}
			if tc.uid != "0" && fields["CapEff"] != "0000000000000000" {
				t.Errorf("CapEff %s: capabilities left after switching to %s", fields["CapEff"], tc.uid)
			}
			ctx := withTimeout(t, pastaTimeout)
			out := sb.MustRun(t, sb.InNetns(ctx, ns, sandbox.Root, "ping", "-n", "-c", "1", "-W", "2", sandbox.RemoteAddr4))
			checkPing(t, out, sandbox.RemoteAddr4, 1)
			sb.DeleteNetns(t, ns)
			if _, gone := sandbox.WaitGone(pid, 2*time.Second); !gone {
				t.Errorf("pasta (PID %d) still running after ip netns del", pid)
			}
		})
	}
	t.Run("unknown user", func(t *testing.T) {
		res := rootMode.runPasta(t, sb, "--runas", "no-such-user-here", "--config-net", "--", "true")
		if res.ExitCode != 1 || !strings.Contains(res.Stderr, "no-such-user-here") {
			t.Fatalf("exit %d, stderr %q: want 1 and a message naming the user", res.ExitCode, res.Stderr)
		}
	})
}

func filepathForPID(pid int) string { return filepath.Join("/proc", strconv.Itoa(pid), "status") }

// statusFields splits /proc/PID/status into its fields.
func statusFields(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}
