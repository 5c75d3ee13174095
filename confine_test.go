package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Tests of confinement that need a process of their own: the test binary
// runs itself again with envTestChild naming what the child does
// (childActions), in a new user namespace where it has every capability,
// so that they run without root too.

const envTestChild = "GOPASTA_TEST_CHILD"

// childActions are what a child process can be asked to do; each exits
// the process.
var childActions = map[string]func(){
	"drop-caps": childDropCaps,
	"seccomp":   childSeccomp,
}

// TestMain runs a child's action instead of the tests when asked to.
func TestMain(m *testing.M) {
	if what := os.Getenv(envTestChild); what != "" {
		action, ok := childActions[strings.SplitN(what, ":", 2)[0]]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child action %q\n", what)
			os.Exit(2)
		}
		action()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild runs the test binary as a child doing what, as root of a new
// user namespace, and returns how it ended and what it printed.
func runChild(t *testing.T, what string) (*os.ProcessState, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envTestChild+"="+what)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the child: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("child %q still running after 30 s; output:\n%s", what, out.String())
	}
	return cmd.ProcessState, out.String()
}

// startBusyThreads starts n goroutines locked to threads of their own, each
// waking every millisecond, so that the process has threads in every state
// (running, sleeping in a futex, in a system call) when it drops.
func startBusyThreads(n int) {
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			started.Done()
			for {
				time.Sleep(time.Millisecond)
			}
		}()
	}
	started.Wait()
}

// threadCaps lists, for every thread, its capability lines from
// /proc/self/task/TID/status.
func threadCaps() (map[string]string, error) {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		return nil, err
	}
	caps := map[string]string{}
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the thread is gone
		}
		var lines []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "Cap") {
				lines = append(lines, strings.Join(strings.Fields(line), " "))
			}
		}
		caps[filepath.Base(filepath.Dir(path))] = strings.Join(lines, ", ")
	}
	return caps, nil
}

// childDropCaps drops capabilities with busy threads around, starts more
// threads, and prints each thread's capabilities.
func childDropCaps() {
	startBusyThreads(8)
	taskDir, err := unix.Open("/proc/self/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = dropCredentialsEverywhere(taskDir, idSwitch{})
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	startBusyThreads(4)
	caps, err := threadCaps()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for tid, c := range caps {
		fmt.Printf("thread %s: %s\n", tid, c)
	}
}

// TestDropCapabilitiesEveryThread: after dropCredentialsEverywhere, no
// thread of the process has any capability left, threads started later
// neither, and the bounding set is empty.
func TestDropCapabilitiesEveryThread(t *testing.T) {
	ps, out := runChild(t, "drop-caps")
	if !ps.Success() {
		t.Fatalf("child: %v\n%s", ps, out)
	}
	threads := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "thread ") {
			continue
		}
		threads++
		for _, field := range strings.Split(line[strings.Index(line, ":")+1:], ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(field), " ")
			if value != "0000000000000000" {
				t.Errorf("%s: %s is %s, want none", line[:strings.Index(line, ":")], name, value)
			}
		}
	}
	if threads < 13 {
		t.Errorf("saw %d threads, want at least 13 (main, 8 before, 4 after):\n%s", threads, out)
	}
}

// forbiddenCalls are system calls the filter must refuse, by kind, each
// made the way a subverted pasta might.
var forbiddenCalls = map[string]func() error{
	// A process, not a thread: what os/exec does.
	"fork": func() error {
		_, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
		return err
	},
	// An ioctl request the loop never makes (the terminal's size).
	"ioctl": func() error {
		_, err := unix.IoctlGetWinsize(1, unix.TIOCGWINSZ)
		return err
	},
	// Socket families and types the loop doesn't use.
	"socket-unix":    func() error { return socketErr(unix.AF_UNIX, unix.SOCK_STREAM, 0) },
	"socket-netlink": func() error { return socketErr(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE) },
	"socket-packet":  func() error { return socketErr(unix.AF_PACKET, unix.SOCK_RAW, 0) },
	"socket-raw":     func() error { return socketErr(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP) },
	// A file of the host.
	"openat": func() error {
		f, err := os.Open("/etc/passwd")
		if err == nil {
			f.Close()
		}
		return err
	},
	// Signals to anyone but ourselves and the command: here, our parent.
	"kill": func() error { return unix.Kill(os.Getppid(), 0) },
	// Namespaces, mounts and identity.
	"unshare": func() error { return unix.Unshare(unix.CLONE_NEWNET) },
	"mount":   func() error { return unix.Mount("none", "/mnt", "tmpfs", 0, "") },
	"setuid":  func() error { return unix.Setresuid(0, 0, 0) },
}

func socketErr(family, typ, proto int) error {
	fd, err := unix.Socket(family, typ, proto)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// childSeccomp installs pasta's filter, with a sleeping process as the
// command, and makes the call named after "seccomp:": "allowed" makes the
// calls the loop needs, which must work; the others, forbiddenCalls, must
// kill the process. It prints "filtered" once the filter is in, and
// "survived" if it got to the end.
func childSeccomp() {
	which := strings.TrimPrefix(os.Getenv(envTestChild), "seccomp:")
	command := exec.Command("sleep", "30")
	if err := command.Start(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := installSeccomp(seccompParams{self: os.Getpid(), command: command.Process.Pid}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("filtered")
	if which == "allowed" {
		if err := allowedCalls(command); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
	} else if err := forbiddenCalls[which](); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("survived")
}

// allowedCalls makes what the loop needs under the filter: new threads,
// sockets of each kind, the SIOCOUTQ ioctl, a signal to the command, and
// clone3, which must fail with ENOSYS (so that glibc uses clone).
func allowedCalls(command *exec.Cmd) error {
	startBusyThreads(4)
	for _, s := range [][3]int{
		{unix.AF_INET, unix.SOCK_STREAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC, 0},
		{unix.AF_INET6, unix.SOCK_STREAM, 0},
		{unix.AF_INET, unix.SOCK_DGRAM, 0},
		{unix.AF_INET6, unix.SOCK_DGRAM | unix.SOCK_CLOEXEC, 0},
	} {
		fd, err := unix.Socket(s[0], s[1], s[2])
		if err != nil {
			return fmt.Errorf("socket %v: %w", s, err)
		}
		if s[1]&0xf == unix.SOCK_STREAM {
			if _, err := ioctlInt(fd, unix.SIOCOUTQ); err != nil {
				return fmt.Errorf("SIOCOUTQ: %w", err)
			}
		}
		unix.Close(fd)
	}
	// Ping sockets may be refused by net.ipv4.ping_group_range, but not
	// by the filter.
	if err := socketErr(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP); err != nil && err != unix.EACCES {
		return fmt.Errorf("ping socket: %w", err)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0); e != unix.ENOSYS {
		return fmt.Errorf("clone3: %v, want ENOSYS", e)
	}
	if err := unix.Kill(command.Process.Pid, unix.SIGTERM); err != nil {
		return fmt.Errorf("kill of the command: %w", err)
	}
	if err := command.Wait(); err == nil {
		return fmt.Errorf("the command survived SIGTERM")
	}
	return nil
}

// TestSeccompAllows: under the filter, the calls the loop needs work.
func TestSeccompAllows(t *testing.T) {
	ps, out := runChild(t, "seccomp:allowed")
	if !ps.Success() || !strings.Contains(out, "survived") {
		t.Fatalf("child: %v\n%s", ps, out)
	}
}

// TestSeccompKills: each forbidden kind of call kills the process with
// SIGSYS, after the filter is in.
func TestSeccompKills(t *testing.T) {
	for name := range forbiddenCalls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ps, out := runChild(t, "seccomp:"+name)
			ws, _ := ps.Sys().(syscall.WaitStatus)
			if !strings.Contains(out, "filtered") || strings.Contains(out, "survived") || !ws.Signaled() || ws.Signal() != unix.SIGSYS {
				t.Fatalf("child ended with %v, want killed by SIGSYS after loading the filter; output:\n%s", ps, out)
			}
		})
	}
}
