package main

// #include <malloc.h>
import "C"

import (
	"fmt"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Once set up, pasta confines itself with a seccomp filter (seccomp(2)):
// only the system calls of seccompRules are allowed, some only with given
// arguments; anything else kills the process (SECCOMP_RET_KILL_PROCESS,
// reported as SIGSYS). Calls made only while setting up (namespaces, the
// tap, netlink, files, starting the command) are not in it. The filter
// applies to every thread (TSYNC) and comes with PR_SET_NO_NEW_PRIVS. The
// end-to-end and Podman suites run with it; TestSeccompKills* prove that
// what it leaves out is refused.
//
// Adding a call is adding a line to seccompRules, with its reason.

// seccompParams are the values some rules compare arguments with.
type seccompParams struct {
	self    int // our PID, as we see it (1 for the daemon: preinit.go)
	command int // the command's PID, or 0 without one
}

// scRule allows one form of a system call: all of args must hold (none:
// any arguments), and several rules for one call allow any of their forms.
// With errno set, the call fails with it instead of running.
type scRule struct {
	name  string
	args  []scArg
	errno unix.Errno
	skip  bool // not needed in this configuration
	why   string
}

// scArg compares argument index of a call: (arg & mask) == value.
type scArg struct {
	index       uint
	mask, value uint64
}

// is and masked build argument conditions.
func is(index uint, value uint64) scArg           { return scArg{index, ^uint64(0), value} }
func masked(index uint, mask, value uint64) scArg { return scArg{index, mask, value} }

// Argument values, as the kernel sees them.
const (
	sockTypeMask = 0xf // SOCK_STREAM, SOCK_DGRAM...: the type without SOCK_NONBLOCK and SOCK_CLOEXEC
	// The flags of a new thread, as the Go runtime and glibc's
	// pthread_create give them; a process (fork) lacks CLONE_THREAD and
	// CLONE_VM, and none of the namespace flags may come along.
	cloneCheckedFlags = unix.CLONE_THREAD | unix.CLONE_VM | unix.CLONE_SIGHAND | unix.CLONE_FS | unix.CLONE_FILES |
		unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID |
		unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
	cloneThreadFlags = unix.CLONE_THREAD | unix.CLONE_VM | unix.CLONE_SIGHAND | unix.CLONE_FS | unix.CLONE_FILES
	ioctlRequestMask = 0xffffffff // the request is an unsigned int (ioctl(2))
)

// seccompRules is the filter: a line per system call (or per allowed form
// of one) that pasta makes once confined, with why.
func seccompRules(p seccompParams) []scRule {
	self, command := uint64(p.self), uint64(p.command)
	return []scRule{
		// The Go runtime and glibc under it: memory, threads, signals, time.
		{name: "mmap", why: "Go heap and stacks, glibc thread stacks"},
		{name: "munmap", why: "Go returning memory, glibc thread stacks"},
		{name: "mprotect", why: "glibc thread stack guard pages"},
		{name: "madvise", why: "Go's scavenger returning memory, glibc freeing stacks"},
		{name: "brk", why: "glibc's free(), releasing libseccomp's copy of this filter once loaded"},
		{name: "prctl", args: []scArg{is(0, unix.PR_SET_VMA), is(1, unix.PR_SET_VMA_ANON_NAME)}, why: "Go naming its memory mappings (GODEBUG decoratemappings)"},
		{name: "futex", why: "Go's locks and sleeping threads"},
		{name: "clone", args: []scArg{masked(0, cloneCheckedFlags, cloneThreadFlags)}, why: "a thread for the Go runtime, never a process or a namespace"},
		{name: "clone3", errno: unix.ENOSYS, why: "glibc's pthread_create tries it first; its flags are in memory, out of the filter's sight: ENOSYS makes glibc use clone, checked above"},
		{name: "set_robust_list", why: "glibc starting a thread"},
		{name: "rseq", why: "glibc starting a thread"},
		{name: "exit", why: "a thread ending"},
		{name: "exit_group", why: "pasta ending"},
		{name: "gettid", why: "Go runtime"},
		{name: "getpid", why: "Go runtime, signalling its own threads"},
		{name: "tgkill", args: []scArg{is(0, self)}, why: "Go's preemption signals to its own threads, and to itself"},
		{name: "kill", args: []scArg{is(0, self)}, why: "the Go runtime raising a signal in itself (a fatal one, to die of it)"},
		{name: "rt_sigaction", why: "the Go runtime dying of a fatal signal (SIGQUIT): it restores the default action first"},
		{name: "rt_sigprocmask", why: "Go runtime, new threads"},
		{name: "rt_sigreturn", why: "returning from a signal handler"},
		{name: "sigaltstack", why: "Go runtime, new threads"},
		{name: "restart_syscall", why: "a call interrupted by a signal"},
		{name: "nanosleep", why: "Go runtime"},
		{name: "clock_nanosleep", why: "Go runtime"},
		{name: "clock_gettime", why: "time, where the vDSO can't"},
		{name: "gettimeofday", why: "time, where the vDSO can't"},
		{name: "sched_yield", why: "Go runtime; the event loop between polls while it spins (spinWait)"},
		{name: "sched_getaffinity", why: "Go checking the number of CPUs for GOMAXPROCS"},
		{name: "getrandom", why: "Go's random numbers (map seeds)"},

		// The loop: epoll, descriptors and the tap.
		{name: "epoll_pwait", why: "the event loop (x/sys's EpollWait, and its spin: spinWait), Go's network poller"},
		{name: "epoll_ctl", why: "adding and removing flows' sockets"},
		{name: "read", why: "the tap, sockets, eventfd, inotify"},
		{name: "write", why: "the tap, the log, the pcap file, the eventfd of signals, sock_diag requests of the auto scan"},
		{name: "pread64", why: "the /proc/net tables of -t/-u/-T/-U auto, cgroup limits for Go"},
		{name: "close", why: "flows' sockets and pipes"},
		{name: "ftruncate", why: "the log file's size limit (--log-size)"},

		// Flows: sockets of the families and types pasta uses, and nothing
		// else (no AF_UNIX, AF_NETLINK, AF_PACKET, raw sockets).
		{name: "socket", args: []scArg{is(0, unix.AF_INET), masked(1, sockTypeMask, unix.SOCK_STREAM), is(2, 0)}, why: "TCP flows, spliced connections, forwarded ports"},
		{name: "socket", args: []scArg{is(0, unix.AF_INET6), masked(1, sockTypeMask, unix.SOCK_STREAM), is(2, 0)}, why: "TCP over IPv6"},
		{name: "socket", args: []scArg{is(0, unix.AF_INET), masked(1, sockTypeMask, unix.SOCK_DGRAM), is(2, 0)}, why: "UDP flows and forwarded ports"},
		{name: "socket", args: []scArg{is(0, unix.AF_INET6), masked(1, sockTypeMask, unix.SOCK_DGRAM), is(2, 0)}, why: "UDP over IPv6"},
		{name: "socket", args: []scArg{is(0, unix.AF_INET), masked(1, sockTypeMask, unix.SOCK_DGRAM), is(2, unix.IPPROTO_ICMP)}, why: "ICMP echo through ping sockets"},
		{name: "socket", args: []scArg{is(0, unix.AF_INET6), masked(1, sockTypeMask, unix.SOCK_DGRAM), is(2, unix.IPPROTO_ICMPV6)}, why: "ICMPv6 echo through ping sockets"},
		{name: "connect", why: "outbound flows"},
		{name: "bind", why: "forwarded ports, ping identifiers, source addresses"},
		{name: "listen", why: "forwarded TCP ports"},
		{name: "accept4", why: "inbound TCP connections"},
		{name: "shutdown", why: "TCP half-close"},
		{name: "getsockopt", why: "TCP_INFO, SO_ERROR"},
		{name: "setsockopt", why: "socket options of flows"},
		{name: "sendto", why: "data to peers, messages to syslog"},
		{name: "recvfrom", why: "data from peers, discarding acknowledged data (MSG_TRUNC), sock_diag dumps of the auto scan"},
		{name: "recvmsg", why: "peeking at TCP data with an offset, ICMP errors of UDP flows (IP_RECVERR)"},
		{name: "sendmmsg", why: "UDP batches"},
		{name: "recvmmsg", why: "UDP batches"},
		{name: "ioctl", args: []scArg{masked(1, ioctlRequestMask, unix.SIOCOUTQ)}, why: "bytes a TCP socket has not sent yet, for the guest's window"},
		{name: "pipe2", why: "a pipe per direction of a spliced TCP connection"},
		{name: "fcntl", args: []scArg{is(1, unix.F_SETPIPE_SZ)}, why: "the size of splice pipes"},
		{name: "splice", why: "moving spliced TCP data through pipes"},

		// The command: its exit, and signals passed on to it.
		{name: "waitid", skip: command == 0, why: "collecting the command's exit status"},
		{name: "wait4", skip: command == 0, why: "the same, where Go can't wait on a pidfd (Linux 5.3)"},
		{name: "kill", args: []scArg{is(0, command)}, skip: command == 0, why: "passing SIGTERM and SIGHUP on to the command"},
	}
}

// installSeccomp loads the filter of seccompRules into every thread of the
// process (libseccomp asks for SECCOMP_FILTER_FLAG_TSYNC itself).
func installSeccomp(p seccompParams) error {
	// glibc's malloc counts the CPUs, reading /sys/devices/system/cpu/online,
	// the first time it makes more arenas than M_ARENA_TEST, which may be
	// in a thread started once confined (cgo allocates a little for each
	// thread it starts). A fixed maximum spares it that; two arenas are
	// plenty for the little C code here.
	C.mallopt(C.M_ARENA_MAX, 2)
	filter, err := seccomp.NewFilter(seccomp.ActKillProcess)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	defer filter.Release()
	for _, r := range seccompRules(p) {
		if r.skip {
			continue
		}
		if err := addRule(filter, r); err != nil {
			return fmt.Errorf("seccomp: %s: %w", r.name, err)
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

// addRule adds one rule of the table to filter.
func addRule(filter *seccomp.ScmpFilter, r scRule) error {
	call, err := seccomp.GetSyscallFromName(r.name)
	if err != nil {
		return nil // not a system call on this architecture
	}
	action := seccomp.ActAllow
	if r.errno != 0 {
		action = seccomp.ActErrno.SetReturnCode(int16(r.errno))
	}
	if len(r.args) == 0 {
		return filter.AddRule(call, action)
	}
	conds := make([]seccomp.ScmpCondition, 0, len(r.args))
	for _, a := range r.args {
		op, values := seccomp.CompareMaskedEqual, []uint64{a.mask, a.value}
		if a.mask == ^uint64(0) {
			op, values = seccomp.CompareEqual, []uint64{a.value}
		}
		cond, err := seccomp.MakeCondition(a.index, op, values...)
		if err != nil {
			return err
		}
		conds = append(conds, cond)
	}
	return filter.AddRuleConditional(call, action, conds)
}
