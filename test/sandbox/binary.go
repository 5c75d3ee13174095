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

// built holds the binaries built from the repository: pasta and pesto.
var built struct {
	once  sync.Once
	dir   string
	pasta string
	pesto string
	err   error
}

// Binary returns the path of the pasta binary under test: $GOPASTA_BIN if
// set, else the module root built once per test process into a temporary
// directory that the unprivileged user can read and execute.
func Binary(t testing.TB) string {
	t.Helper()
	if p := binaryFromEnv(t, "GOPASTA_BIN"); p != "" {
		return p
	}
	built.once.Do(build)
	if built.err != nil {
		t.Fatalf("building pasta: %v", built.err)
	}
	return built.pasta
}

// Pesto returns the path of the pesto binary that goes with Binary:
// $GOPASTA_PESTO if set, else the one built from this repository (which
// speaks only to our pasta), else, with $GOPASTA_BIN set but not
// $GOPASTA_PESTO, it fails the test.
func Pesto(t testing.TB) string {
	t.Helper()
	if p := binaryFromEnv(t, "GOPASTA_PESTO"); p != "" {
		return p
	}
	if BinaryFromEnv() && Reference() {
		t.Fatal("GOPASTA_BIN names a reference pasta: give its pesto in GOPASTA_PESTO")
	}
	built.once.Do(build)
	if built.err != nil {
		t.Fatalf("building pesto: %v", built.err)
	}
	return built.pesto
}

// binaryFromEnv returns the absolute path of the program the environment
// variable names, "" if it is unset.
func binaryFromEnv(t testing.TB, name string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		return ""
	}
	abs, err := exec.LookPath(p)
	if err == nil {
		abs, err = filepath.Abs(abs)
	}
	if err != nil {
		t.Fatalf("%s=%s: %v", name, p, err)
	}
	return abs
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
	out, err := exec.CommandContext(ctx, GoTool(), "env", "GOMOD").Output()
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

// GoTool finds the go command: on PATH, else where these machines keep it.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// build builds pasta and pesto from the repository into a temporary
// directory that the unprivileged user can read and execute.
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
	for _, b := range []struct {
		path *string
		name string
		pkg  string
	}{{&built.pasta, "pasta", "."}, {&built.pesto, "pesto", "./cmd/pesto"}} {
		out := filepath.Join(dir, b.name)
		if built.err = goBuild(root, out, b.pkg); built.err != nil {
			return
		}
		*b.path = out
	}
}

// goBuild builds the package pkg of the module at root into out, mode 0755.
func goBuild(root, out, pkg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, GoTool(), "build", "-o", out, pkg)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %v\n%s", pkg, root, err, stderr.String())
	}
	return os.Chmod(out, 0o755)
}
