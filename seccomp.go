package main

import (
	"fmt"

	seccomp "github.com/seccomp/libseccomp-golang"
)

// Once set up, pasta confines itself with a seccomp filter (seccomp(2)):
// only the system calls below are allowed, anything else kills the
// process. The list has what the event loop, its handlers and the Go
// runtime under them use after set-up; calls made only while setting up
// (creating namespaces and the tap, netlink configuration, starting the
// command) are not in it. The filter applies to every thread (TSYNC) and
// comes with PR_SET_NO_NEW_PRIVS. The whole end-to-end suite runs with it.

// seccompAllowed lists the system calls pasta may make once running.
var seccompAllowed = []string{
	// The Go runtime: memory, threads, signals, time, scheduling.
	"mmap", "munmap", "mprotect", "madvise", "brk", "mremap",
	"futex", "clone", "clone3", "exit", "exit_group", "gettid", "getpid", "tgkill", "tkill",
	"set_robust_list", "rseq", // glibc, starting a thread for the runtime (cgo)
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday", "sched_yield",
	"sched_getaffinity", "getrlimit", "prlimit64", "getrandom", "uname",
	"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd2", "pipe2",
	"fcntl", "openat", "fstat", "newfstatat", "lseek", "pread64", "read", "write", "writev", "close",
	"dup", "dup2", "dup3",
	"restart_syscall",

	// The data path: sockets for flows and forwarded ports, splice pipes.
	"socket", "connect", "bind", "listen", "accept4", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername", "ioctl",
	"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "splice",

	// The command and the log: reaping and signalling the command, the log
	// file's size limit.
	"waitid", "wait4", "kill", "pidfd_send_signal", "ftruncate",
}

// installSeccomp loads the filter into every thread of the process (the
// library asks for SECCOMP_FILTER_FLAG_TSYNC itself).
func installSeccomp() error {
	filter, err := seccomp.NewFilter(seccomp.ActKillProcess)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	defer filter.Release()
	for _, name := range seccompAllowed {
		call, err := seccomp.GetSyscallFromName(name)
		if err != nil {
			continue // not a system call on this architecture
		}
		if err := filter.AddRule(call, seccomp.ActAllow); err != nil {
			return fmt.Errorf("seccomp: allowing %s: %w", name, err)
		}
	}
	if err := filter.SetNoNewPrivsBit(true); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	if err := filter.Load(); err != nil {
		return fmt.Errorf("seccomp: loading the filter: %w", err)
	}
	return nil
}
