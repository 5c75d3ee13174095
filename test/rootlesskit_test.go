package e2e

// RootlessKit as a second client of pasta (docs/rootlesskit.md):
// rootlesskit --net=pasta --port-driver=implicit runs a child in new user,
// mount and network namespaces and runs pasta for the network namespace.
// RootlessKit is Debian sid's (2.0.2), taken from the sid root file system
// that test/podman/env/build.sh makes (a Go program: it runs on this host
// as it is; scripts/test.sh builds the rootfs before the tests); it needs
// newuidmap and subordinate IDs for the test user.

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

const (
	rkRemoteTCPPort = "7000" // tcptool server in the remote netns
	rkRemoteUDPPort = "7001" // udptool echo server in the remote netns
	rkChildPort     = "8080" // tcptool server the child binds: -t auto forwards it
	rkChildStatus   = 7      // the child's exit status, which rootlesskit passes on
	rkDNSName       = "remote.test"
	rkDNSMissing    = "missing.test"
	rkTimeout       = 3 * time.Minute
)

// sidDir is the folder of the sid root file system that
// test/podman/env/build.sh makes (build.sh --dir sid says where).
func sidDir(t *testing.T) string {
	t.Helper()
	root, err := sandbox.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx := withTimeout(t, time.Minute)
	res := sandbox.Run(exec.CommandContext(ctx, "bash", filepath.Join(root, "test", "podman", "env", "build.sh"), "--dir", "sid"))
	if res.Err != nil {
		t.Fatalf("build.sh --dir sid: %s", res)
	}
	dir := strings.TrimSpace(res.Stdout)
	if !fileExists(filepath.Join(dir, "rootfs", "usr", "bin", "rootlesskit")) || !fileExists(filepath.Join(dir, "bin", "pasta")) {
		sandbox.SkipOrFail(t, "no sid root file system with RootlessKit at "+dir+": run test/podman/env/build.sh sid")
	}
	return dir
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// rkChild is the child RootlessKit runs: it reports the nameserver
// RootlessKit gave it, waits for its interface to have carrier (RootlessKit
// starts the child before pasta has attached the tap), talks TCP, UDP and
// DNS to the remote namespace, then serves TCP on rkChildPort until the
// test creates the file "go", and exits with rkChildStatus.
const rkChild = `set -u
ns=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)
echo "RESOLV ns=$ns"
i=0
until ip -o link show tap0 | grep -q LOWER_UP; do
	i=$((i + 1)); [ $i -le 100 ] || { echo "tap0 has no carrier after 10 s" >&2; exit 1; }; sleep 0.1
done
"$TCPTOOL" hello -c 192.0.2.2:` + rkRemoteTCPPort + ` -retry 10s
"$UDPTOOL" echo -c 192.0.2.2:` + rkRemoteUDPPort + ` -sizes "$SIZES" -seed 5
"$UDPTOOL" dns -s "$ns:53" -name ` + rkDNSName + ` -missing ` + rkDNSMissing + `
"$TCPTOOL" serve -name CHILD -l :` + rkChildPort + ` &
i=0
until [ -e "$DIR/go" ]; do
	i=$((i + 1)); [ $i -le 1200 ] || { echo "no go from the test after 120 s" >&2; exit 1; }; sleep 0.1
done
kill $!
exit "$STATUS"
`

// rkWrapper is given to RootlessKit as its pasta: it records the command
// line and its PID (pasta's, after exec) in $DIR, then runs the real pasta.
const rkWrapper = `#!/bin/sh
printf '%s\n' "$*" >"$DIR/pasta.argv"
echo $$ >"$DIR/pasta.pid"
exec "$REAL_PASTA" "$@"
`

func TestRootlessKit(t *testing.T) {
	sandbox.RequireRoot(t)
	sandbox.RequireTools(t, "newuidmap", "newgidmap", "mount", "awk")
	sid := sidDir(t)
	rk := filepath.Join(sid, "rootfs", "usr", "bin", "rootlesskit")
	tcpTool, udpTool := tcpToolProg.binary(t), udpToolProg.binary(t)
	// The pastas RootlessKit runs in turn: ours, and the C pasta of Debian
	// sid (2026-10-02), run on this host through the sid rootfs's loader
	// by build.sh's bin/pasta.
	pastas := map[string]string{"gopasta": sandbox.Binary(t), "cpasta": filepath.Join(sid, "bin", "pasta")}
	for name, real := range pastas {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sb := sandbox.New(t)
			sandbox.SubIDs(t)
			ctx := withTimeout(t, rkTimeout)
			tcpSrv := startServer(t, sb, sb.Remote(ctx, sandbox.Root, tcpTool, "serve", "-name", "REMOTE", "-l", ":"+rkRemoteTCPPort))
			startUDPRemoteServer(t, sb, udpTool, rkRemoteUDPPort)
			dns := startServer(t, sb, sb.Host(ctx, sandbox.Root, udpTool, "dnsserve", "-name", rkDNSName,
				"-a", sandbox.RemoteAddr4, "-a", sandbox.RemoteAddr6, "-l", "127.0.0.1:53"))

			dir := sb.UserDir()
			writeUserFile(t, sb, filepath.Join(dir, "pasta"), rkWrapper, 0o755)
			writeUserFile(t, sb, filepath.Join(dir, "child.sh"), rkChild, 0o644)
			// pasta reads the host's nameservers from /etc/resolv.conf: in
			// rootlesskit's mount namespace, that is the test's resolver on
			// the host's loopback, not this machine's.
			writeUserFile(t, sb, filepath.Join(dir, "resolv.conf"), "nameserver 127.0.0.1\n", 0o644)
			rkArgs := []string{rk, "--state-dir=" + dir + "/rk", "--net=pasta", "--pasta-binary=" + dir + "/pasta",
				"--port-driver=implicit", "--disable-host-loopback", "sh", dir + "/child.sh"}
			sizes := make([]string, len(udpEchoSizes))
			for i, n := range udpEchoSizes {
				sizes[i] = strconv.Itoa(n)
			}
			env := append(sb.Env(sandbox.Unprivileged), "DIR="+dir, "REAL_PASTA="+real, "TCPTOOL="+tcpTool,
				"UDPTOOL="+udpTool, "SIZES="+strings.Join(sizes, ","), "STATUS="+strconv.Itoa(rkChildStatus))
			script := "mount --bind " + dir + "/resolv.conf /etc/resolv.conf && exec " +
				shellJoin(sb.AsUser(append(append([]string{"env", "-i"}, env...), rkArgs...)...))
			t.Logf("$ %s", strings.Join(rkArgs, " "))
			p := sb.Start(t, sb.Host(ctx, sandbox.Root, "unshare", "--mount", "--propagation", "private", "sh", "-c", script))

			// The child's outbound traffic, done before it listens.
			waitForLine(t, p, "LISTENING", 60*time.Second)
			out := p.Stdout()
			argv, _ := os.ReadFile(filepath.Join(dir, "pasta.argv"))
			t.Logf("RootlessKit ran: pasta %s", strings.TrimSpace(string(argv)))
			checkRootlessKitOutbound(t, out, tcpSrv, dns)

			// A port the child binds is reachable from the remote
			// namespace (-t auto follows it within a second or so), and
			// the child sees the client's own address.
			g, c := hello(t, sb.Remote(ctx, sandbox.Unprivileged, tcpTool, "hello", "-c",
				hostPort(sandbox.HostAddr4, rkChildPort), "-retry", "10s"))
			if g["name"] != "CHILD" {
				t.Errorf("the host's port %s answered by %q, want the child", rkChildPort, g["name"])
			} else if got := peerAddr(t, g["peer"]); got != netip.MustParseAddr(sandbox.RemoteAddr4) {
				t.Errorf("the child sees the client %s as %s, want its own address", c["local"], g["peer"])
			}

			// The child's exit ends RootlessKit, with its status, and
			// pasta.
			writeUserFile(t, sb, filepath.Join(dir, "go"), "", 0o644)
			exited, err := p.Wait(30 * time.Second)
			if !exited {
				t.Fatalf("rootlesskit still runs 30 s after its child was told to exit:\n[stderr]\n%s", p.Stderr())
			}
			if code := p.Cmd.ProcessState.ExitCode(); code != rkChildStatus {
				t.Errorf("rootlesskit exited with %d (%v), want the child's %d\n[stderr]\n%s", code, err, rkChildStatus, p.Stderr())
			}
			pidText, _ := os.ReadFile(filepath.Join(dir, "pasta.pid"))
			pid, perr := strconv.Atoi(strings.TrimSpace(string(pidText)))
			if perr != nil {
				t.Fatalf("no pasta PID recorded: %q", pidText)
			}
			if took, gone := sandbox.WaitGone(pid, 5*time.Second); !gone {
				t.Errorf("pasta (PID %d) still runs 5 s after the child exited", pid)
			} else {
				t.Logf("pasta gone %v after rootlesskit", took.Round(time.Millisecond))
			}
		})
	}
}

// checkRootlessKitOutbound checks what the child reported of its outbound
// traffic: TCP to the remote (which saw the host's address), UDP echoes
// byte for byte, and DNS through the nameserver RootlessKit gave it, which
// pasta forwards to the host's resolver.
func checkRootlessKitOutbound(t *testing.T, out string, tcpSrv, dns *sandbox.Proc) {
	t.Helper()
	resolv := toolLine(t, out, "RESOLV")
	t.Logf("the child's nameserver: %s", resolv["ns"])
	if g := toolLine(t, out, "HELLO"); g["name"] != "REMOTE" {
		t.Errorf("TCP to the remote answered by %q, want REMOTE", g["name"])
	} else if got := peerAddr(t, g["peer"]); got != netip.MustParseAddr(sandbox.HostAddr4) {
		t.Errorf("the remote sees the child as %s, want the host's address %s", g["peer"], sandbox.HostAddr4)
	}
	if len(toolLines(tcpSrv.Stdout(), "ACCEPT")) == 0 {
		waitForLine(t, tcpSrv, "ACCEPT", 5*time.Second)
	}
	checkEcho(t, out)
	answers := map[string]map[string]string{}
	for _, l := range toolLines(out, "DNS") {
		answers[l["proto"]+"/"+l["name"]+"/"+l["type"]] = l
	}
	for _, proto := range []string{"udp", "tcp"} {
		if l := answers[proto+"/"+rkDNSName+"/A"]; l == nil || l["rcode"] != "0" || l["addrs"] != sandbox.RemoteAddr4 {
			t.Errorf("%s A over %s through %s: %v, want %s", rkDNSName, proto, resolv["ns"], l, sandbox.RemoteAddr4)
		}
		if l := answers[proto+"/"+rkDNSMissing+"/A"]; l == nil || l["rcode"] != "3" {
			t.Errorf("%s A over %s through %s: %v, want NXDOMAIN", rkDNSMissing, proto, resolv["ns"], l)
		}
	}
	if !waitForLines(dns, "QUERY", 2*time.Second, func(l []map[string]string) bool { return len(l) >= 6 }) {
		t.Errorf("the host's resolver logged %d queries, want 6:\n%s", len(toolLines(dns.Stdout(), "QUERY")), dns.Stdout())
	}
}

// writeUserFile writes a file owned by the test user.
func writeUserFile(t *testing.T, sb *sandbox.Sandbox, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, sb.UID, sb.GID); err != nil {
		t.Fatal(err)
	}
}

// shellJoin quotes argv for sh -c.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = sandbox.ShellQuote(a)
	}
	return strings.Join(q, " ")
}
