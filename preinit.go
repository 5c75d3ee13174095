package main

// Work that must happen before the Go runtime starts its threads and opens
// its own files, done by a constructor that runs first:
//
//   - In a re-executed stage, close inherited descriptors above 2. Podman,
//     for one, leaks a socket into pasta, and the Go runtime passes on
//     descriptors it did not open itself; a daemon keeping them open would
//     keep its parent's pipes from reaching EOF. The daemon's readiness pipe
//     (fd 3) is kept. The process the user started is left alone: it may be
//     a test binary, whose fuzzing workers talk over fds 3 and 4.
//   - Join a user namespace. setns(2) with CLONE_NEWUSER fails with EINVAL
//     once a process has several threads, so a process that must live in an
//     existing user namespace (pasta PID, --userns) is re-executed with the
//     namespace's path in the environment, and joins it here.

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

__attribute__((constructor)) static void gopasta_preinit(void)
{
	const char *stage = getenv("_GOPASTA_STAGE");
	const char *path = getenv("_GOPASTA_USERNS");
	const char *report = getenv("_GOPASTA_REPORT_FD");
	int keep_ready = stage && !strcmp(stage, "daemon");
	int fd, out = report ? atoi(report) : 2;

	if (stage && *stage)
		syscall(SYS_close_range, keep_ready ? 4 : 3, ~0U, 0);

	if (!path || !*path)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWUSER) != 0) {
		dprintf(out, "can't join user namespace %s: %s\n", path, strerror(errno));
		_exit(1);
	}
	close(fd);
	unsetenv("_GOPASTA_USERNS");
}
*/
import "C"

// Environment variables read by the constructor above.
const (
	envJoinUserns = "_GOPASTA_USERNS"    // path of the user namespace to join
	envReportFD   = "_GOPASTA_REPORT_FD" // where the constructor writes its error
)
