package podman

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopasta/test/sandbox"
)

// checkConfined checks, from the host, the confinement of the pasta that
// Podman started (rootless, inside its user namespace, --netns PATH): the
// process line is one of a script's "pastas", whose PID is the one in the
// runner's PID namespace. Our pasta runs in a PID namespace of its own
// below that one, so its NSpid on the host reads "HOST RUNNER 1".
func checkConfined(t *testing.T, w *world, line string) {
	t.Helper()
	if w.pasta == "" {
		return // the C pasta keeps capabilities: see docs/security.md
	}
	runnerPID := strings.Fields(line)[0]
	statuses, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, path := range statuses {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			ids := strings.Fields(strings.TrimPrefix(l, "NSpid:"))
			if !strings.HasPrefix(l, "NSpid:") || len(ids) != 3 || ids[1] != runnerPID {
				continue
			}
			pid, _ := strconv.Atoi(ids[0])
			c, err := sandbox.ReadConfinement(pid)
			if err != nil {
				t.Fatalf("pasta (PID %s on the host): %v", ids[0], err)
			}
			// The user pasta switches to, nobody of Podman's user
			// namespace, is some subordinate ID of the host: not checked.
			for _, p := range c.Problems("", true, false) {
				t.Errorf("pasta (PID %s on the host): %s", ids[0], p)
			}
			t.Logf("pasta (PID %s on the host): Uid %s, CapEff %s, CapBnd %s, Seccomp %s, NoNewPrivs %s, NSpid %s; mounts: %s",
				ids[0], c.Status["Uid"], c.Status["CapEff"], c.Status["CapBnd"], c.Status["Seccomp"], c.Status["NoNewPrivs"],
				c.Status["NSpid"], strings.Join(c.Mounts, " | "))
			return
		}
	}
	t.Errorf("no process on the host with NSpid \"* %s 1\" for pasta %q", runnerPID, line)
}
