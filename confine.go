package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Confinement (docs/security.md). Once set up, the process that runs the
// loop gives up everything it no longer needs, in this order:
//
//  1. The filesystem: its mount namespace, detached by preinit.go, gets an
//     empty read-only tmpfs as its root (pivot_root(2), or chroot(2) with
//     --chroot-fallback), as C pasta does. What the loop still reads or
//     writes was opened during setup and stays open: the tap, the --pcap
//     and --log-file files, the /proc/net socket tables of the auto scans,
//     the inotify watch of the namespace's folder, pidfds, the syslog
//     socket, listening sockets.
//  2. Identity and capabilities: started as root, pasta becomes nobody (or
//     the --runas user); every thread drops all its capabilities, the
//     bounding set included (caps.go).
//  3. System calls: the seccomp filter (seccomp.go), with no_new_privs.

// emptyRootDir is where the new root is mounted before pivot_root(2) moves
// it to "/": any directory of the old root would do; C pasta uses /tmp
// too.
const emptyRootDir = "/tmp"

// confine confines the process once set up; the command, if any, runs
// already.
func (c *ctx) confine() error {
	ids, err := planIDSwitch(c.cfg)
	if err != nil {
		return err
	}
	loadLocalTimeZone()
	taskDir, err := unix.Open("/proc/self/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("listing our threads: %w", err)
	}
	err = enterEmptyRoot(c.cfg.chrootFallback)
	if err == nil {
		err = dropCredentialsEverywhere(taskDir, ids)
	}
	// A directory of the old root: openat(2) relative to it would reach
	// the rest.
	unix.Close(taskDir)
	if err != nil {
		return err
	}
	return installSeccomp(seccompParams{self: os.Getpid(), command: c.commandPID()})
}

// loadLocalTimeZone reads the local time zone while /etc/localtime can be
// read: the time package loads it on the first use of local time (syslog's
// time stamps, or any time.Time printed), and that open would be refused
// once confined, killing pasta.
func loadLocalTimeZone() { _, _ = time.Now().Zone() }

// enterEmptyRoot makes an empty, read-only tmpfs the root of our mount
// namespace and leaves nothing of the old root reachable: pivot_root(2),
// or, with --chroot-fallback where that fails, chroot(2).
func enterEmptyRoot(chrootFallback bool) error {
	err := pivotToEmptyRoot()
	if err == nil {
		return nil
	}
	if !chrootFallback {
		return fmt.Errorf("%w (see --chroot-fallback)", err)
	}
	debugf("%v: using chroot (--chroot-fallback)", err)
	return chrootToEmptyRoot()
}

// emptyRootFlags and emptyRootOptions make the empty root: read-only, with
// two inodes (the root directory, and none to spare), nothing executable.
const (
	emptyRootFlags   = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	emptyRootInodes  = "2"
	emptyRootMode    = "0555"
	emptyRootOptions = "nr_inodes=" + emptyRootInodes + ",mode=" + emptyRootMode
)

// pivotToEmptyRoot mounts the empty root on emptyRootDir and makes it "/"
// with pivot_root(2), detaching the old root. It fails where the root is
// no mount point (a chroot) or can't be moved (initramfs).
func pivotToEmptyRoot() error {
	// Keep what follows from propagating to the namespace we came from.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("pivot_root: making our mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", emptyRootDir, "tmpfs", emptyRootFlags, emptyRootOptions); err != nil {
		return fmt.Errorf("pivot_root: mounting an empty root on %s: %w", emptyRootDir, err)
	}
	if err := unix.Chdir(emptyRootDir); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one, at
	// the same place (pivot_root(2), NOTES); detaching it leaves the new one.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to an empty filesystem: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

// chrootToEmptyRoot makes an empty root as a detached mount (fsmount(2):
// attached nowhere, so nothing propagates, whatever the mounts around us
// are) and chroots into it. The old mounts stay in our namespace, out of
// reach: no path leads out of the new root, no capability is left to
// chroot again, and no descriptor of a directory outside stays open.
func chrootToEmptyRoot() error {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("chroot fallback: fsopen: %w", err)
	}
	defer unix.Close(fs)
	for _, kv := range [][2]string{{"nr_inodes", emptyRootInodes}, {"mode", emptyRootMode}} {
		if err := unix.FsconfigSetString(fs, kv[0], kv[1]); err != nil {
			return fmt.Errorf("chroot fallback: tmpfs %s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return fmt.Errorf("chroot fallback: tmpfs: %w", err)
	}
	attrs := unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("chroot fallback: fsmount: %w", err)
	}
	defer unix.Close(mnt)
	if err := unix.Fchdir(mnt); err != nil {
		return fmt.Errorf("chroot fallback: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to an empty filesystem: %w", err)
	}
	return unix.Chdir("/")
}

// commandPID is the PID of the command pasta started, or 0.
func (c *ctx) commandPID() int {
	if c.child == nil {
		return 0
	}
	return c.child.cmd.Process.Pid
}
