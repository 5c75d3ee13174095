package main

// Work that must happen before the Go runtime starts its threads and opens
// its own files, done by a constructor that runs first, in re-executed
// stages only (the process the user started is left alone: it may be a
// test binary, whose fuzzing workers talk over fds 3 and 4):
//
//   - Close inherited descriptors but those the launcher passed on
//     (_GOPASTA_KEEP_FDS: fds below it stay). Podman, for one, leaks a
//     socket into pasta, and a daemon keeping it open would keep its
//     parent's pipes from reaching EOF.
//   - Join a user namespace. setns(2) with CLONE_NEWUSER fails with EINVAL
//     once a process has several threads, so a process that must live in an
//     existing user namespace (pasta PID, --userns) is re-executed with the
//     namespace's path in the environment, and joins it here.
//   - In the stages that run the event loop ("foreground", "daemon"),
//     detach a mount namespace of our own, whose root pasta replaces with an
//     empty one once set up (confine.go), and UTS and IPC namespaces, as C
//     pasta does; unshare(2) refuses CLONE_NEWNS in a multithreaded process.
//     The daemon also detaches a PID namespace, which only children enter:
//     the constructor forks, the parent exits at once (the launcher waits
//     on the readiness pipe, not on it), and the child, PID 1 of the new
//     namespace, goes on to start Go. From there no other process can be
//     seen or signalled.

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void preinit_fail(int out, const char *what, const char *arg)
{
	dprintf(out, "%s%s: %s\n", what, arg, strerror(errno));
	_exit(1);
}

__attribute__((constructor)) static void gopasta_preinit(void)
{
	const char *stage = getenv("_GOPASTA_STAGE");
	const char *path = getenv("_GOPASTA_USERNS");
	const char *report = getenv("_GOPASTA_REPORT_FD");
	const char *keep = getenv("_GOPASTA_KEEP_FDS");
	int out = report ? atoi(report) : 2;
	int daemon, loop_stage, fd;

	if (!stage || !*stage)
		return;
	daemon = !strcmp(stage, "daemon");
	loop_stage = daemon || !strcmp(stage, "foreground");

	syscall(SYS_close_range, keep ? atoi(keep) : 3, ~0U, 0);

	if (path && *path) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWUSER) != 0)
			preinit_fail(out, "can't join user namespace ", path);
		close(fd);
		unsetenv("_GOPASTA_USERNS");
	}
	if (!loop_stage)
		return;

	if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (daemon ? CLONE_NEWPID : 0)))
		preinit_fail(out, "can't detach the namespaces pasta confines itself in", "");
	if (daemon) {
		pid_t pid = fork();

		if (pid < 0)
			preinit_fail(out, "fork", "");
		if (pid > 0)
			_exit(0);
	}
}
*/
import "C"

// Environment variables read by the constructor above.
const (
	envJoinUserns = "_GOPASTA_USERNS"    // path of the user namespace to join
	envReportFD   = "_GOPASTA_REPORT_FD" // where the constructor writes its error
	envKeepFDs    = "_GOPASTA_KEEP_FDS"  // descriptors below this one stay open
)
