// Command pasta is gopasta: a user-mode network helper that connects a
// network namespace to the host's network through a tap device, translating
// the namespace's frames into ordinary host sockets. It is a drop-in
// replacement for pasta(1) from the passt project.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"gopasta/internal/version"
)

const versionString = version.String

func main() {
	os.Exit(run())
}

// run parses the command line and dispatches to the stage this process
// plays in the process model (see isolation.go).
func run() int {
	if os.Getenv(envStage) == stageCmdInit {
		return runCommandInit(os.Args[1], os.Args[2:])
	}
	cfg, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	if cfg.showHelp {
		fmt.Print(pastaCommand.Usage())
		return 0
	}
	if cfg.showVersion {
		fmt.Println(versionString) // one line: Podman shows all of it in podman info
		return 0
	}
	if cfg.runas != "" {
		if _, _, err := lookupRunas(cfg.runas); err != nil {
			fmt.Fprintf(os.Stderr, "pasta: --runas: %v\n", err)
			return 1
		}
	}
	switch os.Getenv(envStage) {
	case stageForeground:
		restoreUserGodebug()
		return runForeground(cfg)
	case stageDaemon:
		restoreUserGodebug()
		return runDaemon(cfg)
	}
	return launch(cfg)
}

// commandMode tells whether pasta creates the namespace and runs a command
// in it, rather than joining an existing namespace.
func commandMode(cfg *config) bool {
	return cfg.targetPID == 0 && cfg.netns == ""
}

// launch is the process the user started: it starts the stage that does
// the work (see isolation.go) and returns the exit status.
func launch(cfg *config) int {
	pidfd, err := openTargetPidfd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	if commandMode(cfg) {
		return runForegroundStage(cfg, !hasCapSysAdmin(), "", nil)
	}
	userns := usernsToJoin(cfg)
	if !cfg.foreground {
		return startDaemon(userns, pidfd)
	}
	return runForegroundStage(cfg, false, userns, pidfd)
}

// runForeground sets up and runs pasta in the foreground stage.
func runForeground(cfg *config) int {
	c, err := setup(cfg)
	if err == nil {
		err = writePidFile(cfg.pidFile)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	if commandMode(cfg) {
		pidPipe := commandPIDPipe()
		if err := c.startCommand(cfg.command); err != nil {
			fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
			return commandStartStatus(err)
		}
		tellCommandPID(pidPipe, c.commandPID())
	}
	if err := c.confine(); err != nil {
		fmt.Fprintf(os.Stderr, "pasta: %v\n", err)
		return 1
	}
	return c.loopUntilDone()
}

// runDaemon is the background process: it reports setup success or failure
// to the launcher through the readiness pipe.
func runDaemon(cfg *config) int {
	rep := newDaemonReporter()
	c, err := setup(cfg)
	if err == nil {
		err = writePidFile(cfg.pidFile)
	}
	if err == nil {
		detachLogging(lg.level >= levelDebug)
		err = c.confine()
	}
	if err != nil {
		rep.fail(err)
		return 1
	}
	rep.ready()
	return c.loopUntilDone()
}

// loopUntilDone runs the event loop and returns pasta's exit status.
func (c *ctx) loopUntilDone() int {
	err := c.run()
	if debugOn() {
		s := &c.stats
		debugf("frames: %d in, %d out; dropped: %d malformed, %d unsupported, %d ICMP, %d UDP; errors: %d reading, %d writing",
			s.rxFrames, s.txFrames, s.malformed, s.unsupported, s.icmpDropped, s.udpDropped, s.rxErrors, s.txErrors)
		debugf("UDP super-frames: %d in, %d out", s.udpSuperIn, s.udpSuperOut)
		debugf("new flows: %d frames waited for theirs, %d dropped with the queue full", c.admit.queued, c.admit.dropped)
	}
	if err != nil {
		errorf("%v", err)
		return 1
	}
	return c.exitCode
}

// commandStartStatus is the exit status when the command can't be started,
// as a shell reports it: 127 when not found, 126 otherwise.
func commandStartStatus(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return 127
	}
	return 126
}

// writePidFile writes our PID as those who read the file see it (see
// outsidePID).
func writePidFile(path string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(outsidePID())+"\n"), 0o644); err != nil {
		return fmt.Errorf("--pid: %v", err)
	}
	return nil
}

// raiseFileLimit lets pasta use as many descriptors as it may: every flow
// holds a socket.
func raiseFileLimit() {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
}

// The main goroutine keeps the process's first thread, so that the thread
// moved into the target namespace (see nsThread) is never the thread-group
// leader, whose namespaces /proc/PID/ns and tools like nsenter show.
func init() { runtime.LockOSThread() }
