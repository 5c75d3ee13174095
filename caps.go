package main

// Giving up identity and capabilities once set up, in every thread.
//
// Credentials are per thread in Linux, and capset(2), prctl(2)'s
// PR_CAPBSET_DROP and setresuid(2) change only the calling thread. Go
// without cgo has syscall.AllThreadsSyscall for this; with cgo (which
// libseccomp and preinit.go need) it is refused, and glibc repeats only the
// set*id calls on every thread, not the capability ones. So the C code below
// does the same thing glibc does for set*id: it signals every thread of the
// process, and each drops its own credentials in the signal handler; the
// caller waits until all have answered.
//
// The threads are listed from /proc/self/task, opened before the root goes
// away. That /proc belongs to the PID namespace we were started in, while
// the daemon lives in its own (preinit.go): tgkill(2) needs the thread's
// ID in our namespace, the last one of the "NSpid:" line of its status.
// Threads created meanwhile are found by listing again until a pass finds
// no new one and every thread has answered: a thread cloned from one that
// has already dropped starts without credentials.

/*
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// SIGCHLD: a signal no thread blocks, neither Go's (its signals marked
// "unblock", which its signal-forwarding thread leaves alone while it
// blocks the rest) nor glibc's, and that nothing here waits for (os/exec
// collects children with waitid). Our handler stands in for Go's while
// the threads drop; a child's exit meanwhile just makes a thread drop
// early.
#define DROP_SIGNAL		SIGCHLD
#define DROP_MAX_THREADS	1024
#define DROP_WAIT_NS		20000	// between checks: threads answer in microseconds
#define DROP_WAIT_STEPS		100000	// 2 s in all
#define DROP_PENDING		0
#define DROP_GONE		-1	// the thread exited before answering

static struct {
	int set_ids;
	unsigned int uid, gid;
} drop_plan;

// A slot per thread signalled: its ID in our PID namespace and, once it
// answered, 1 + the errno of its first failed call (1: success).
static struct {
	int tid;
	volatile int result;
} drop_slots[DROP_MAX_THREADS];
static volatile int drop_nslots;

// drop_here gives up the calling thread's capabilities and, if planned,
// switches its user and group. Async-signal-safe: raw system calls only.
static int drop_here(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	long present;
	int cap;

	memset(data, 0, sizeof(data));
	// The bounding set first, while CAP_SETPCAP is still effective (READ
	// fails past the last capability the kernel knows). EPERM (no
	// CAP_SETPCAP to begin with) is left alone: with no_new_privs, set with
	// the seccomp filter, no execve(2) could gain these anyway.
	for (cap = 0; (present = syscall(SYS_prctl, PR_CAPBSET_READ, cap, 0, 0, 0)) >= 0; cap++) {
		if (present && syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EPERM)
			return errno;
	}
	if (drop_plan.set_ids) {
		// Refused where setgroups is denied (a user namespace of our
		// own): there are no supplementary groups to drop then.
		syscall(SYS_setgroups, 0, NULL);
		if (syscall(SYS_setresgid, drop_plan.gid, drop_plan.gid, drop_plan.gid))
			return errno;
		if (syscall(SYS_setresuid, drop_plan.uid, drop_plan.uid, drop_plan.uid))
			return errno;
	}
	if (syscall(SYS_capset, &hdr, data))
		return errno;
	if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		return errno;
	return 0;
}

static int drop_slot(int tid)
{
	int i;

	for (i = 0; i < drop_nslots; i++)
		if (drop_slots[i].tid == tid)
			return i;
	return -1;
}

static int drop_caller;	// the thread that drops last, see drop_all_threads

static void drop_handler(int sig, siginfo_t *info, void *uc)
{
	int saved = errno, tid = syscall(SYS_gettid), i;

	(void)sig; (void)info; (void)uc;
	if (tid != drop_caller) {
		int res = drop_here() + 1;

		i = drop_slot(tid);
		if (i >= 0)
			__atomic_store_n(&drop_slots[i].result, res, __ATOMIC_RELEASE);
	}
	errno = saved;
}

// inner_tid reads the thread's ID in our PID namespace from the last field
// of the "NSpid:" line of /proc/self/task/NAME/status.
static int inner_tid(int taskdir, const char *name)
{
	char path[64], buf[4096], *p, *end;
	int fd, tid = -1;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/status", name);
	fd = openat(taskdir, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "\nNSpid:");
	if (!p)
		return -1;
	for (p += strlen("\nNSpid:"); *p && *p != '\n'; p = end) {
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		tid = (int)v;
	}
	return tid;
}

// drop_signal_new_threads signals the threads listed in taskdir, but the
// calling one, that have no slot yet, and returns how many there were, or
// -errno.
static int drop_signal_new_threads(DIR *d, int taskdir, int self)
{
	struct dirent *e;
	int fresh = 0;

	rewinddir(d);
	while ((e = readdir(d))) {
		int tid = e->d_name[0] == '.' ? -1 : inner_tid(taskdir, e->d_name);

		if (tid < 0 || tid == self || drop_slot(tid) >= 0)
			continue;
		if (drop_nslots == DROP_MAX_THREADS)
			return -EMFILE;
		drop_slots[drop_nslots].tid = tid;
		drop_slots[drop_nslots].result = DROP_PENDING;
		__atomic_store_n(&drop_nslots, drop_nslots + 1, __ATOMIC_RELEASE);
		if (syscall(SYS_tgkill, getpid(), tid, DROP_SIGNAL) && errno == ESRCH)
			drop_slots[drop_nslots - 1].result = DROP_GONE;
		fresh++;
	}
	return fresh;
}

// drop_pending counts the threads that have not answered yet, marking
// those that exited meanwhile.
static int drop_pending(void)
{
	int i, pending = 0;

	for (i = 0; i < drop_nslots; i++) {
		if (__atomic_load_n(&drop_slots[i].result, __ATOMIC_ACQUIRE) != DROP_PENDING)
			continue;
		if (syscall(SYS_tgkill, getpid(), drop_slots[i].tid, 0) && errno == ESRCH)
			drop_slots[i].result = DROP_GONE;
		else
			pending++;
	}
	return pending;
}

// drop_all_threads runs drop_here in every thread of the process. It
// returns 0, or an errno with *tid set to the thread that failed (-1: the
// listing itself, or a thread that did not answer within two seconds).
static int drop_all_threads(int taskdir, int set_ids, unsigned int uid, unsigned int gid, int *tid)
{
	struct timespec step = { 0, DROP_WAIT_NS };
	struct sigaction sa, old;
	int self = syscall(SYS_gettid), fresh = 0, pending = 0, i, err = 0;
	DIR *d = fdopendir(dup(taskdir));

	*tid = -1;
	if (!d)
		return errno;
	drop_plan.set_ids = set_ids;
	drop_plan.uid = uid;
	drop_plan.gid = gid;
	drop_nslots = 0;
	drop_caller = self;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = drop_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	sigaction(DROP_SIGNAL, &sa, &old);
	for (i = 0; i < DROP_WAIT_STEPS; i++) {
		fresh = drop_signal_new_threads(d, taskdir, self);
		pending = drop_pending();
		if (fresh <= 0 && !pending)
			break;
		nanosleep(&step, NULL);
	}
	sigaction(DROP_SIGNAL, &old, NULL);
	closedir(d);

	if (fresh < 0)
		return -fresh;
	if (fresh || pending) {
		for (i = 0; i < drop_nslots; i++)
			if (drop_slots[i].result == DROP_PENDING)
				*tid = drop_slots[i].tid;
		return ETIMEDOUT;
	}
	// The calling thread last: once it is no longer root, it may not
	// signal threads that still are.
	err = drop_here();
	if (err) {
		*tid = self;
		return err;
	}
	for (i = 0; i < drop_nslots; i++) {
		int res = drop_slots[i].result;

		if (res > 1) {
			*tid = drop_slots[i].tid;
			err = res - 1;
			break;
		}
	}
	return err;
}
*/
import "C"

import (
	"fmt"
	"syscall"
)

// dropCredentialsEverywhere gives up every capability (effective,
// permitted, inheritable, ambient and the bounding set) in every thread,
// switching them to ids first if ids.set. taskDir is an open descriptor of
// /proc/self/task.
func dropCredentialsEverywhere(taskDir int, ids idSwitch) error {
	var tid C.int
	set := C.int(0)
	if ids.set {
		set = 1
	}
	errno := C.drop_all_threads(C.int(taskDir), set, C.uint(ids.uid), C.uint(ids.gid), &tid)
	if errno == 0 {
		return nil
	}
	what := "dropping capabilities"
	if ids.set {
		what = fmt.Sprintf("switching to %d:%d and dropping capabilities", ids.uid, ids.gid)
	}
	if tid < 0 {
		return fmt.Errorf("%s in every thread: %w", what, syscall.Errno(errno))
	}
	return fmt.Errorf("%s in thread %d: %w", what, tid, syscall.Errno(errno))
}
