package main

// Joining a user namespace needs a single-threaded process: setns(2) with
// CLONE_NEWUSER fails with EINVAL once the Go runtime has started its
// threads. So a process that must live in an existing user namespace (pasta
// PID, --userns) is re-executed with the namespace's path in the
// environment, and this constructor joins it before the runtime starts.

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void gopasta_join_userns(void)
{
	const char *path = getenv("_GOPASTA_USERNS");
	const char *report = getenv("_GOPASTA_REPORT_FD");
	int fd, out = report ? atoi(report) : 2;

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
