package podman

import (
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// Podman 6's rootless bridge networks with rootless_port_forwarder="pasta"
// (containers.conf(5), [network]): one pasta, started with -c, serves the
// rootless network namespace that holds the bridges, and Podman runs pesto
// to add each container's published ports (-t 0.0.0.0/8080:CONTAINER/80,
// -t [::]/8080:CONTAINER6/80) when it starts and delete them when it
// stops, so that containers see their clients' real addresses. Each case
// runs with gopasta and our pesto (given to run.sh as PASTA and PESTO), and
// with the rootfs's own C pasta and C pesto (passt 2026-10-02).

// bridgePodman is the Podman that has the mode (6.1; Podman 5 has not).
var bridgePodman = podmans[1]

// forwarderConf makes Podman use pasta and pesto for the rootless bridge.
const forwarderConf = "[network]\nrootless_port_forwarder = \"pasta\"\n"

// pestoSocket is where Podman asks pasta for its control socket.
const pestoSocket = "/run/user/1000/containers/networks/rootless-netns/pasta.sock"

// eachBridgeVariant runs fn for Podman 6 with gopasta and with the C
// pasta, as parallel subtests.
func eachBridgeVariant(t *testing.T, fn func(t *testing.T, w *world)) {
	t.Parallel()
	for _, v := range []string{goPasta, cPasta} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, bridgePodman, v)
			if v == goPasta {
				w.pesto = sandbox.Pesto(t)
			}
			fn(t, w)
		})
	}
}

// bridgeScript starts a script in bridge mode: the forwarder set, a bridge
// network with IPv6 (the containers get fd00::/8 addresses besides
// 10.89.x), and $PESTO, the pesto Podman runs (ours if run.sh was given
// one, else the rootfs's).
func bridgeScript(t *testing.T) (*script, []string) {
	s := newScript()
	s.file("containers.conf", []byte(forwarderConf), 0o644)
	s.file("web2/index.html", []byte("hello-from-web2\n"), 0o644)
	s.file("web2/cgi-bin/.keep", nil, 0o644) // where the CGI script is mounted
	mounts, _ := serverFiles(t, s)
	s.sh("export CONTAINERS_CONF_OVERRIDE=$D/containers.conf")
	s.sh("PESTO=" + helperDir + "/pesto; [ -x $PESTO ] || PESTO=pesto")
	s.run("netcreate", "podman", "network", "create", "--ipv6", s.ctr("net"))
	return s, mounts
}

// rules runs pesto in the script, keeping its output under name.
func rules(s *script, name string) { s.sh("run " + name + " $PESTO " + pestoSocket) }

// httpd returns the podman run command line of a container named
// s.ctr(name) on the bridge network publishing port on 80, serving root
// (with the mounts of serverFiles).
func httpd(s *script, mounts []string, name, port, root string) []string {
	// busybox httpd ignores SIGTERM: a stop kills it at once.
	args := []string{"podman", "run", "-d", "--name", s.ctr(name), "--network", s.ctr("net"), "-p", port + ":80", "--stop-timeout", "0"}
	args = append(args, mounts...)
	if root != "/www" {
		args = append(args, "-v", s.dir()+"/web2:"+root+":ro", "-v", s.dir()+"/cgi:"+root+"/cgi-bin:ro")
	}
	return append(args, image, "httpd", "-f", "-p", "80", "-h", root)
}

// webClients are the clients of a port published on the bridge: the
// remote over IPv4 and IPv6, which the container must see as themselves,
// and the host's loopback (whose address can't reach the container).
func webClients(w *world, port string) []webClient {
	remote, host := w.sb.RemotePath(), w.sb.HostPath()
	return []webClient{
		{"remote-ipv4-" + port, remote, "http://192.0.2.1:" + port, sandbox.RemoteAddr4},
		{"remote-ipv6-" + port, remote, "http://[2001:db8::1]:" + port, sandbox.RemoteAddr6},
		{"loopback-ipv4-" + port, host, "http://127.0.0.1:" + port, ""},
	}
}

// checkServes checks that every client of port gets index from the
// container, the remote ones seen with their own address. A container
// just started may not answer yet, and its IPv6 address may still be
// tentative (duplicate address detection, RFC 4862 section 5.4): the
// first request of each family is retried.
func checkServes(t *testing.T, w *world, port, index string) {
	t.Helper()
	clients := webClients(w, port)
	for _, c := range clients[:2] {
		if !waitHTTP(t, c, index) {
			return
		}
	}
	for _, c := range clients {
		checkWeb(t, c, index, nil)
	}
}

// checkRules checks the rules pesto showed (run under name): one rule per
// family for each port, to a container address, and no other.
func checkRules(t *testing.T, o *outcome, name string, ports ...string) {
	t.Helper()
	r, ok := o.ok(t, name)
	if !ok {
		return
	}
	var got []string
	for _, l := range strings.Split(r.Stdout, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "TCP ") || strings.HasPrefix(l, "UDP ") {
			got = append(got, l)
		}
	}
	var want []string
	for _, p := range ports {
		want = append(want, "TCP [0.0.0.0]:"+p+"  =>  10.89.", "TCP [::]:"+p+"  =>  fd")
	}
	if len(got) != len(want) {
		t.Errorf("%s: pesto shows %q, want a rule for each of %q (IPv4 and IPv6)", name, got, want)
		return
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) || !strings.HasSuffix(got[i], ":80") {
			t.Errorf("%s: rule %q, want %s...:80", name, got[i], want[i])
		}
	}
}

// checkUDPEcho checks the UDP container of TestBridgeForwarder: a
// datagram from the remote, over IPv4 and IPv6, comes back with the
// sender's own address.
func checkUDPEcho(t *testing.T, w *world) {
	t.Helper()
	for _, c := range []struct{ name, addr, peer string }{
		{"remote-ipv4-udp", "192.0.2.1:5353", sandbox.RemoteAddr4},
		{"remote-ipv6-udp", "[2001:db8::1]:5353", sandbox.RemoteAddr6},
	} {
		var got string
		if err := retry(firstContact, func() (err error) {
			got, err = udpExchange(w.sb.RemotePath(), c.addr, "hello\n", time.Second)
			return err
		}); err != nil {
			t.Errorf("%s: no answer within %v: %v", c.name, firstContact, err)
			continue
		}
		if text, peer, _ := strings.Cut(strings.TrimSpace(got), " from "); text != "hello" || peerIP(peer) != c.peer {
			t.Errorf("%s: answer %q, want hello from %s", c.name, got, c.peer)
		} else {
			t.Logf("%s: the container saw the sender as %s", c.name, peerIP(peer))
		}
	}
}

// TestBridgeForwarder: a container on a bridge network with -p: the remote
// reaches it over IPv4 and IPv6 and it sees the client's own address;
// a second container publishes another port; stopping a container closes
// its port and leaves the other's; podman restart and start bring the port
// back to the new address. A container publishing a UDP port answers the
// remote's datagrams, seeing their sender.
func TestBridgeForwarder(t *testing.T) {
	eachBridgeVariant(t, func(t *testing.T, w *world) {
		s, mounts := bridgeScript(t)
		s.run("start1", httpd(s, mounts, "web1", "8080", "/www")...)
		rules(s, "rules1")
		s.step("one")
		s.run("start2", httpd(s, mounts, "web2", "8081", "/w2")...)
		s.run("startudp", append(append([]string{"podman", "run", "-d", "--name", s.ctr("udp"), "--network", s.ctr("net"),
			"-p", "5353:53/udp", "--stop-timeout", "0"}, mounts...), image, "sh", "-c",
			"socat UDP4-LISTEN:53,fork EXEC:/t/udpecho & socat UDP6-LISTEN:53,fork,ipv6only=1 EXEC:/t/udpecho & wait")...)
		s.step("two")
		s.run("stopudp", "podman", "stop", "-t", "0", s.ctr("udp"))
		rules(s, "rules2")
		s.run("stop1", "podman", "stop", "-t", "0", s.ctr("web1"))
		rules(s, "rules3")
		s.step("stopped")
		s.run("restart2", "podman", "restart", "-t", "0", s.ctr("web2"))
		s.run("start1b", "podman", "start", s.ctr("web1"))
		rules(s, "rules4")
		s.step("restarted")
		s.run("rm", "podman", "rm", "-f", "-t", "0", s.ctr("web1"), s.ctr("web2"))
		rules(s, "rules5")
		s.run("netrm", "podman", "network", "rm", s.ctr("net"))
		w.exec(t, s, map[string]func(*testing.T, *outcome){
			"one": func(t *testing.T, o *outcome) {
				if _, ok := o.ok(t, "start1"); !ok {
					return
				}
				checkRules(t, o, "rules1", "8080")
				checkServes(t, w, "8080", containerIndex)
			},
			"two": func(t *testing.T, o *outcome) {
				if _, ok := o.ok(t, "start2"); !ok {
					return
				}
				checkServes(t, w, "8081", "hello-from-web2\n")
				checkWeb(t, webClients(w, "8080")[0], containerIndex, nil)
				if _, ok := o.ok(t, "startudp"); ok {
					checkUDPEcho(t, w)
				}
			},
			"stopped": func(t *testing.T, o *outcome) {
				o.ok(t, "stopudp")
				checkRules(t, o, "rules2", "8080", "8081")
				o.ok(t, "stop1")
				checkRules(t, o, "rules3", "8081")
				checkRefused(t, "remote-ipv4-8080", w.sb.RemotePath(), "http://192.0.2.1:8080/index.html")
				checkWeb(t, webClients(w, "8081")[0], "hello-from-web2\n", nil)
			},
			"restarted": func(t *testing.T, o *outcome) {
				o.ok(t, "restart2")
				o.ok(t, "start1b")
				checkRules(t, o, "rules4", "8081", "8080")
				checkServes(t, w, "8080", containerIndex)
				checkServes(t, w, "8081", "hello-from-web2\n")
			},
		})
	})
}

// TestBridgeNetworkChanges: a container with -p on a bridge network keeps
// its published port, at its new address each time, across podman network
// reload, disconnect (the port closes) and connect, a move to a second
// network, and podman system migrate (which stops every container) and
// start. A container without ports keeps the rootless network namespace,
// and its pasta, up meanwhile.
func TestBridgeNetworkChanges(t *testing.T) {
	eachBridgeVariant(t, func(t *testing.T, w *world) {
		s, mounts := bridgeScript(t)
		s.run("netcreate2", "podman", "network", "create", "--ipv6", s.ctr("net2"))
		s.run("startbg", "podman", "run", "-d", "--name", s.ctr("bg"), "--network", s.ctr("net"), "--stop-timeout", "0", image, "sleep", "1000")
		s.run("start", httpd(s, mounts, "web", "8080", "/www")...)
		rules(s, "rules-start")
		s.step("up")
		s.run("reload", "podman", "network", "reload", s.ctr("web"))
		rules(s, "rules-reload")
		s.step("reloaded")
		s.run("disconnect", "podman", "network", "disconnect", s.ctr("net"), s.ctr("web"))
		rules(s, "rules-disconnected")
		s.step("disconnected")
		s.run("connect", "podman", "network", "connect", s.ctr("net"), s.ctr("web"))
		rules(s, "rules-connect")
		s.step("connected")
		s.run("connect2", "podman", "network", "connect", s.ctr("net2"), s.ctr("web"))
		s.run("disconnect1", "podman", "network", "disconnect", s.ctr("net"), s.ctr("web"))
		rules(s, "rules-disconnect1")
		s.step("moved")
		s.run("migrate", "podman", "system", "migrate")
		s.run("startall", "podman", "start", s.ctr("bg"), s.ctr("web"))
		rules(s, "rules-startall")
		s.step("migrated")
		s.run("rm", "podman", "rm", "-f", "-t", "0", s.ctr("web"), s.ctr("bg"))
		s.run("netrm", "podman", "network", "rm", s.ctr("net"), s.ctr("net2"))
		served := func(cmds ...string) func(t *testing.T, o *outcome) {
			return func(t *testing.T, o *outcome) {
				for _, c := range cmds {
					if _, ok := o.ok(t, c); !ok {
						return
					}
				}
				checkRules(t, o, "rules-"+cmds[len(cmds)-1], "8080")
				checkServes(t, w, "8080", containerIndex)
			}
		}
		w.exec(t, s, map[string]func(*testing.T, *outcome){
			"up":       served("netcreate2", "startbg", "start"),
			"reloaded": served("reload"),
			"disconnected": func(t *testing.T, o *outcome) {
				o.ok(t, "disconnect")
				checkRules(t, o, "rules-disconnected")
				checkRefused(t, "remote-ipv4-8080", w.sb.RemotePath(), "http://192.0.2.1:8080/index.html")
			},
			"connected": served("connect"),
			"moved":     served("connect2", "disconnect1"),
			"migrated":  served("migrate", "startall"),
		})
	})
}
