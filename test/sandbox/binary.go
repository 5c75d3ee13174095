package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary returns the path of the pasta binary under test: $GOPASTA_BIN if
// set, else the module root built once per test process into a temporary
// directory that the unprivileged user can read and execute.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GOPASTA_BIN"); p != "" {
		abs, err := exec.LookPath(p)
		if err == nil {
			abs, err = filepath.Abs(abs)
		}
		if err != nil {
			t.Fatalf("GOPASTA_BIN=%s: %v", p, err)
		}
		return abs
	}
	built.once.Do(build)
	if built.err != nil {
		t.Fatalf("building pasta: %v", built.err)
	}
	return built.path
}

// BinaryFromEnv reports whether the binary under test came from
// $GOPASTA_BIN rather than being built from this repository.
func BinaryFromEnv() bool { return os.Getenv("GOPASTA_BIN") != "" }

// Reference reports whether the binary under test is a reference
// implementation (the C pasta) rather than ours: GOPASTA_REFERENCE=1 says
// so, GOPASTA_REFERENCE=0 says not, and when it is unset a binary given by
// GOPASTA_BIN counts as a reference. Tests tolerate the reference's known
// bugs (and say so in the log); they never tolerate them in our binary.
func Reference() bool {
	switch os.Getenv("GOPASTA_REFERENCE") {
	case "1":
		return true
	case "0":
		return false
	}
	return BinaryFromEnv()
}

// Main runs the tests of a package that uses Binary and removes the built
// binary afterwards. Use it as: func TestMain(m *testing.M) { sandbox.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// ModuleRoot returns the directory holding the gopasta go.mod.
func ModuleRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if isGopastaRoot(root) {
			return root, nil
		}
	}
	// Built with -trimpath or moved: ask the go command from the test's
	// working directory (a package directory inside the module).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a module")
	}
	root := filepath.Dir(gomod)
	if !isGopastaRoot(root) {
		return "", fmt.Errorf("%s is not the gopasta module", gomod)
	}
	return root, nil
}

func isGopastaRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return f[1] == "gopasta"
		}
	}
	return false
}

// goTool finds the go command: on PATH, else where these machines keep it.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func build() {
	root, err := ModuleRoot()
	if err != nil {
		built.err = err
		return
	}
	dir, err := os.MkdirTemp("", "gopasta-bin-")
	if err != nil {
		built.err = err
		return
	}
	built.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		built.err = err
		return
	}
	out := filepath.Join(dir, "pasta")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, ".")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		built.err = fmt.Errorf("go build in %s: %v\n%s", root, err, stderr.String())
		return
	}
	if err := os.Chmod(out, 0o755); err != nil {
		built.err = err
		return
	}
	built.path = out
}
