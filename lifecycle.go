package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// How pasta ends: with a command, when the command exits (with its status);
// with PID or --netns, when the process or the namespace file goes away
// (unless --no-netns-quit); always on SIGTERM, SIGINT and SIGHUP, except
// that with a command SIGINT and SIGQUIT come from the terminal and are the
// command's business, and SIGTERM and SIGHUP are passed on to it.

// childProc is the command pasta runs in the namespace.
// (Its pidfd, in the epoll set, stays open for pasta's life.)
type childProc struct {
	cmd *exec.Cmd
}

// nsWatch notices the namespace going away.
// With pasta PID, a pidfd of the target in the epoll set does the same.
type nsWatch struct {
	inotifyFD int    // watching the folder of the --netns file
	name      string // the file's name in that folder
}

// pendingSignal is set by the signal goroutine and read by the loop.
var pendingSignal atomic.Int32

// setupLifecycle arms the exit conditions: signals, and for PID or --netns
// the disappearance of the target.
func (c *ctx) setupLifecycle(nsPath string) error {
	if err := c.setupSignals(); err != nil {
		return err
	}
	if commandMode(c.cfg) || c.cfg.noNetnsQuit {
		return nil
	}
	if c.cfg.targetPID != 0 {
		fd := inheritedFD(envTargetPidfd) // see openTargetPidfd
		if fd < 0 {
			return fmt.Errorf("watching PID %d: no pidfd from the launcher", c.cfg.targetPID)
		}
		return c.epollAdd(fd, unix.EPOLLIN, makeRef(kindPidfd, 0))
	}
	return c.watchNetnsFile(nsPath)
}

// watchNetnsFile watches the folder of the namespace file for its removal
// (ip netns del and Podman unmount and delete it).
func (c *ctx) watchNetnsFile(path string) error {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_DELETE|unix.IN_MOVED_FROM); err != nil {
		unix.Close(fd)
		return fmt.Errorf("watching %s: %w", filepath.Dir(path), err)
	}
	c.watch = &nsWatch{inotifyFD: fd, name: filepath.Base(path)}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	return c.epollAdd(fd, unix.EPOLLIN, makeRef(kindNetnsWatch, 0))
}

// netnsWatchReadable ends pasta when the namespace file was removed.
func (c *ctx) netnsWatchReadable() {
	var buf [4096]byte
	for {
		n, err := unix.Read(c.watch.inotifyFD, buf[:])
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			if string(bytes.TrimRight(nameBytes, "\x00")) == c.watch.name {
				infof("namespace %s is gone: exiting", c.watch.name)
				c.stop(0)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// pidfdReadable handles the exit of the command or of the target process.
func (c *ctx) pidfdReadable() {
	if c.child == nil {
		infof("target process %d is gone: exiting", c.cfg.targetPID)
		c.stop(0)
		return
	}
	err := c.child.cmd.Wait()
	c.stop(exitStatus(c.child.cmd.ProcessState, err))
}

// setupSignals routes signals into the loop through an eventfd.
func (c *ctx) setupSignals() error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	c.wakeFD = fd
	if commandMode(c.cfg) {
		signal.Ignore(unix.SIGINT, unix.SIGQUIT)
	}
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, unix.SIGTERM, unix.SIGHUP, unix.SIGINT)
	go func() {
		one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
		for s := range ch {
			pendingSignal.Store(int32(s.(syscall.Signal)))
			_, _ = unix.Write(fd, one)
		}
	}()
	return c.epollAdd(fd, unix.EPOLLIN, makeRef(kindWake, 0))
}

// wakeReadable acts on a signal: pass it to the command, or exit.
func (c *ctx) wakeReadable() {
	var buf [8]byte
	_, _ = unix.Read(c.wakeFD, buf[:])
	sig := unix.Signal(pendingSignal.Swap(0))
	if sig == 0 {
		return
	}
	if c.child != nil {
		// kill(2) by PID, which the seccomp filter checks, rather than
		// os.Process.Signal's pidfd_send_signal(2): the PID can't be
		// reused before we collect the command's status.
		_ = unix.Kill(c.child.cmd.Process.Pid, sig)
		return
	}
	infof("%v: exiting", sig)
	c.stop(0)
}

// startCommand runs the command (default: the user's shell) in the
// namespace, with our standard descriptors, and watches for its exit. Like
// C pasta, it gets its own PID, mount, UTS and IPC namespaces: it is PID 1
// there, with a /proc of its own and the host name "pasta-HOSTNAME", and
// whatever it leaves running ends with it; with --no-pidns it stays in
// pasta's PID namespace (pasta(1)). The namespaces are set up by this
// binary re-executed as the command's first stage (runCommandInit), which
// then executes the command in its place.
func (c *ctx) startCommand(argv []string) error {
	if len(argv) == 0 {
		argv = defaultShell()
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	cmd := exec.Command(selfPath(), append([]string{path}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(withoutStageEnv(os.Environ()), envStage+"="+stageCmdInit)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC}
	if !c.cfg.noPidns {
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWPID
	}
	if err := c.ns.do(cmd.Start); err != nil {
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("pidfd_open: %w", err)
	}
	c.child = &childProc{cmd: cmd}
	return c.epollAdd(fd, unix.EPOLLIN, makeRef(kindPidfd, 0))
}

// forwardSignals, used by a launcher waiting for its re-executed self,
// passes SIGTERM and SIGHUP on and ignores the terminal's SIGINT and
// SIGQUIT, which reach the child directly. Call it before starting the
// child; begin, once the child runs, with what to signal (a PID, asked
// for each signal); end, once it has exited.
func forwardSignals() (begin func(target func() int), end func()) {
	signal.Ignore(unix.SIGINT, unix.SIGQUIT)
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, unix.SIGTERM, unix.SIGHUP)
	begin = func(target func() int) {
		go func() {
			for s := range ch {
				_ = unix.Kill(target(), s.(syscall.Signal))
			}
		}()
	}
	end = func() {
		signal.Stop(ch)
		close(ch)
	}
	return begin, end
}

// warnOnce logs a warning the first time a flag is seen unset.
func warnOnce(done *bool, format string, args ...any) {
	if *done {
		return
	}
	*done = true
	warnf(format, args...)
}

// warnKind names a warning that is logged at most once a second: a
// guest, or a host client, can make pasta hit it for every packet.
type warnKind uint8

const (
	warnTableFull    warnKind = iota // the flow table is full
	warnDstQuota                     // too many half-open connects to one address
	warnPeerConns                    // too many TCP connections to or from one address
	warnAdmitFull                    // the admission queue is full
	warnNoSource                     // a forwarded peer has no address the guest could see
	warnNoAnswer                     // the guest never answered a forwarded connection
	warnAcceptFailed                 // accept(2) on a forwarded port failed
	warnCtlRefused                   // the control socket refused another user's client
	warnKinds
)

// warnRateLimited logs a warning of a kind at most once a second.
func (c *ctx) warnRateLimited(kind warnKind, format string, args ...any) {
	if c.warnDue(kind) {
		warnf(format, args...)
	}
}

// warnDue tells whether a warning of a kind may be logged now, and if so
// takes its turn: callers on the per-frame path check it before building
// the warning's arguments, which would allocate.
func (c *ctx) warnDue(kind warnKind) bool {
	if c.now < c.nextWarn[kind] {
		return false
	}
	c.nextWarn[kind] = c.now + int64(1e9)
	return true
}

// runCommandInit is the command's first stage, PID 1 of its new PID
// namespace: it mounts a /proc for that namespace in its own mount
// namespace (kept from propagating back), names the host, and executes the
// command, which keeps PID 1. With --no-pidns it is not PID 1, and the
// /proc it has is the right one already.
func runCommandInit(path string, argv []string) int {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err == nil && os.Getpid() == 1 {
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			fmt.Fprintf(os.Stderr, "pasta: mounting /proc for the command: %v\n", err)
		}
	}
	if host, err := os.Hostname(); err == nil {
		_ = unix.Sethostname([]byte("pasta-" + host))
	}
	err := unix.Exec(path, argv, withoutStageEnv(os.Environ()))
	fmt.Fprintf(os.Stderr, "pasta: %s: %v\n", argv[0], err)
	return commandStartStatus(err)
}
