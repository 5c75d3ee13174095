package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The process model (see docs/architecture.md). The process the user
// started, the launcher, never runs the event loop: it re-executes this
// binary as the stage that does, which the constructor in preinit.go puts
// into namespaces of its own before Go starts, so that once set up it can
// confine itself (confine.go):
//
//   - pasta [-- CMD]: stage "foreground", in a new user namespace where the
//     caller is root unless the launcher has CAP_SYS_ADMIN. It creates the
//     network namespace on a locked thread, configures it, starts CMD in
//     it, and exits with CMD's status; the launcher waits, passing signals
//     on, and exits with the same status.
//   - pasta PID / --netns PATH: stage "daemon" (new session, standard
//     descriptors on /dev/null once ready), joining the target's user
//     namespace if needed, PID 1 of a PID namespace of its own. It sets
//     everything up and reports on a pipe; the launcher exits 0 only once
//     the daemon says it is ready.
//   - the same with -f: stage "foreground", joining the target's user
//     namespace if needed; the launcher waits for it.
const envStage = "_GOPASTA_STAGE"

const (
	stageLauncher   = ""               // as started by the user
	stageForeground = "foreground"     // runs the loop, the launcher waiting for it
	stageDaemon     = "daemon"         // runs the loop in the background
	stageCmdInit    = "cmdinit"        // the command's first stage, see runCommandInit
	readyFD         = 3                // readiness pipe of the daemon, inherited as fd 3
	readyMessage    = "ready\n"        // what the daemon writes once set up
	envTargetPidfd  = "_GOPASTA_PIDFD" // descriptor number of the target's pidfd, if passed on
)

// stageCmd prepares a command that runs this binary again with the same
// arguments as the given stage, joining the user namespace at userns
// unless it is "", with files passed on as descriptors 3, 4, ...
func stageCmd(stage, userns string, files []*os.File) *exec.Cmd {
	cmd := exec.Command(selfPath(), os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(withoutStageEnv(os.Environ()), envStage+"="+stage, envKeepFDs+"="+strconv.Itoa(3+len(files)))
	cmd.Env = append(cmd.Env, stageGodebug()...)
	if userns != "" {
		cmd.Env = append(cmd.Env, envJoinUserns+"="+userns)
	}
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	return cmd
}

// passFile adds f, if not nil, to the descriptors a stage inherits, and
// names its number in the stage's environment variable env.
func passFile(cmd *exec.Cmd, f *os.File, env string) {
	if f == nil {
		return
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	fd := 2 + len(cmd.ExtraFiles)
	// os/exec keeps the last of duplicate variables: envKeepFDs grows.
	cmd.Env = append(cmd.Env, env+"="+strconv.Itoa(fd), envKeepFDs+"="+strconv.Itoa(fd+1))
}

// inheritedFD is the descriptor that the variable env names (passFile), or
// -1.
func inheritedFD(env string) int {
	fd, err := strconv.Atoi(os.Getenv(env))
	if err != nil {
		return -1
	}
	return fd
}

// openTargetPidfd opens a pidfd of the process given as PID, whose exit
// ends pasta (unless --no-netns-quit). The launcher opens it and passes it
// on: the daemon lives in a PID namespace of its own, where the target has
// no PID.
func openTargetPidfd(cfg *config) (*os.File, error) {
	if cfg.targetPID == 0 || cfg.noNetnsQuit {
		return nil, nil
	}
	fd, err := unix.PidfdOpen(cfg.targetPID, 0)
	if err != nil {
		return nil, fmt.Errorf("watching PID %d: %w", cfg.targetPID, err)
	}
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// selfPath is this binary's path. Executing it by name rather than through
// /proc/self/exe keeps the process name "pasta" for ps, pgrep and Podman.
func selfPath() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/proc/self/exe"
}

// envUserGodebug carries the user's GODEBUG, if set, past a stage that runs
// with its own (stageGodebug); the stage puts it back (restoreUserGodebug).
const envUserGodebug = "_GOPASTA_GODEBUG"

// loopGodebug is the Go runtime setting of the stages, which run the event
// loop. asyncpreemptoff=1: the loop's goroutine never gives up its thread
// (LockOSThread) and spends its time in raw system calls (spinWait,
// splice), so once it has run for 10 ms Go's monitor thread asks to
// preempt it with a SIGURG at every tick of its own, thousands of signals a
// second that each interrupt a system call and run a handler that cannot
// preempt a goroutine in a system call anyway (bench/cost.sh tcp-crr: 2,457
// signals in 2,000 connections, 6% of pasta's CPU per connection). Without
// it, the goroutine is still preempted, at its next function call.
const loopGodebug = "asyncpreemptoff=1"

// stageGodebug is the environment that gives a stage loopGodebug ahead of
// the user's own settings (the runtime applies the last of a name).
func stageGodebug() []string {
	user, ok := os.LookupEnv("GODEBUG")
	if !ok {
		return []string{"GODEBUG=" + loopGodebug}
	}
	return []string{"GODEBUG=" + loopGodebug + "," + user, envUserGodebug + "=" + user}
}

// restoreUserGodebug puts back the GODEBUG the user gave (or its absence),
// so that the command pasta starts gets the user's environment. The runtime
// read loopGodebug at start already.
func restoreUserGodebug() {
	if user, ok := os.LookupEnv(envUserGodebug); ok {
		_ = os.Setenv("GODEBUG", user)
	} else {
		_ = os.Unsetenv("GODEBUG")
	}
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
func hasCapSysAdmin() bool { return hasCap(unix.CAP_SYS_ADMIN) }

// runForegroundStage runs this binary as the foreground stage and returns
// its exit status. With newUserns, the stage gets a new user namespace
// that maps the caller to root; else it joins userns, if not "".
func runForegroundStage(cfg *config, newUserns bool, userns string, pidfd *os.File) int {
	cmd := stageCmd(stageForeground, userns, nil)
	passFile(cmd, pidfd, envTargetPidfd)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr.Pdeathsig = unix.SIGKILL
	if newUserns {
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = false
	}
	var command atomic.Int32 // the command's PID, once the stage tells
	var ours *os.File        // the pipe's end the stage writes to
	if commandMode(cfg) {
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
			return 1
		}
		passFile(cmd, w, envCommandPIDFD)
		ours = w
		go readCommandPID(r, &command)
	}
	return runAndWait(cmd, ours, func() int {
		if pid := command.Load(); pid > 0 {
			return int(pid)
		}
		return cmd.Process.Pid
	})
}

// The command's signals. With a command, the launcher passes SIGTERM and
// SIGHUP on to the command itself, not to pasta: pasta started as root
// runs as nobody once confined, and may no longer signal a command that
// runs as root; the launcher, which started both, always may. The stage
// tells the launcher the command's PID on a pipe (envCommandPIDFD).
const envCommandPIDFD = "_GOPASTA_CMDPID_FD"

// readCommandPID reads the PID the stage writes, one line, into pid.
func readCommandPID(r *os.File, pid *atomic.Int32) {
	defer r.Close()
	line, _ := bufio.NewReader(io.LimitReader(r, 32)).ReadString('\n')
	if n, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && n > 0 {
		pid.Store(int32(n))
	}
}

// commandPIDPipe is the stage's end of that pipe, or nil; close-on-exec, so
// that the command doesn't inherit it.
func commandPIDPipe() *os.File {
	fd := inheritedFD(envCommandPIDFD)
	if fd < 0 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "command PID")
}

// tellCommandPID sends the command's PID to the launcher.
func tellCommandPID(f *os.File, pid int) {
	if f == nil {
		return
	}
	_, _ = fmt.Fprintf(f, "%d\n", pid)
	f.Close()
}

// runAndWait starts cmd, closes passed (a descriptor only the child keeps,
// if not nil), passes SIGTERM and SIGHUP on to target() (cmd's process, or
// the command it started), ignores the terminal's SIGINT and SIGQUIT (the
// child gets them too and decides), and returns the child's exit status the
// way a shell reports it.
func runAndWait(cmd *exec.Cmd, passed *os.File, target func() int) int {
	begin, end := forwardSignals()
	defer end()
	err := cmd.Start()
	if passed != nil {
		passed.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	begin(target)
	err = cmd.Wait()
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

// startDaemon re-executes this binary in the background, in a new session,
// joining userns if not "", and waits until it reports that it is ready.
// It returns the exit status for the launcher: 0 once the daemon is ready,
// 1 (after printing the daemon's error) otherwise.
func startDaemon(userns string, pidfd *os.File) int {
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	cmd := stageCmd(stageDaemon, userns, []*os.File{w}) // w becomes readyFD
	passFile(cmd, pidfd, envTargetPidfd)
	cmd.SysProcAttr.Setsid = true
	cmd.Env = append(cmd.Env, envReportFD+"="+strconv.Itoa(readyFD))
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	w.Close()
	msg := readAll(r)
	// The process started is gone already (see preinit.go), or is about to
	// be: collect it.
	_ = cmd.Wait()
	if msg == readyMessage {
		return 0
	}
	if msg == "" {
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

// ready tells the launcher that setup is complete. Our standard
// descriptors are /dev/null from the start (startDaemon), so a parent
// reading the launcher's output (Podman) sees EOF once the launcher exits.
func (d *daemonReporter) ready() {
	_, _ = d.f.WriteString(readyMessage)
	d.f.Close()
}

// fail hands the setup error to the launcher, which prints it.
func (d *daemonReporter) fail(err error) {
	_, _ = d.f.WriteString(err.Error() + "\n")
	d.f.Close()
}

// outsidePID is our PID as the processes around us see it: the daemon is
// PID 1 of its own PID namespace (preinit.go), but /proc, still the one of
// the namespace we were started in, names us by our PID there. Call it
// before confinement.
func outsidePID() int {
	if self, err := os.Readlink("/proc/self"); err == nil {
		if pid, err := strconv.Atoi(self); err == nil {
			return pid
		}
	}
	return os.Getpid()
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

// idSwitch is the user and group pasta becomes once set up, if set.
type idSwitch struct {
	set      bool
	uid, gid int
}

// planIDSwitch works out whom to become once set up: the --runas user, or,
// when pasta runs as root without --runas, nobody, like C pasta. A default
// switch that can't be made (an ID the user namespace doesn't map, as in
// pasta's own namespace for rootless commands, or no CAP_SETUID) is
// skipped; an explicit --runas that can't is an error. The user database
// is read here, while it can be.
func planIDSwitch(cfg *config) (idSwitch, error) {
	if cfg.runas == "" && os.Geteuid() != 0 {
		return idSwitch{}, nil
	}
	spec := cfg.runas
	if spec == "" {
		spec = "nobody"
	}
	uid, gid, err := lookupRunas(spec)
	if err != nil {
		return idSwitch{}, fmt.Errorf("--runas: %v", err)
	}
	if uid == os.Geteuid() && gid == os.Getegid() {
		return idSwitch{}, nil
	}
	why := ""
	switch {
	case !idMapped("/proc/self/uid_map", uid) || !idMapped("/proc/self/gid_map", gid):
		why = "not mapped in this user namespace"
	case !hasCap(unix.CAP_SETUID) || !hasCap(unix.CAP_SETGID):
		why = "no CAP_SETUID and CAP_SETGID"
	}
	if why == "" {
		return idSwitch{set: true, uid: uid, gid: gid}, nil
	}
	if cfg.runas != "" {
		return idSwitch{}, fmt.Errorf("--runas: can't switch to %d:%d: %s", uid, gid, why)
	}
	if debugOn() {
		debugf("staying %d:%d: can't switch to %d:%d: %s", os.Geteuid(), os.Getegid(), uid, gid, why)
	}
	return idSwitch{}, nil
}

// idMapped tells whether id has a mapping in an ID map of
// user_namespaces(7): lines of "inside outside count".
func idMapped(path string, id int) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		var inside, outside, count int64
		if n, _ := fmt.Sscan(line, &inside, &outside, &count); n == 3 && int64(id) >= inside && int64(id) < inside+count {
			return true
		}
	}
	return false
}

// hasCap tells whether this thread holds capability c, effective.
func hasCap(c uint) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
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
