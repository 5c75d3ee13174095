package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testTool is a small helper program the tests run in the namespaces
// (clients, servers), compiled from Go source held in the test file. It
// is built once, into a directory every user can read (the unprivileged
// user runs it), removed when the last test using it ends; a later test
// builds it again (from the Go build cache, so quickly).
type testTool struct {
	name   string
	source string

	mu   sync.Mutex
	dir  string // 0755 directory holding the binary, while refs > 0
	path string
	refs int
}

// binary returns the path of the tool, building it if needed.
func (tt *testTool) binary(t *testing.T) string {
	t.Helper()
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.refs == 0 {
		dir, err := tt.build()
		if err != nil {
			t.Fatalf("building %s: %v", tt.name, err)
		}
		tt.dir, tt.path = dir, filepath.Join(dir, tt.name)
	}
	tt.refs++
	t.Cleanup(func() {
		tt.mu.Lock()
		defer tt.mu.Unlock()
		if tt.refs--; tt.refs == 0 {
			os.RemoveAll(tt.dir)
			tt.dir, tt.path = "", ""
		}
	})
	return tt.path
}

func (tt *testTool) build() (string, error) {
	dir, err := os.MkdirTemp("", "gopasta-"+tt.name+"-")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(dir)
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fail(err)
	}
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(tt.source), 0o644); err != nil {
		return fail(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, tt.name)
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GO111MODULE=on")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("go build: %v\n%s", err, out))
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		return fail(err)
	}
	return dir, nil
}
