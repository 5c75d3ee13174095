package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// UserName is the unprivileged user that "user mode" tests run as.
const UserName = "gopasta-test"

// userLock serialises useradd between test processes (useradd itself fails,
// rather than waits, when another one holds /etc/passwd's lock).
const userLock = "/run/lock/gopasta-test-useradd.lock"

var userMu sync.Mutex

// User makes sure the unprivileged test user exists (creating it with
// useradd --system --no-create-home --shell /bin/sh if needed; safe to call
// concurrently, from several processes too) and returns its uid and gid.
func User(t testing.TB) (uid, gid int) {
	t.Helper()
	RequireRoot(t)
	uid, gid, err := ensureUser()
	if err != nil {
		t.Fatalf("sandbox: test user %s: %v", UserName, err)
	}
	return uid, gid
}

func lookupUser() (int, int, bool) {
	u, err := user.Lookup(UserName)
	if err != nil {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uid, gid, true
}

func ensureUser() (int, int, error) {
	if uid, gid, ok := lookupUser(); ok {
		return uid, gid, nil
	}
	var uid, gid int
	err := withUserLock(func() error {
		var last Result
		for range 5 {
			var ok bool
			if uid, gid, ok = lookupUser(); ok {
				return nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
			last = Run(rootCmd(ctx, "useradd", "--system", "--no-create-home", "--user-group",
				"--home-dir", "/nonexistent", "--shell", "/bin/sh", UserName))
			cancel()
			if uid, gid, ok = lookupUser(); ok {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("useradd failed: %s", last)
	})
	return uid, gid, err
}

// withUserLock runs fn holding userLock, in this process and between
// processes (a bounded wait).
func withUserLock(fn func() error) error {
	userMu.Lock()
	defer userMu.Unlock()
	_ = os.MkdirAll("/run/lock", 0o755)
	f, err := os.OpenFile(userLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	locked := false
	for range 200 {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			locked = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !locked {
		return fmt.Errorf("cannot lock %s within 10s", userLock)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// The test user's subordinate user and group IDs (subuid(5), subgid(5)),
// for tools that map a whole range with newuidmap(1), as RootlessKit does.
// A range this high is unlikely to meet another user's.
const (
	SubIDStart = 1500000000
	SubIDCount = 65536
)

// SubIDs makes sure the test user has subordinate user and group IDs in
// /etc/subuid and /etc/subgid, adding SubIDStart:SubIDCount with usermod
// if it has none (serialised like useradd).
func SubIDs(t testing.TB) {
	t.Helper()
	User(t)
	err := withUserLock(func() error {
		if hasSubIDs("/etc/subuid") && hasSubIDs("/etc/subgid") {
			return nil
		}
		ids := fmt.Sprintf("%d-%d", SubIDStart, SubIDStart+SubIDCount-1)
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		defer cancel()
		if res := Run(rootCmd(ctx, "usermod", "--add-subuids", ids, "--add-subgids", ids, UserName)); res.Err != nil {
			return fmt.Errorf("usermod: %s", res)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sandbox: subordinate IDs of %s: %v", UserName, err)
	}
}

// hasSubIDs tells whether the file (/etc/subuid or /etc/subgid) gives the
// test user a range.
func hasSubIDs(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, UserName+":") {
			return true
		}
	}
	return false
}
