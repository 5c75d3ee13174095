// Package podman holds end-to-end tests of gopasta as the pasta of a real
// rootless Podman: Podman 5.4 (Debian trixie) and Podman 6.1 (Debian sid
// with experimental), each in a root file system that env/build.sh makes
// and env/run.sh enters.
//
// Every case runs four times, as parallel subtests PODMAN/PASTA: podman5
// and podman6, each with "gopasta" (our binary, given to run.sh as PASTA)
// and "cpasta" (the rootfs's own C pasta, passt 2025-05-03 or 2026-10-02),
// which keeps the suite itself honest. Each subtest makes its own sandbox
// (package sandbox: a "host" netns with a veth to a "remote" netns), runs
// its servers on sockets inside those namespaces, and runs Podman with
// run.sh inside the host netns, so that containers see the simulated host
// (192.0.2.1, 2001:db8::1) and never this machine's network. The servers:
// HTTP on the remote (all addresses, port 8080), HTTP on the host's
// 192.0.2.1:8090 (for host.containers.internal) and DNS on the host's
// 127.0.0.1:53 (the rootfs's resolv.conf names it, so it is where pasta's
// --dns-forward 169.254.1.1 goes); each records who talked to it.
//
// Run as root: GOPASTA_REQUIRE_E2E=1 go test ./test/podman -count=1 -v.
// See docs/podman.md and test/README.md.
package podman

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

func TestMain(m *testing.M) { sandbox.Main(m) }

// Files the container-side servers use, mounted with -v (see serverFiles).
const (
	// cgiPeer is busybox httpd's /cgi-bin/peer: the client's address.
	cgiPeer = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n"
	// udpEcho answers a datagram "X\n" with "X from PEER\n" (socat EXEC).
	udpEcho = "#!/bin/sh\nread -r l\necho \"$l from $SOCAT_PEERADDR\"\n"
)

// Peer addresses that a container's server sees for a client on the host's
// loopback going through -p. The C pasta splices such a connection over the
// container's loopback interface but to the container's own external
// address (not 127.0.0.1, so that services listening only on the
// container's loopback stay private; --host-lo-to-ns-lo changes that), so
// the kernel picks that address as the source too. With Podman's options
// the container's address is the host's.
const (
	loopbackPeer4 = sandbox.HostAddr4
	loopbackPeer6 = sandbox.HostAddr6
)

// serverFiles adds to s the files that the container-side servers use, and
// returns the podman run options mounting them (read-only): /www/cgi-bin/peer,
// /www/data/big.bin (random, returned) and /t/udpecho.
func serverFiles(t *testing.T, s *script) (mounts []string, big []byte) {
	big = randomBytes(t, bigSize)
	s.file("cgi/peer", []byte(cgiPeer), 0o755)
	s.file("data/big.bin", big, 0o644)
	s.file("tools/udpecho", []byte(udpEcho), 0o755)
	d := s.dir()
	return []string{"-v", d + "/cgi:/www/cgi-bin:ro", "-v", d + "/data:/www/data:ro", "-v", d + "/tools:/t:ro"}, big
}

// webClient is one HTTP client position: a namespace and a base URL that
// reaches a container's httpd, and the client address the container should
// see.
type webClient struct {
	name string
	ns   string // netns path
	base string // e.g. http://192.0.2.1:8080
	peer string // expected REMOTE_ADDR in the container, "" not to check
}

// waitHTTP retries GET base/index.html until the container's httpd answers
// (bounded by firstContact); later requests get no retries.
func waitHTTP(t *testing.T, c webClient, want string) bool {
	t.Helper()
	var body []byte
	start := time.Now()
	tries := 0
	err := retry(firstContact, func() error {
		var err error
		tries++
		t0 := time.Now()
		body, err = httpGet(c.ns, c.base+"/index.html", 3*time.Second)
		if err == nil && string(body) != want {
			err = fmt.Errorf("got %q, want %q", body, want)
		}
		if err != nil && tries <= 3 {
			t.Logf("%s: try %d after %v: %v", c.name, tries, time.Since(t0).Round(time.Millisecond), err)
		}
		return err
	})
	t.Logf("%s: first answer after %v, %d tries", c.name, time.Since(start).Round(time.Millisecond), tries)
	if err != nil {
		t.Errorf("%s: no answer from the container at %s within %v: %v", c.name, c.base, firstContact, err)
		return false
	}
	return true
}

// checkWeb fetches index.html (exact bytes), /cgi-bin/peer (the client
// address the container saw) and, if big is given, /data/big.bin (hash,
// one try: see checkBigFile).
func checkWeb(t *testing.T, c webClient, index string, big []byte) {
	t.Helper()
	body, err := httpGet(c.ns, c.base+"/index.html", requestTimeout)
	if err != nil {
		t.Errorf("%s: %v", c.name, err)
		return // the rest would only wait for the same failure
	}
	if string(body) != index {
		t.Errorf("%s: index.html is %q, want %q", c.name, body, index)
	}
	if c.peer != "" {
		body, err = httpGet(c.ns, c.base+"/cgi-bin/peer", requestTimeout)
		if err != nil {
			t.Errorf("%s: peer: %v", c.name, err)
		} else if got := peerIP(string(body)); got != c.peer {
			t.Errorf("%s: the container saw the client as %s (%q), want %s", c.name, got, body, c.peer)
		} else {
			t.Logf("%s: the container saw the client as %s", c.name, got)
		}
	}
	if big != nil {
		checkBigFile(t, c, big, 1)
	}
}

// checkBigFile fetches /data/big.bin and checks its hash, with at most
// tries tries (attempts(w)); each failed one but the last is reported in
// the log.
func checkBigFile(t *testing.T, c webClient, big []byte, tries int) {
	t.Helper()
	var err error
	for i := 1; i <= tries; i++ {
		t0 := time.Now()
		var body []byte
		body, err = httpGet(c.ns, c.base+"/data/big.bin", 4*requestTimeout)
		t.Logf("%s: big.bin in %v", c.name, time.Since(t0).Round(time.Millisecond))
		if err == nil && (len(body) != len(big) || sha256Hex(body) != sha256Hex(big)) {
			err = fmt.Errorf("got %d bytes (sha256 %s), want %d (sha256 %s)", len(body), sha256Hex(body), len(big), sha256Hex(big))
		}
		if err == nil {
			return
		}
		if i < tries {
			t.Logf("NOTE: the C pasta failed big.bin for %s (try %d of %d): %v", c.name, i, tries, err)
		}
	}
	t.Errorf("%s: big.bin: %v", c.name, err)
}

// checkRefused expects a TCP connection to url to be refused: nothing
// listens there.
func checkRefused(t *testing.T, name, ns, url string) {
	t.Helper()
	body, err := httpGet(ns, url, requestTimeout)
	switch {
	case err == nil:
		t.Errorf("%s: %s answered %q, want connection refused", name, url, body)
	case !errors.Is(err, syscall.ECONNREFUSED):
		t.Errorf("%s: %s: %v, want connection refused", name, url, err)
	}
}

// ---------------------------------------------------------------------------
// Busybox `ip` output inside a container.

type ctrLink struct {
	name  string
	flags []string
	mtu   int
	addrs []netip.Prefix // scope global only
}

var (
	linkRE = regexp.MustCompile(`^\d+:\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>\s+mtu\s+(\d+)`)
	addrRE = regexp.MustCompile(`^\s+inet6?\s+(\S+)\s.*\bscope\s+(\S+)`)
)

func parseIPAddr(out string) map[string]*ctrLink {
	links := map[string]*ctrLink{}
	var cur *ctrLink
	for _, l := range strings.Split(out, "\n") {
		if m := linkRE.FindStringSubmatch(l); m != nil {
			mtu, _ := strconv.Atoi(m[3])
			cur = &ctrLink{name: m[1], flags: strings.Split(m[2], ","), mtu: mtu}
			links[cur.name] = cur
			continue
		}
		if m := addrRE.FindStringSubmatch(l); m != nil && cur != nil && m[2] == "global" {
			if p, err := netip.ParsePrefix(m[1]); err == nil {
				cur.addrs = append(cur.addrs, p)
			}
		}
	}
	return links
}

// defaultRoute finds "default via GW dev DEV" in busybox `ip route` output.
func defaultRoute(out string) (gw, dev string, ok bool) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "default" {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "via":
				gw = f[i+1]
			case "dev":
				dev = f[i+1]
			}
		}
		return gw, dev, true
	}
	return "", "", false
}

// hostNet is the simulated host's view of its upstream interface.
type hostNet struct {
	addrs      []netip.Prefix // global
	gw4, gw6   string
	dev4, dev6 string
}

func hostView(t *testing.T, sb *sandbox.Sandbox) hostNet {
	t.Helper()
	var h hostNet
	links, err := sandbox.ParseLinks(sb.MustHost(t, sandbox.Root, "ip", "-j", "addr", "show", "dev", sandbox.HostIf))
	if err != nil || len(links) != 1 {
		t.Fatalf("host addresses: %v %+v", err, links)
	}
	for _, a := range links[0].AddrInfo {
		if a.Scope == "global" {
			h.addrs = append(h.addrs, netip.PrefixFrom(netip.MustParseAddr(a.Local), a.Prefixlen))
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		routes, err := sandbox.ParseRoutes(sb.MustHost(t, sandbox.Root, "ip", "-j", fam, "route", "show", "default"))
		if err != nil || len(routes) == 0 {
			t.Fatalf("host %s default route: %v %+v", fam, err, routes)
		}
		if fam == "-4" {
			h.gw4, h.dev4 = routes[0].Gateway, routes[0].Dev
		} else {
			h.gw6, h.dev6 = routes[0].Gateway, routes[0].Dev
		}
	}
	return h
}

func prefixStrings(ps []netip.Prefix) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	slices.Sort(s)
	return s
}

// ---------------------------------------------------------------------------
// The cases.

// The container's interface, addresses, routes and MTU are the simulated
// host's (interface name, global addresses with their prefix length,
// default routes), with pasta's MTU 65520; with --network pasta and with
// the rootless default network; and --network pasta:--mtu,1500 reaches
// pasta.
func TestAddressesRoutesMTU(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		host := hostView(t, w.sb)
		inspect := sections(
			sec{"addr", "ip addr show"},
			sec{"route4", "ip -4 route show"},
			sec{"route6", "ip -6 route show"},
		)
		s := newScript()
		s.run("plain", "podman", "run", "--rm", "--network", "pasta", image, "sh", "-c", inspect)
		s.run("default", "podman", "run", "--rm", image, "sh", "-c", inspect)
		s.run("mtu", "podman", "run", "--rm", "--network", "pasta:--mtu,1500", image,
			"cat", "/sys/class/net/"+sandbox.HostIf+"/mtu")
		o := w.exec(t, s, nil)

		for _, name := range []string{"plain", "default"} {
			t.Run(name, func(t *testing.T) {
				r, ok := o.ok(t, name)
				if !ok {
					return
				}
				secs := parseSections(r.Stdout)
				addr, _ := section(t, secs, "addr")
				links := parseIPAddr(addr)
				l := links[sandbox.HostIf]
				if l == nil {
					t.Fatalf("no interface %s (the host's) in the container:\n%s", sandbox.HostIf, addr)
				}
				if !slices.Contains(l.flags, "UP") {
					t.Errorf("%s is not UP: %v", l.name, l.flags)
				}
				if l.mtu != defaultMTU {
					t.Errorf("%s MTU %d, want %d", l.name, l.mtu, defaultMTU)
				}
				if got, want := prefixStrings(l.addrs), prefixStrings(host.addrs); !slices.Equal(got, want) {
					t.Errorf("global addresses %v, the host has %v:\n%s", got, want, addr)
				}
				r4, _ := section(t, secs, "route4")
				if gw, dev, ok := defaultRoute(r4); !ok || gw != host.gw4 || dev != sandbox.HostIf {
					t.Errorf("IPv4 default route via %q dev %q, want via %s dev %s (the host's):\n%s", gw, dev, host.gw4, sandbox.HostIf, r4)
				}
				r6, _ := section(t, secs, "route6")
				if gw, dev, ok := defaultRoute(r6); !ok || gw != host.gw6 || dev != sandbox.HostIf {
					t.Errorf("IPv6 default route via %q dev %q, want via %s dev %s (the host's):\n%s", gw, dev, host.gw6, sandbox.HostIf, r6)
				}
			})
		}
		if r, ok := o.ok(t, "mtu"); ok && strings.TrimSpace(r.Stdout) != "1500" {
			t.Errorf("--network pasta:--mtu,1500: MTU %q, want 1500", strings.TrimSpace(r.Stdout))
		}
	})
}

// A container fetches files from an HTTP server in the remote netns, over
// IPv4 and IPv6: exact bytes, a 2 MiB file's hash, and the server sees the
// host's address as the client (pasta's sockets are the host's).
func TestOutboundHTTP(t *testing.T) { eachVariant(t, outboundHTTP) }

func outboundHTTP(t *testing.T, w *world) {
	r4 := fmt.Sprintf("http://%s:%d", sandbox.RemoteAddr4, remoteHTTPPort)
	r6 := fmt.Sprintf("http://[%s]:%d", sandbox.RemoteAddr6, remoteHTTPPort)
	s := newScript()
	s.run("wget", "podman", "run", "--rm", "--network", "pasta", image, "sh", "-c", sections(
		sec{"index4", "wget -q -T 5 -O- " + r4 + "/index.html"},
		sec{"big4", "wget -q -T 5 -O /tmp/b " + r4 + "/big.bin && sha256sum /tmp/b"},
		sec{"peer4", "wget -q -T 5 -O- " + r4 + "/peer"},
		sec{"index6", "wget -q -T 5 -O- " + r6 + "/index.html"},
		sec{"big6", "wget -q -T 5 -O /tmp/b " + r6 + "/big.bin && sha256sum /tmp/b"},
		sec{"peer6", "wget -q -T 5 -O- " + r6 + "/peer"},
	))
	o := w.exec(t, s, nil)
	r, ok := o.ok(t, "wget")
	if !ok {
		return
	}
	secs := parseSections(r.Stdout)
	for _, fam := range []struct{ v, self string }{{"4", sandbox.HostAddr4}, {"6", sandbox.HostAddr6}} {
		if out, ok := section(t, secs, "index"+fam.v); ok && out != remoteIndex {
			t.Errorf("IPv%s: index.html is %q, want %q", fam.v, out, remoteIndex)
		}
		if out, ok := section(t, secs, "big"+fam.v); ok {
			if f := strings.Fields(out); len(f) == 0 || f[0] != w.remoteBigSum {
				t.Errorf("IPv%s: big.bin sha256 %q, want %s", fam.v, out, w.remoteBigSum)
			}
		}
		if out, ok := section(t, secs, "peer"+fam.v); ok && peerIP(out) != fam.self {
			t.Errorf("IPv%s: the remote server saw the client as %q, want %s (the host)", fam.v, out, fam.self)
		}
	}
	t.Logf("remote server's clients: %v", w.remoteHTTP.Peers())
}

// -p 8080:80: httpd in the container, reached from the remote netns (the
// host's addresses) and from the host's loopback, IPv4 and IPv6, with exact
// bytes, a 2 MiB file, and the client address the container sees.
func TestPortTCP(t *testing.T) { eachVariant(t, portTCP) }

func portTCP(t *testing.T, w *world) {
	s := newScript()
	mounts, big := serverFiles(t, s)
	args := append([]string{"podman", "run", "-d", "--name", s.ctr("web"), "--network", "pasta", "-p", "8080:80"}, mounts...)
	s.run("start", append(args, image, "httpd", "-f", "-p", "80", "-h", "/www")...)
	s.step("up")
	s.run("logs", "podman", "logs", s.ctr("web"))
	s.run("rm", "podman", "rm", "-f", "-t", "0", s.ctr("web"))
	remote, host := w.sb.RemotePath(), w.sb.HostPath()
	w.exec(t, s, map[string]func(*testing.T, *outcome){"up": func(t *testing.T, o *outcome) {
		if _, ok := o.ok(t, "start"); !ok {
			return
		}
		clients := []webClient{
			{"remote-ipv4", remote, "http://192.0.2.1:8080", sandbox.RemoteAddr4},
			{"remote-ipv6", remote, "http://[2001:db8::1]:8080", sandbox.RemoteAddr6},
			{"loopback-ipv4", host, "http://127.0.0.1:8080", loopbackPeer4},
			{"loopback-ipv6", host, "http://[::1]:8080", loopbackPeer6},
		}
		if !waitHTTP(t, clients[0], containerIndex) {
			return
		}
		for _, c := range clients {
			checkWeb(t, c, containerIndex, nil)
			checkBigFile(t, c, big, attempts(w))
		}
	}})
}

// -p 5353:53/udp: socat in the container answers each datagram with the
// sender's address, for datagrams from the remote netns and from the host's
// loopback, IPv4 and IPv6.
func TestPortUDP(t *testing.T) { eachVariant(t, portUDP) }

func portUDP(t *testing.T, w *world) {
	s := newScript()
	mounts, _ := serverFiles(t, s)
	args := append([]string{"podman", "run", "-d", "--name", s.ctr("udp"), "--network", "pasta", "-p", "5353:53/udp"}, mounts...)
	s.run("start", append(args, image, "sh", "-c",
		"socat UDP4-LISTEN:53,fork EXEC:/t/udpecho & socat UDP6-LISTEN:53,fork,ipv6only=1 EXEC:/t/udpecho & wait")...)
	s.step("up")
	s.run("logs", "podman", "logs", s.ctr("udp"))
	s.run("rm", "podman", "rm", "-f", "-t", "0", s.ctr("udp"))
	remote, host := w.sb.RemotePath(), w.sb.HostPath()
	w.exec(t, s, map[string]func(*testing.T, *outcome){"up": func(t *testing.T, o *outcome) {
		if _, ok := o.ok(t, "start"); !ok {
			return
		}
		clients := []struct{ name, ns, addr, peer string }{
			{"remote-ipv4", remote, "192.0.2.1:5353", sandbox.RemoteAddr4},
			{"remote-ipv6", remote, "[2001:db8::1]:5353", sandbox.RemoteAddr6},
			{"loopback-ipv4", host, "127.0.0.1:5353", loopbackPeer4},
			{"loopback-ipv6", host, "[::1]:5353", loopbackPeer6},
		}
		// First contact: until both socats (IPv4, IPv6) listen in the
		// container.
		for _, c := range clients[:2] {
			if err := retry(firstContact, func() error {
				_, err := udpExchange(c.ns, c.addr, "first\n", time.Second)
				return err
			}); err != nil {
				t.Errorf("%s: no UDP answer from the container within %v: %v", c.name, firstContact, err)
				return
			}
		}
		for _, c := range clients {
			msg := "hello-" + c.name
			got, err := udpExchange(c.ns, c.addr, msg+"\n", 3*time.Second)
			if err != nil {
				t.Errorf("%s: %s: %v", c.name, c.addr, err)
				continue
			}
			text, peer, ok := strings.Cut(strings.TrimSpace(got), " from ")
			if !ok || text != msg {
				t.Errorf("%s: answer %q, want %q", c.name, got, msg+" from "+c.peer)
				continue
			}
			if peerIP(peer) != c.peer {
				t.Errorf("%s: the container saw the sender as %s (%q), want %s", c.name, peerIP(peer), got, c.peer)
			} else {
				t.Logf("%s: the container saw the sender as %s", c.name, peerIP(peer))
			}
		}
	}})
}

// -p with a host address (127.0.0.1:8082:80: only the host's loopback is
// served) and with a port range (9000-9001:9000-9001); and a service that
// listens only on the container's loopback (9002) is not exposed by -p.
func TestPortHostIPAndRange(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		mounts, _ := serverFiles(t, s)
		args := append([]string{"podman", "run", "-d", "--name", s.ctr("web"),
			"-p", "127.0.0.1:8082:80", "-p", "9000-9001:9000-9001", "-p", "9002:9002"}, mounts...)
		s.run("start", append(args, image, "sh", "-c",
			"mkdir -p /w9000 /w9001 && echo port-9000 >/w9000/index.html && echo port-9001 >/w9001/index.html && "+
				"{ httpd -f -p 80 -h /www & httpd -f -p 9000 -h /w9000 & httpd -f -p 9001 -h /w9001 & "+
				"httpd -f -p 127.0.0.1:9002 -h /www & wait; }")...)
		s.step("up")
		s.run("logs", "podman", "logs", s.ctr("web"))
		s.run("rm", "podman", "rm", "-f", "-t", "0", s.ctr("web"))
		remote, host := w.sb.RemotePath(), w.sb.HostPath()
		w.exec(t, s, map[string]func(*testing.T, *outcome){"up": func(t *testing.T, o *outcome) {
			if _, ok := o.ok(t, "start"); !ok {
				return
			}
			if !waitHTTP(t, webClient{"remote-ipv4-9000", remote, "http://192.0.2.1:9000", ""}, "port-9000\n") {
				return
			}
			lo := webClient{"loopback-8082", host, "http://127.0.0.1:8082", loopbackPeer4}
			if waitHTTP(t, lo, containerIndex) {
				checkWeb(t, lo, containerIndex, nil)
			}
			// 8082 is bound to 127.0.0.1 only.
			checkRefused(t, "remote-ipv4-8082", remote, "http://192.0.2.1:8082/index.html")
			checkRefused(t, "remote-ipv6-8082", remote, "http://[2001:db8::1]:8082/index.html")
			checkRefused(t, "host-ipv4-8082", host, "http://192.0.2.1:8082/index.html")
			checkRefused(t, "loopback-ipv6-8082", host, "http://[::1]:8082/index.html")
			// The range maps each port to its own.
			for _, c := range []struct {
				webClient
				want string
			}{
				{webClient{"remote-ipv4-9000", remote, "http://192.0.2.1:9000", ""}, "port-9000\n"},
				{webClient{"remote-ipv4-9001", remote, "http://192.0.2.1:9001", ""}, "port-9001\n"},
				{webClient{"remote-ipv6-9001", remote, "http://[2001:db8::1]:9001", ""}, "port-9001\n"},
				{webClient{"loopback-ipv4-9000", host, "http://127.0.0.1:9000", ""}, "port-9000\n"},
				{webClient{"loopback-ipv4-9001", host, "http://127.0.0.1:9001", ""}, "port-9001\n"},
			} {
				checkWeb(t, c.webClient, c.want, nil)
			}
			// Forwarded, but the container's server listens on its
			// 127.0.0.1 only: nobody outside may reach it.
			for _, c := range []webClient{
				{"loopback-ipv4-9002", host, "http://127.0.0.1:9002", ""},
				{"remote-ipv4-9002", remote, "http://192.0.2.1:9002", ""},
			} {
				if body, err := httpGet(c.ns, c.base+"/index.html", requestTimeout); err == nil {
					t.Errorf("%s: reached a server that listens only on the container's loopback: %q", c.name, body)
				} else {
					t.Logf("%s: not reachable, as it should be (%v)", c.name, err)
				}
			}
		}})
	})
}

// DNS through 169.254.1.1: the container's resolv.conf names it first;
// nslookup (A, AAAA and a name that does not exist) and a name in a URL are
// answered by the resolver on the simulated host's loopback (the rootfs's
// resolv.conf names 127.0.0.1, and pasta's --dns-forward goes there), which
// sees every query come from the host's loopback.
func TestDNS(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		s.run("dns", "podman", "run", "--rm", "--network", "pasta", image, "sh", "-c", sections(
			sec{"resolv", "cat /etc/resolv.conf"},
			sec{"a", "nslookup -type=A " + remoteName + " " + dnsForward},
			sec{"aaaa", "nslookup -type=AAAA " + remoteName + " " + dnsForward},
			sec{"nx", "nslookup -type=A nosuch.test " + dnsForward},
		))
		// A name in a URL goes through the C library's resolver and
		// resolv.conf. --dns keeps only 169.254.1.1 there: Podman
		// otherwise adds public resolvers after it (the rootfs names
		// only 127.0.0.1, which Podman drops), and a failing lookup must
		// not try them, even inside the sandbox.
		s.run("url", "podman", "run", "--rm", "--network", "pasta", "--dns", dnsForward, image,
			"wget", "-q", "-T", "5", "-O-", fmt.Sprintf("http://%s:%d/index.html", remoteName, remoteHTTPPort))
		o := w.exec(t, s, nil)
		if r, ok := o.ok(t, "url"); ok && r.Stdout != remoteIndex {
			t.Errorf("http://%s:%d/index.html: %q, want %q", remoteName, remoteHTTPPort, r.Stdout, remoteIndex)
		}
		r, ok := o.ok(t, "dns")
		if !ok {
			return
		}
		secs := parseSections(r.Stdout)
		if out, ok := section(t, secs, "resolv"); ok {
			first := ""
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
					first = f[1]
					break
				}
			}
			if first != dnsForward {
				t.Errorf("first nameserver %q, want %s:\n%s", first, dnsForward, out)
			}
		}
		if out, ok := section(t, secs, "a"); ok && !strings.Contains(out, "Address: "+sandbox.RemoteAddr4) {
			t.Errorf("nslookup A: no %s:\n%s", sandbox.RemoteAddr4, out)
		}
		if out, ok := section(t, secs, "aaaa"); ok && !strings.Contains(out, "Address: "+sandbox.RemoteAddr6) {
			t.Errorf("nslookup AAAA: no %s:\n%s", sandbox.RemoteAddr6, out)
		}
		if nx := secs["nx"]; nx.RC == 0 || !strings.Contains(nx.Out, "NXDOMAIN") {
			t.Errorf("nslookup nosuch.test: exit %d, want non-zero and NXDOMAIN (from our resolver):\n%s", nx.RC, nx.Out)
		}
		qs := w.dns.Queries()
		t.Logf("queries seen by the resolver on the host's loopback: %+v", qs)
		types := map[string]bool{}
		for _, q := range qs {
			if q.Name == remoteName+"." {
				types[q.Type] = true
			}
			if a, err := netip.ParseAddr(q.From); err != nil || !a.IsLoopback() {
				t.Errorf("query %+v came from %s, want the host's loopback", q, q.From)
			}
		}
		if !types["A"] || !types["AAAA"] {
			t.Errorf("the resolver saw %s queries of types %v, want A and AAAA", remoteName, types)
		}
	})
}

// host.containers.internal is 169.254.1.2 in /etc/hosts and, through
// --map-guest-addr, reaches a server listening on the simulated host's own
// address (192.0.2.1), which sees the host's address as the client.
func TestHostContainersInternal(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		base := fmt.Sprintf("http://host.containers.internal:%d", hostHTTPPort)
		s := newScript()
		s.run("hci", "podman", "run", "--rm", "--network", "pasta", image, "sh", "-c", sections(
			sec{"hosts", "grep -w host.containers.internal /etc/hosts"},
			sec{"index", "wget -q -T 5 -O- " + base + "/index.html"},
			sec{"peer", "wget -q -T 5 -O- " + base + "/peer"},
		))
		o := w.exec(t, s, nil)
		r, ok := o.ok(t, "hci")
		if !ok {
			return
		}
		secs := parseSections(r.Stdout)
		if out, ok := section(t, secs, "hosts"); ok {
			if f := strings.Fields(out); len(f) < 2 || f[0] != mapGuest {
				t.Errorf("/etc/hosts: %q, want host.containers.internal at %s", out, mapGuest)
			}
		}
		if out, ok := section(t, secs, "index"); ok && out != hostIndex {
			t.Errorf("index.html: %q, want %q", out, hostIndex)
		}
		if out, ok := section(t, secs, "peer"); ok && peerIP(out) != sandbox.HostAddr4 {
			t.Errorf("the host's server saw the container as %q, want %s", out, sandbox.HostAddr4)
		}
		t.Logf("host server's clients: %v", w.hostHTTP.Peers())
	})
}

// ICMP echo from a container (busybox ping needs --cap-add NET_RAW) reaches
// the remote over IPv4 and IPv6, and the host through host.containers.internal
// (169.254.1.2); pasta answers with ping sockets, which the sandbox's
// net.ipv4.ping_group_range allows.
func TestPing(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		s.run("ping", "podman", "run", "--rm", "--network", "pasta", "--cap-add", "NET_RAW", image, "sh", "-c", sections(
			sec{"remote4", "ping -c 2 -W 3 " + sandbox.RemoteAddr4},
			sec{"remote6", "ping -6 -c 2 -W 3 " + sandbox.RemoteAddr6},
			sec{"hci", "ping -c 2 -W 3 host.containers.internal"},
		))
		o := w.exec(t, s, nil)
		r, ok := o.ok(t, "ping")
		if !ok {
			return
		}
		secs := parseSections(r.Stdout)
		for _, c := range []struct{ name, from string }{
			{"remote4", sandbox.RemoteAddr4},
			{"remote6", sandbox.RemoteAddr6},
			{"hci", mapGuest},
		} {
			out, ok := section(t, secs, c.name)
			if !ok {
				continue
			}
			if !strings.Contains(out, "2 packets received") || strings.Count(out, "bytes from "+c.from+":") != 2 {
				t.Errorf("%s: want 2 replies from %s:\n%s", c.name, c.from, out)
			}
		}
	})
}

// A pod with --network pasta and -p 8081:80: two containers share its
// network (one reaches the other's httpd on 127.0.0.1), the port reaches
// the pod from the remote and from the host's loopback, one pasta serves
// the pod, confined (checkConfined), and none is left within 1 s of podman
// pod rm.
func TestPod(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		pod := s.ctr("pod")
		mounts, big := serverFiles(t, s)
		s.run("pod", "podman", "pod", "create", "--name", pod, "--network", "pasta", "-p", "8081:80")
		args := append([]string{"podman", "run", "-d", "--pod", pod, "--name", s.ctr("web")}, mounts...)
		s.run("web", append(args, image, "httpd", "-f", "-p", "80", "-h", "/www")...)
		s.run("client", "podman", "run", "--rm", "--pod", pod, image, "sh", "-c", sections(
			sec{"wait", "i=0; while [ $i -lt 50 ] && ! wget -q -T 2 -O /dev/null http://127.0.0.1:80/index.html 2>/dev/null; do i=$((i+1)); sleep 0.1; done"},
			sec{"lo", "wget -q -T 5 -O- http://127.0.0.1:80/index.html"},
			sec{"remote", fmt.Sprintf("wget -q -T 5 -O- http://%s:%d/index.html", sandbox.RemoteAddr4, remoteHTTPPort)},
		))
		s.pastas("running")
		s.step("up")
		s.run("rm", "podman", "pod", "rm", "-f", "-t", "0", pod)
		s.gone("podrm")
		remote, host := w.sb.RemotePath(), w.sb.HostPath()
		o := w.exec(t, s, map[string]func(*testing.T, *outcome){"up": func(t *testing.T, o *outcome) {
			if _, ok := o.ok(t, "web"); !ok {
				return
			}
			if p := o.pastas("running"); len(p) == 1 {
				checkConfined(t, w, p[0])
			}
			clients := []webClient{
				{"remote-ipv4", remote, "http://192.0.2.1:8081", sandbox.RemoteAddr4},
				{"loopback-ipv4", host, "http://127.0.0.1:8081", loopbackPeer4},
			}
			if !waitHTTP(t, clients[0], containerIndex) {
				return
			}
			for _, c := range clients {
				checkWeb(t, c, containerIndex, nil)
				checkBigFile(t, c, big, attempts(w))
			}
		}})
		o.ok(t, "pod")
		if r, ok := o.ok(t, "client"); ok {
			secs := parseSections(r.Stdout)
			if out, ok := section(t, secs, "lo"); ok && out != containerIndex {
				t.Errorf("second container to the first over the pod's loopback: %q, want %q", out, containerIndex)
			}
			if out, ok := section(t, secs, "remote"); ok && out != remoteIndex {
				t.Errorf("second container to the remote: %q, want %q", out, remoteIndex)
			}
		}
		if p := o.pastas("running"); len(p) != 1 {
			t.Errorf("%d pasta processes for the pod, want 1:\n%s", len(p), strings.Join(p, "\n"))
		}
		o.ok(t, "rm")
		o.checkGone(t, "podrm")
	})
}

// podman stop, podman rm -f and the end of podman run --rm leave no pasta
// process within 1 s (Podman deletes the netns file and never signals
// pasta). Also checks that the pasta running is the variant's binary.
func TestStopRmNoLeftover(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		s.run("start", "podman", "run", "-d", "--name", s.ctr("a"), "-p", "8080:80", image, "httpd", "-f", "-p", "80", "-h", "/www")
		s.pastas("running")
		s.run("stop", "podman", "stop", "-t", "0", s.ctr("a"))
		s.gone("stop")
		s.run("rm", "podman", "rm", s.ctr("a"))
		s.run("start2", "podman", "run", "-d", "--name", s.ctr("b"), image, "sleep", "600")
		s.pastas("running2")
		s.run("rmf", "podman", "rm", "-f", "-t", "0", s.ctr("b"))
		s.gone("rmf")
		s.run("once", "podman", "run", "--rm", image, "true")
		s.gone("runrm")
		o := w.exec(t, s, nil)

		for _, step := range []struct{ start, running, stop, gone string }{
			{"start", "running", "stop", "stop"},
			{"start2", "running2", "rmf", "rmf"},
		} {
			if _, ok := o.ok(t, step.start); !ok {
				continue
			}
			running := o.pastas(step.running)
			if len(running) != 1 {
				t.Errorf("after %s: %d pasta processes, want 1:\n%s", step.start, len(running), strings.Join(running, "\n"))
			} else {
				checkPastaExe(t, w, running[0])
			}
			o.ok(t, step.stop)
			o.checkGone(t, step.gone)
		}
		o.ok(t, "rm")
		if _, ok := o.ok(t, "once"); ok {
			o.checkGone(t, "runrm")
		}
	})
}

// checkPastaExe checks that a process line of script.pastas ("PID COMM EXE
// ARGV...") is the variant's pasta: ours is installed by run.sh in
// helperDir, the C pasta is /usr/bin/pasta (which may exec pasta.avx2).
func checkPastaExe(t *testing.T, w *world, line string) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 3 {
		t.Errorf("bad process line %q", line)
		return
	}
	exe := f[2]
	if exe == "?" { // not dumpable: judge by argv[0]
		if len(f) < 4 {
			t.Errorf("bad process line %q", line)
			return
		}
		c := f[3] == "/usr/bin/pasta"
		if c != (w.pasta == "") {
			t.Errorf("pasta process %q (executable unreadable) is not the %s one", line, w.variant)
		}
		return
	}
	ours := strings.HasPrefix(exe, helperDir+"/")
	if w.pasta != "" && !ours {
		t.Errorf("pasta process %q is not our binary (want %s/...)", line, helperDir)
	}
	if w.pasta == "" && (ours || !strings.HasPrefix(exe, "/usr/bin/pasta")) {
		t.Errorf("pasta process %q is not the rootfs's /usr/bin/pasta", line)
	}
}

// podman info shows pasta's executable and its --version output (Podman
// 5.4 shows all of it; the first line names the program and version).
func TestInfoVersion(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		s.run("version", "podman", "info", "--format", "{{.Host.Pasta.Version}}")
		s.run("exe", "podman", "info", "--format", "{{.Host.Pasta.Executable}}")
		o := w.exec(t, s, nil)
		// run.sh always puts its logging wrapper (PASTA_LOG) first in
		// helper_binaries_dir, in front of either pasta.
		if r, ok := o.ok(t, "exe"); ok && strings.TrimSpace(r.Stdout) != helperDir+"/pasta" {
			t.Errorf("Host.Pasta.Executable %q, want %s/pasta", strings.TrimSpace(r.Stdout), helperDir)
		}
		r, ok := o.ok(t, "version")
		if !ok {
			return
		}
		got := strings.TrimSpace(r.Stdout)
		t.Logf("Host.Pasta.Version: %q", got)
		if w.pasta == "" {
			// Known: the C pasta of 2025-05-03 (trixie) prints nothing
			// for --version when stdout is not a terminal (its stdio
			// buffer is lost to _exit()), so Podman shows an empty
			// version. The 2026 one (sid) prints it.
			if got == "" && w.podman.rootfs == "trixie" {
				t.Logf("NOTE (known bug of the C pasta, tolerated): empty Host.Pasta.Version")
			} else if !strings.HasPrefix(got, "pasta ") {
				t.Errorf("Host.Pasta.Version %q, want \"pasta ...\"", got)
			}
			return
		}
		want := versionOutput(t, w.pasta)
		first, _, _ := strings.Cut(want, "\n")
		if gotFirst, _, _ := strings.Cut(got, "\n"); gotFirst != first || first == "" {
			t.Errorf("Host.Pasta.Version starts with %q, want %q (the first line of %s --version)", gotFirst, first, w.pasta)
		}
	})
}

// versionOutput runs bin --version on this machine and returns its output,
// trimmed.
func versionOutput(t *testing.T, bin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		t.Errorf("%s --version: %v", bin, err)
	}
	return strings.TrimSpace(string(out))
}

// firstLines returns the first n lines of s, trimmed.
func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

// A pasta failure is a clear Podman error: podman run exits 126 with
// "pasta failed with exit code N" and pasta's own message, leaves no
// container and no pasta behind.
func TestPastaFailure(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		s.run("bogus", "podman", "run", "--rm", "--name", s.ctr("a"), "--network", "pasta:--bogus-option", image, "true")
		s.run("badaddr", "podman", "run", "--rm", "--name", s.ctr("b"), "--network", "pasta:-a,1.2.3", image, "true")
		s.run("left", "podman", "ps", "-a", "--filter", "name=^"+s.name, "--format", "{{.Names}} {{.Status}}")
		s.gone("after")
		o := w.exec(t, s, nil)
		for _, c := range []struct{ name, want string }{
			{"bogus", "unrecognized option '--bogus-option'"},
			{"badaddr", "1.2.3"},
		} {
			r := o.cmd(c.name)
			if r.Code != 126 {
				t.Errorf("%s: exit %d, want 126 (Podman's code for a failed network setup)\n%s", c.name, r.Code, r)
				continue
			}
			if !strings.Contains(r.Stderr, "pasta failed with exit code") || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("%s: error output lacks \"pasta failed with exit code\" and %q:\n%s", c.name, c.want, r)
				continue
			}
			t.Logf("%s: %s", c.name, firstLines(r.Stderr, 2))
		}
		if r, ok := o.ok(t, "left"); ok && strings.TrimSpace(r.Stdout) != "" {
			t.Errorf("containers left after failed runs with --rm:\n%s", r.Stdout)
		}
		o.checkGone(t, "after")
	})
}

// Root in a user namespace (run.sh's USERNS=1), the other way Podman
// accepts pasta (plain root Podman refuses it): the container reaches the
// remote, and -p works, over TCP and UDP, from the remote and the host's
// loopback. (Root's default network is a bridge: the cases name pasta.)
func TestRootInUserNamespace(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		w.rootInUserns = true
		for name, fn := range map[string]func(*testing.T, *world){"outbound": outboundHTTP, "port-tcp": portTCP, "port-udp": portUDP} {
			t.Run(name, func(t *testing.T) { fn(t, w) })
		}
	})
}
