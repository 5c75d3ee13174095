package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Confinement is what /proc shows of how confined a process is: the
// fields of its status, each thread's capability sets, its mounts, what
// its root holds, and whether its PID namespace is the caller's. Read it as
// root: /proc/PID/root and mountinfo of another user's process need
// CAP_SYS_PTRACE.
type Confinement struct {
	PID         int
	Status      map[string]string            // /proc/PID/status, by field name
	Threads     map[string]map[string]string // /proc/PID/task/TID/status, by TID
	Mounts      []string                     // /proc/PID/mountinfo lines
	RootEntries []string                     // names in /proc/PID/root
	OwnPIDNS    bool                         // /proc/PID/ns/pid is not this process's
}

// capFields are the capability sets of proc(5)'s status.
var capFields = []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}

// ReadConfinement reads the confinement of process pid.
func ReadConfinement(pid int) (*Confinement, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	c := &Confinement{PID: pid, Threads: map[string]map[string]string{}}
	var err error
	if c.Status, err = readStatus(filepath.Join(dir, "status")); err != nil {
		return nil, err
	}
	tasks, err := filepath.Glob(filepath.Join(dir, "task", "*", "status"))
	if err != nil {
		return nil, err
	}
	for _, path := range tasks {
		if st, err := readStatus(path); err == nil { // else the thread ended
			c.Threads[filepath.Base(filepath.Dir(path))] = st
		}
	}
	mounts, err := os.ReadFile(filepath.Join(dir, "mountinfo"))
	if err != nil {
		return nil, err
	}
	c.Mounts = strings.Split(strings.TrimSpace(string(mounts)), "\n")
	entries, err := os.ReadDir(filepath.Join(dir, "root"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		c.RootEntries = append(c.RootEntries, e.Name())
	}
	theirs, err := os.Readlink(filepath.Join(dir, "ns", "pid"))
	if err != nil {
		return nil, err
	}
	ours, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return nil, err
	}
	c.OwnPIDNS = theirs != ours
	return c, nil
}

func readStatus(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// Problems lists where c falls short of how pasta confines itself once
// running (docs/security.md): the seccomp filter with no_new_privs, no
// capability left in any thread, the user uid (as /proc shows it to us;
// "": any),
// an empty read-only tmpfs as its root and as its only mount (unless
// chroot: --chroot-fallback leaves the old mounts, unreachable), and a PID
// namespace of its own exactly when ownPIDNS.
func (c *Confinement) Problems(uid string, ownPIDNS, chroot bool) []string {
	var p []string
	if c.Status["Seccomp"] != "2" || c.Status["NoNewPrivs"] != "1" {
		p = append(p, fmt.Sprintf("Seccomp %q, NoNewPrivs %q: want 2 and 1", c.Status["Seccomp"], c.Status["NoNewPrivs"]))
	}
	if ids := strings.Fields(c.Status["Uid"]); uid != "" && (len(ids) != 4 || ids[0] != uid || ids[1] != uid || ids[2] != uid) {
		p = append(p, fmt.Sprintf("Uid %q: want %s", c.Status["Uid"], uid))
	}
	if len(c.Threads) == 0 {
		p = append(p, "no thread listed")
	}
	for tid, st := range c.Threads {
		for _, f := range capFields {
			if st[f] != "0000000000000000" {
				p = append(p, fmt.Sprintf("thread %s: %s %s: want none", tid, f, st[f]))
			}
		}
	}
	if len(c.RootEntries) != 0 {
		p = append(p, fmt.Sprintf("its root holds %v: want nothing", c.RootEntries))
	}
	if !chroot && (len(c.Mounts) != 1 || !rootIsEmptyTmpfs(c.Mounts[0])) {
		p = append(p, fmt.Sprintf("mounts:\n%s\nwant only a read-only tmpfs on /", strings.Join(c.Mounts, "\n")))
	}
	if c.OwnPIDNS != ownPIDNS {
		p = append(p, fmt.Sprintf("PID namespace of its own: %v, want %v (NSpid %q)", c.OwnPIDNS, ownPIDNS, c.Status["NSpid"]))
	}
	if ids := strings.Fields(c.Status["NSpid"]); ownPIDNS && (len(ids) < 2 || ids[len(ids)-1] != "1") {
		p = append(p, fmt.Sprintf("NSpid %q: want PID 1 of its namespace", c.Status["NSpid"]))
	}
	return p
}

// rootIsEmptyTmpfs tells whether a mountinfo line (proc(5)) is a read-only
// tmpfs mounted on /.
func rootIsEmptyTmpfs(line string) bool {
	pre, post, ok := strings.Cut(line, " - ")
	f, g := strings.Fields(pre), strings.Fields(post)
	return ok && len(f) >= 6 && len(g) >= 1 && f[4] == "/" && g[0] == "tmpfs" && strings.HasPrefix(f[5], "ro,")
}
