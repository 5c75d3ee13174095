package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
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
	userMu.Lock()
	defer userMu.Unlock()

	_ = os.MkdirAll("/run/lock", 0o755)
	f, err := os.OpenFile(userLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	// Bounded wait for the inter-process lock.
	locked := false
	for range 200 {
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			locked = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !locked {
		return 0, 0, fmt.Errorf("cannot lock %s within 10s", userLock)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	var last Result
	for range 5 {
		if uid, gid, ok := lookupUser(); ok {
			return uid, gid, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		last = Run(rootCmd(ctx, "useradd", "--system", "--no-create-home", "--user-group",
			"--home-dir", "/nonexistent", "--shell", "/bin/sh", UserName))
		cancel()
		if uid, gid, ok := lookupUser(); ok {
			return uid, gid, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("useradd failed: %s", last)
}
