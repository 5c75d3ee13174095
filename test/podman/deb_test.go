package podman

// The Debian package (scripts/deb.sh) in each Podman root file system:
// installing it is all it takes for Podman to use gopasta, and purging it
// gives Podman its C pasta back and leaves nothing behind. The package is
// installed into a copy of the rootfs (cp -a, a few seconds), so that the
// other tests, which share the rootfs, never see it.

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

const (
	gopastaDir    = "/usr/libexec/gopasta" // where the package installs pasta
	debInRootfs   = "/tmp/gopasta-deb"     // where the test puts the .deb in the copy
	debBuildLimit = 10 * time.Minute       // for scripts/deb.sh (a go build)
)

// debFiles is what the package must install: every file and link, with
// the folders that only it makes.
var debFiles = []string{
	"/etc/containers/containers.conf.d/50-gopasta.conf",
	"/usr/bin/gopasta",
	"/usr/bin/gopesto",
	"/usr/libexec/gopasta",
	"/usr/libexec/gopasta/pasta",
	"/usr/libexec/gopasta/pesto",
	"/usr/share/bash-completion/completions/gopasta",
	"/usr/share/bash-completion/completions/gopesto",
	"/usr/share/doc/gopasta",
	"/usr/share/doc/gopasta/changelog.gz",
	"/usr/share/doc/gopasta/copyright",
	"/usr/share/man/man1/gopasta.1.gz",
	"/usr/share/man/man1/gopesto.1.gz",
}

// buildDeb runs scripts/deb.sh and returns the package's path.
func buildDeb(t *testing.T) string {
	t.Helper()
	root, err := sandbox.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), debBuildLimit)
	defer cancel()
	env := append(baseEnv(), "HOME="+os.Getenv("HOME"), "GOPATH="+goEnv("GOPATH"), "GOCACHE="+goEnv("GOCACHE"))
	res := sandbox.Run(newCmd(ctx, env, "sh", filepath.Join(root, "scripts", "deb.sh"), t.TempDir()))
	deb := strings.TrimSpace(res.Stdout)
	if res.Err != nil || !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("scripts/deb.sh:\n%s", res)
	}
	return deb
}

// goEnv returns a setting of the go command, so that deb.sh shares the
// test's module and build caches.
func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// copyRootfs copies the rootfs called name, under its lock (no Podman
// changes it meanwhile), and returns the copy's path. Its parent folder
// names run.sh's lock for the copy: gopasta-deb-NAME.
func copyRootfs(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "gopasta-deb-"+name, "rootfs")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	src, err := rootfsDir(name)
	if err != nil {
		t.Fatal(err)
	}
	// run.sh's lock: its name is that of the rootfs's folder (NAME-HASH).
	lock := "/run/lock/gopasta-podman-" + filepath.Base(filepath.Dir(src)) + ".lock"
	res := sandbox.Run(newCmd(ctx, baseEnv(), "flock", "-w", "1800", lock, "cp", "-a", src, dst))
	if res.Err != nil {
		t.Fatalf("copying the %s rootfs: %s", name, res)
	}
	return dst
}

// asRoot runs a bash script as root in the rootfs (no network namespace:
// dpkg needs none) and returns its output; a failure is fatal.
func asRoot(t *testing.T, rootfs, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd, err := runSh(ctx, rootfs, nil, "bash", "-c", "set -eu\n"+script)
	if err != nil {
		t.Fatal(err)
	}
	res := sandbox.Run(cmd)
	if res.Err != nil {
		t.Fatalf("as root in %s:\n%s\n[script]\n%s", rootfs, res, script)
	}
	return res.Stdout
}

// fieldsAfter returns the rest of the line of out that starts with key.
func fieldsAfter(out, key string) string {
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

func TestDebianPackage(t *testing.T) {
	t.Parallel()
	requirePodman(t)
	deb := buildDeb(t)
	version := strings.Split(filepath.Base(deb), "_")[1]
	for _, p := range podmans {
		t.Run(p.label, func(t *testing.T) {
			t.Parallel()
			env := podmanEnv{p.label, copyRootfs(t, p.rootfs)}
			before, named := systemFiles(t, env.rootfs), namedGopasta(t, env.rootfs)
			installDeb(t, env.rootfs, deb, version)
			w := newWorld(t, env, cPasta) // no PASTA for run.sh: the pasta Podman finds
			t.Run("installed", func(t *testing.T) {
				checkPodmanPasta(t, w, gopastaDir+"/pasta", "gopasta "+version)
			})
			purgeDeb(t, env.rootfs)
			if after := systemFiles(t, env.rootfs); !slices.Equal(before, after) {
				t.Errorf("purge left the system folders changed:\n%s", listDiff(before, after))
			}
			if after := namedGopasta(t, env.rootfs); !slices.Equal(named, after) {
				t.Errorf("purge left files named after gopasta:\n%s", listDiff(named, after))
			}
			t.Run("purged", func(t *testing.T) {
				checkPodmanPasta(t, w, helperDir+"/pasta", "") // run.sh's logging wrapper of /usr/bin/pasta
			})
		})
	}
}

// installDeb installs the package with dpkg and checks what it installed:
// the files, the gopasta command, the completion.
func installDeb(t *testing.T, rootfs, deb, version string) {
	t.Helper()
	dir := filepath.Join(rootfs, debInRootfs)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	inRootfs := debInRootfs + "/" + filepath.Base(deb)
	if err := os.WriteFile(filepath.Join(rootfs, inRootfs), data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := asRoot(t, rootfs, `
dpkg -i `+inRootfs+` >/dev/null
rm -r `+debInRootfs+`
echo "status: $(dpkg-query -W -f '${Status} ${Version}' gopasta)"
echo "files: $(dpkg -L gopasta | sort | tr '\n' ' ')"
echo "version: $(gopasta --version)"
echo "pesto: $(gopesto --version)"
echo "link: $(readlink -f "$(command -v gopasta)")"
echo "pesto link: $(readlink -f "$(command -v gopesto)")"
echo "man: $(zcat /usr/share/man/man1/gopasta.1.gz | grep '^\.TH')"
echo "pesto man: $(zcat /usr/share/man/man1/gopesto.1.gz | grep '^\.TH')"
echo "completion: $(bash -c '. /usr/share/bash-completion/completions/gopasta && complete -p gopasta')"
echo "pesto completion: $(bash -c '. /usr/share/bash-completion/completions/gopesto && complete -p gopesto')"
echo "conffiles: $(dpkg-query -W -f '${Conffiles}' gopasta | awk '{ print $1 }')"
`)
	t.Logf("installed:\n%s", out)
	want := map[string]string{
		"status":           "install ok installed " + version,
		"version":          "gopasta " + version,
		"pesto":            "pesto (gopasta " + version + ")",
		"link":             gopastaDir + "/pasta",
		"pesto link":       gopastaDir + "/pesto",
		"man":              `.TH PASTA 1`,
		"pesto man":        `.TH PESTO 1`,
		"completion":       "complete -F _gopasta_pasta gopasta",
		"pesto completion": "complete -F _gopasta_pesto gopesto",
		"conffiles":        "/etc/containers/containers.conf.d/50-gopasta.conf",
	}
	for key, w := range want {
		if got := fieldsAfter(out, key+":"); !strings.HasPrefix(got, w) {
			t.Errorf("%s: %q, want %q", key, got, w)
		}
	}
	files := strings.Fields(fieldsAfter(out, "files:"))
	for _, f := range debFiles {
		if !slices.Contains(files, f) {
			t.Errorf("the package does not install %s (dpkg -L: %q)", f, files)
		}
	}
}

// purgeDeb purges the package and checks that no file of it is left.
func purgeDeb(t *testing.T, rootfs string) {
	t.Helper()
	out := asRoot(t, rootfs, `
dpkg --purge gopasta >/dev/null
echo "status: $(dpkg-query -W -f '${Status}' gopasta 2>&1 || true)"
`)
	t.Logf("purged:\n%s", out)
	if st := fieldsAfter(out, "status:"); strings.Contains(st, "installed") && !strings.Contains(st, "not-installed") {
		t.Errorf("dpkg status after purge: %q", st)
	}
	for _, f := range debFiles {
		if _, err := os.Lstat(filepath.Join(rootfs, f)); err == nil {
			t.Errorf("%s is still there after purge", f)
		}
	}
}

// systemFolders are the parts of a rootfs a package may change; the others
// hold state (dpkg's database and log, caches, Podman's storage, homes).
var systemFolders = []string{"etc", "usr", "opt"}

// systemFiles lists the paths under systemFolders, sorted.
func systemFiles(t *testing.T, rootfs string) []string {
	t.Helper()
	var paths []string
	for _, top := range systemFolders {
		err := filepath.WalkDir(filepath.Join(rootfs, top), func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			paths = append(paths, strings.TrimPrefix(p, rootfs))
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	slices.Sort(paths)
	return paths
}

// namedGopasta lists the paths of the rootfs whose name has "gopasta" in
// it, anywhere (the rootfs's own apt configuration has one), sorted.
func namedGopasta(t *testing.T, rootfs string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), "gopasta") {
			paths = append(paths, strings.TrimPrefix(p, rootfs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	return paths
}

// listDiff shows the paths only in a ("-") and only in b ("+").
func listDiff(a, b []string) string {
	var d []string
	for _, p := range a {
		if _, found := slices.BinarySearch(b, p); !found {
			d = append(d, "- "+p)
		}
	}
	for _, p := range b {
		if _, found := slices.BinarySearch(a, p); !found {
			d = append(d, "+ "+p)
		}
	}
	return strings.Join(d, "\n")
}

// checkPodmanPasta runs rootless Podman in w's rootfs: podman info must
// name exe as its pasta (and version, unless ""), and a container with
// -p 8080:80 must serve a client of the remote namespace, which it sees
// with its own address, through a pasta process of that executable.
func checkPodmanPasta(t *testing.T, w *world, exe, version string) {
	t.Helper()
	s := newScript()
	mounts, big := serverFiles(t, s)
	s.run("info", "podman", "info", "--format", "{{.Host.Pasta.Executable}}|{{.Host.Pasta.Version}}|{{.Host.Pasta.Package}}")
	args := append([]string{"podman", "run", "-d", "--name", s.ctr("web"), "-p", "8080:80"}, mounts...)
	s.run("start", append(args, image, "httpd", "-f", "-p", "80", "-h", "/www")...)
	s.pastas("running")
	s.step("up")
	s.run("rm", "podman", "rm", "-f", "-t", "0", s.ctr("web"))
	remote := webClient{"remote-ipv4", w.sb.RemotePath(), "http://192.0.2.1:8080", sandbox.RemoteAddr4}
	o := w.exec(t, s, map[string]func(*testing.T, *outcome){"up": func(t *testing.T, o *outcome) {
		if _, ok := o.ok(t, "start"); ok && waitHTTP(t, remote, containerIndex) {
			checkWeb(t, remote, containerIndex, big)
		}
	}})
	if r, ok := o.ok(t, "info"); ok {
		f := strings.SplitN(strings.TrimSpace(r.Stdout), "|", 3)
		t.Logf("podman info: executable %q, version %q, package %q", f[0], f[1], f[len(f)-1])
		if f[0] != exe {
			t.Errorf("podman info: pasta is %q, want %q", f[0], exe)
		}
		if version != "" && (len(f) < 3 || !strings.HasPrefix(f[1], version) || !strings.HasPrefix(f[2], "gopasta_"+strings.TrimPrefix(version, "gopasta "))) {
			t.Errorf("podman info: pasta version %q, package %q, want %q and the gopasta package", f[1], f[len(f)-1], version)
		}
	}
	running := o.pastas("running")
	if len(running) != 1 {
		t.Errorf("%d pasta processes with the container up, want 1:\n%s", len(running), strings.Join(running, "\n"))
		return
	}
	f := strings.Fields(running[0])
	want := strings.TrimSuffix(exe, "/pasta")
	if exe == helperDir+"/pasta" {
		want = "/usr/bin/pasta" // the wrapper execs the rootfs's C pasta (or its pasta.avx2)
	}
	if len(f) < 3 || !strings.HasPrefix(f[2], want) {
		t.Errorf("the pasta process %q does not run from %s", running[0], want)
	}
	o.ok(t, "rm")
}
