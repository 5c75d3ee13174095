package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The process model (see docs/architecture.md):
//
//   - pasta [-- CMD]: unless we already have CAP_SYS_ADMIN, the launcher
//     re-executes itself in a new user namespace where the caller is root
//     (stage "userns"). That process creates the network namespace on a
//     locked thread, configures it, then starts CMD in it, and exits with
//     CMD's status; the launcher exits with the same status.
//   - pasta PID / --netns PATH: the launcher re-executes itself as the
//     daemon (stage "daemon", new session, standard descriptors on
//     /dev/null), joining the target's user namespace if needed. The daemon
//     sets everything up and reports on a pipe; the launcher exits 0 only
//     once the daemon says it is ready. With -f the same process (or one
//     re-executed into the user namespace) stays in the foreground.
const envStage = "_GOPASTA_STAGE"

const (
	stageLauncher = ""        // as started by the user
	stageUserns   = "userns"  // re-executed into a user namespace, foreground
	stageDaemon   = "daemon"  // re-executed into the background
	stageCmdInit  = "cmdinit" // the command's first stage, see runCommandInit
	readyFD       = 3         // readiness pipe of the daemon, inherited as fd 3
	readyMessage  = "ready\n" // what the daemon writes once set up
)

// reexec prepares a command that runs this binary again with the same
// arguments in the given stage.
func reexec(stage string) *exec.Cmd {
	cmd := exec.Command(selfPath(), os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(withoutStageEnv(os.Environ()), envStage+"="+stage)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	return cmd
}

// selfPath is this binary's path. Executing it by name rather than through
// /proc/self/exe keeps the process name "pasta" for ps, pgrep and Podman.
func selfPath() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/proc/self/exe"
}

func withoutStageEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "_GOPASTA_") {
			out = append(out, e)
		}
	}
	return out
}

// hasCapSysAdmin tells whether this process holds CAP_SYS_ADMIN in its own
// user namespace, which creating and entering network namespaces needs.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}

// runInNewUserns re-executes this binary in a new user namespace that maps
// the caller to root, forwards termination signals to it, and returns its
// exit status.
func runInNewUserns() int {
	cmd := reexec(stageUserns)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWUSER
	cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
	cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
	cmd.SysProcAttr.GidMappingsEnableSetgroups = false
	cmd.SysProcAttr.Pdeathsig = unix.SIGKILL
	return runAndWait(cmd)
}

// runInUserns re-executes this binary inside the existing user namespace at
// path, in the foreground, and returns its exit status.
func runInUserns(path string) int {
	cmd := reexec(stageUserns)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(cmd.Env, envJoinUserns+"="+path)
	cmd.SysProcAttr.Pdeathsig = unix.SIGKILL
	return runAndWait(cmd)
}

// runAndWait starts cmd, passes SIGTERM and SIGHUP on to it, ignores the
// terminal's SIGINT and SIGQUIT (the child gets them too and decides), and
// returns the child's exit status the way a shell reports it.
func runAndWait(cmd *exec.Cmd) int {
	begin, end := forwardSignals()
	defer end()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	begin(cmd.Process)
	err := cmd.Wait()
	return exitStatus(cmd.ProcessState, err)
}

// exitStatus converts a finished process into a shell-style exit status.
func exitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		if err != nil {
			return 1
		}
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// startDaemon re-executes this binary in the background, in a new session
// with its standard descriptors on /dev/null, and waits until it reports
// that it is ready. It returns the exit status for the launcher: 0 once the
// daemon is ready, 1 (after printing the daemon's error) otherwise.
func startDaemon(userns string) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	cmd := reexec(stageDaemon)
	cmd.ExtraFiles = []*os.File{w} // becomes readyFD
	cmd.SysProcAttr.Setsid = true
	cmd.Env = append(cmd.Env, envReportFD+"="+strconv.Itoa(readyFD))
	if userns != "" {
		cmd.Env = append(cmd.Env, envJoinUserns+"="+userns)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	w.Close()
	msg := readAll(r)
	if msg == readyMessage {
		_ = cmd.Process.Release()
		return 0
	}
	if msg == "" {
		_ = cmd.Wait()
		msg = "the background process exited during setup"
	}
	fmt.Fprintf(os.Stderr, "pasta: %s\n", strings.TrimSuffix(strings.TrimPrefix(msg, "pasta: "), "\n"))
	return 1
}

// readAll reads r until EOF, bounded to a reasonable message size.
func readAll(r *os.File) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for b.Len() < 64*1024 {
		n, err := r.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	r.Close()
	return b.String()
}

// daemonReporter is the daemon's end of the readiness pipe.
type daemonReporter struct{ f *os.File }

func newDaemonReporter() *daemonReporter {
	return &daemonReporter{os.NewFile(readyFD, "ready")}
}

// ready tells the launcher that setup is complete, and detaches the standard
// descriptors, so that a parent reading our output (Podman) sees EOF.
func (d *daemonReporter) ready() {
	redirectStdioToNull()
	detachLogging(lg.level >= levelDebug)
	_, _ = d.f.WriteString(readyMessage)
	d.f.Close()
}

// fail hands the setup error to the launcher, which prints it.
func (d *daemonReporter) fail(err error) {
	_, _ = d.f.WriteString(err.Error() + "\n")
	d.f.Close()
}

func redirectStdioToNull() {
	null, err := unix.Open("/dev/null", unix.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := 0; fd <= 2; fd++ {
		_ = unix.Dup3(null, fd, 0)
	}
	if null > 2 {
		unix.Close(null)
	}
}

// nsPathForPID names the namespace files of a process.
func nsPathForPID(pid int, kind string) string {
	return fmt.Sprintf("/proc/%d/ns/%s", pid, kind)
}

// sameNamespace tells whether two namespace files refer to one namespace.
func sameNamespace(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// usernsToJoin returns the user namespace a target (PID or --netns) asks us
// to join, or "" when we stay where we are (C pasta's --netns-only, implied
// by --netns without --userns).
func usernsToJoin(cfg *config) string {
	path := cfg.userns
	if path == "" && cfg.targetPID != 0 && !cfg.netnsOnly {
		path = nsPathForPID(cfg.targetPID, "user")
	}
	if path == "" || sameNamespace(path, "/proc/self/ns/user") {
		return ""
	}
	return path
}

// nsThread is an OS thread that lives in the target network namespace for
// pasta's whole life: the tap, the namespace's netlink socket, sockets for
// the namespace side of spliced connections, and the command are all made
// on it. A thread that entered a namespace can't always come back (an
// unprivileged user may enter a namespace it owns but not return to the
// host's, which belongs to the initial user namespace), so no thread ever
// switches back: this one stays locked and dies with pasta. Go starts new
// threads from a clean template thread while a locked thread is in a
// foreign namespace, so the rest of the runtime is unaffected.
type nsThread struct {
	calls chan func()
}

// startNsThread starts the namespace thread; enter moves it into the
// namespace (unshare or setns).
func startNsThread(enter func() error) (*nsThread, error) {
	t := &nsThread{calls: make(chan func())}
	entered := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must not be reused
		if err := enter(); err != nil {
			entered <- err
			return
		}
		entered <- nil
		for f := range t.calls {
			f()
		}
	}()
	if err := <-entered; err != nil {
		return nil, err
	}
	return t, nil
}

// do runs f on the namespace thread and returns its error.
func (t *nsThread) do(f func() error) error {
	done := make(chan error, 1)
	t.calls <- func() { done <- f() }
	return <-done
}

// newNetnsThread creates a new network namespace, with the namespace thread
// in it. The caller needs CAP_SYS_ADMIN in its user namespace.
func newNetnsThread() (*nsThread, error) {
	return startNsThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("creating network namespace: %w", err)
		}
		return nil
	})
}

// joinNetnsThread starts the namespace thread in the namespace at path.
func joinNetnsThread(path string) (*nsThread, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("can't open network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	return startNsThread(func() error {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("can't join network namespace %s: %w", path, err)
		}
		return nil
	})
}

// netnsTargetPath is the namespace file named by --netns or PID.
func netnsTargetPath(cfg *config) string {
	if cfg.netns != "" {
		return cfg.netns
	}
	return nsPathForPID(cfg.targetPID, "net")
}

// defaultShell is what pasta runs when no command is given.
func defaultShell() []string {
	if sh := os.Getenv("SHELL"); sh != "" {
		return []string{sh}
	}
	return []string{"/bin/sh"}
}

// nobody is the account pasta switches to when started as root (pasta(1),
// --runas) if the user database has no "nobody".
const nobodyID = 65534

// dropPrivileges switches to the --runas user once set up, or, when pasta
// runs as root without --runas, to nobody, like C pasta. A default switch
// that the user namespace can't express (an unmapped ID) is skipped; an
// explicit --runas that fails is an error.
func dropPrivileges(cfg *config) error {
	if cfg.runas == "" && os.Geteuid() != 0 {
		return nil
	}
	spec := cfg.runas
	if spec == "" {
		spec = "nobody"
	}
	uid, gid, err := lookupRunas(spec)
	if err != nil {
		return fmt.Errorf("--runas: %v", err)
	}
	if uid == os.Geteuid() && gid == os.Getegid() {
		return nil
	}
	_ = syscall.Setgroups(nil) // refused where setgroups is denied (our own user namespace)
	err = syscall.Setgid(gid)
	if err == nil {
		err = syscall.Setuid(uid)
	}
	if err != nil && cfg.runas != "" {
		return fmt.Errorf("--runas: switching to %d:%d: %v", uid, gid, err)
	}
	if err != nil && debugOn() {
		debugf("staying %d:%d: can't switch to %d:%d: %v", os.Geteuid(), os.Getegid(), uid, gid, err)
	}
	return nil
}

// lookupRunas resolves UID, UID:GID, LOGIN or LOGIN:GROUP; a lone UID or
// LOGIN brings its primary group.
func lookupRunas(spec string) (int, int, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	uid, gid, err := lookupUser(name)
	if err != nil {
		return 0, 0, err
	}
	if hasGroup {
		if gid, err = lookupGroup(group); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

func lookupUser(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		u, err = user.LookupId(name)
	}
	if err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return uid, gid, nil
	}
	if id, convErr := strconv.Atoi(name); convErr == nil && id >= 0 {
		return id, id, nil // a numeric ID without an account
	}
	if name == "nobody" {
		return nobodyID, nobodyID, nil
	}
	return 0, 0, fmt.Errorf("no user '%s'", name)
}

func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		g, err = user.LookupGroupId(name)
	}
	if err == nil {
		gid, _ := strconv.Atoi(g.Gid)
		return gid, nil
	}
	if id, convErr := strconv.Atoi(name); convErr == nil && id >= 0 {
		return id, nil
	}
	return 0, fmt.Errorf("no group '%s'", name)
}
