package podman

// The rest of what Podman's own pasta tests cover, besides forwarding (see
// matrix_test.go), written anew: addresses, routes, MTU and loopback set
// through pasta's options, the pod's name in /etc/hosts, DNS through the
// default and a custom forward address, pasta's exit when the namespace
// goes, Podman's refusal of an unsupported protocol, pasta options from
// containers.conf, host.containers.internal with custom addresses and on a
// rootless bridge network (whose namespace pasta connects too), with -p. All of it
// is one run.sh call per variant.

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopasta/test/sandbox"
)

// Values the cases give pasta, all inside the sandbox's documentation
// ranges (nothing is ever sent to them but to pasta itself).
const (
	optAddr4    = "192.0.2.77"
	optGw4      = "192.0.2.66"
	optAddr6    = "2001:db8::77"
	optGw6      = "2001:db8::66"
	optMTU      = 1280                // the IPv6 minimum
	optDNS      = "198.51.100.1"      // --dns-forward
	optOther4   = "198.51.100.2"      // -a, with -g optOtherGw4 -n 24: not the host's network
	optOtherGw4 = "198.51.100.1"      // the gateway for optOther4
	optIfName   = "myname"            // -I from containers.conf
	optMAC1     = "9a:dd:31:ea:92:98" // --ns-mac-addr from containers.conf
	optMAC2     = "aa:bb:cc:dd:ee:ff" // --ns-mac-addr from the command line
	sctpPort    = 10099
	pidGoneMs   = 5000  // pasta must be gone this long after its namespace
	bridgePort  = 10080 // -p on the bridge network
)

// optCase is one podman command of the script and what its output must
// show.
type optCase struct {
	name  string
	argv  []string
	check func(out string) error
}

// has returns a check that out matches the regular expression re.
func has(re string) func(string) error {
	r := regexp.MustCompile(re)
	return func(out string) error {
		if !r.MatchString(out) {
			return fmt.Errorf("no match for %q", re)
		}
		return nil
	}
}

// lacks returns a check that out does not match re.
func lacks(re string) func(string) error {
	r := regexp.MustCompile(re)
	return func(out string) error {
		if m := r.FindString(out); m != "" {
			return fmt.Errorf("%q should not be there", m)
		}
		return nil
	}
}

// firstNameserver checks resolv.conf's first nameserver.
func firstNameserver(want string) func(string) error {
	return func(out string) error {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
				if f[1] != want {
					return fmt.Errorf("first nameserver %s, want %s", f[1], want)
				}
				return nil
			}
		}
		return fmt.Errorf("no nameserver, want %s", want)
	}
}

// hostsEntry checks the address of name in /etc/hosts output lines
// ("ADDR NAME...") is one of want.
func hostsEntry(want ...string) func(string) error {
	return func(out string) error {
		f := strings.Fields(out)
		if len(f) < 2 {
			return fmt.Errorf("no entry")
		}
		for _, w := range want {
			if f[0] == w {
				return nil
			}
		}
		return fmt.Errorf("entry at %s, want one of %v", f[0], want)
	}
}

func optCases(s *script, remoteURL string) []optCase {
	run := func(netOpts string, cmd ...string) []string {
		return append([]string{"podman", "run", "--rm", "--network", "pasta" + netOpts, image}, cmd...)
	}
	ifc := sandbox.HostIf
	cc := s.dir() + "/containers.conf"
	s.file("containers.conf", []byte(fmt.Sprintf("[network]\ndefault_rootless_network_cmd = \"pasta\"\npasta_options = [\"-I\", %q, \"--ns-mac-addr\", %q]\n", optIfName, optMAC1)), 0o644)
	return []optCase{
		{"IPv4-address-assignment", run(":-a,"+optAddr4, "ip", "-4", "addr", "show", "dev", ifc),
			has(`inet ` + regexp.QuoteMeta(optAddr4) + `/`)},
		{"IPv6-address-assignment", run(":-a,"+optAddr6, "ip", "-6", "addr", "show", "dev", ifc),
			has(`inet6 ` + regexp.QuoteMeta(optAddr6) + `/`)},
		{"no-IPv4", run(":-6", "ip", "-4", "addr", "show", "scope", "global"), lacks(`inet `)},
		{"no-IPv6", run(":-4", "ip", "-6", "addr", "show", "scope", "global"), lacks(`inet6 `)},
		{"IPv4-default-route-assignment", run(":-a,"+optAddr4+",-g,"+optGw4, "ip", "-4", "route", "show"),
			has(`(?m)^default via ` + regexp.QuoteMeta(optGw4) + ` dev ` + ifc)},
		{"IPv6-default-route-assignment", run(":-a,"+optAddr6+",-g,"+optGw6, "ip", "-6", "route", "show"),
			has(`(?m)^default via ` + regexp.QuoteMeta(optGw6) + ` dev ` + ifc)},
		{"MTU-assignment", run(":-m,"+strconv.Itoa(optMTU), "cat", "/sys/class/net/"+ifc+"/mtu"),
			has(`^` + strconv.Itoa(optMTU) + `\n$`)},
		{"loopback-up", run("", "ip", "link", "show", "lo"), has(`<[^>]*\bUP\b[^>]*>`)},
		// --dns keeps resolv.conf to 169.254.1.1 only: Podman would add
		// public resolvers after it, which a lookup must never try.
		{"basic-nameserver-lookup", append([]string{"podman", "run", "--rm", "--network", "pasta", "--dns", dnsForward, image},
			"nslookup", remoteName), has(`Address: ` + regexp.QuoteMeta(sandbox.RemoteAddr4))},
		{"default-nameserver-forwarding", run("", "cat", "/etc/resolv.conf"), firstNameserver(dnsForward)},
		{"custom-DNS-forward-resolv.conf", run(":--dns-forward,"+optDNS, "cat", "/etc/resolv.conf"), firstNameserver(optDNS)},
		{"custom-DNS-forward-lookup", run(":--dns-forward,"+optDNS, "nslookup", remoteName, optDNS),
			has(`Address: ` + regexp.QuoteMeta(sandbox.RemoteAddr4))},
		{"containers.conf-options", []string{"env", "CONTAINERS_CONF_OVERRIDE=" + cc, "podman", "run", "--rm", image, "ip", "link", "show", optIfName},
			has(regexp.QuoteMeta(optMAC1))},
		{"containers.conf-options-overridden", []string{"env", "CONTAINERS_CONF_OVERRIDE=" + cc, "podman", "run", "--rm",
			"--network", "pasta:--ns-mac-addr," + optMAC2, image, "ip", "link", "show", optIfName}, has(regexp.QuoteMeta(optMAC2))},
		// Podman's --map-guest-addr 169.254.1.2 is host.containers.internal
		// whatever the container's own addresses.
		{"host.containers.internal-custom-address", run(":-a,"+optOther4+",-g,"+optOtherGw4+",-n,24", "grep", "-w", "host.containers.internal", "/etc/hosts"),
			hostsEntry(sandbox.HostAddr4, mapGuest)},
		{"outbound-with-custom-address", run(":-a,"+optOther4+",-g,"+optOtherGw4+",-n,24", "wget", "-q", "-T", "5", "-O-", remoteURL),
			has(`^` + regexp.QuoteMeta(remoteIndex) + `$`)},
	}
}

// TestPastaOptions runs every optCase, then the cases that need more than
// one command: the pod's name, pasta's exit, sctp, a bridge network.
func TestPastaOptions(t *testing.T) {
	eachVariant(t, func(t *testing.T, w *world) {
		s := newScript()
		remoteURL := fmt.Sprintf("http://%s:%d/index.html", sandbox.RemoteAddr4, remoteHTTPPort)
		cases := optCases(s, remoteURL)
		for _, c := range cases {
			s.run(c.name, c.argv...)
		}
		// The pod's name resolves to the container's address in /etc/hosts.
		pod := s.ctr("pod")
		s.run("pod-create", "podman", "pod", "create", "--network", "pasta", "--name", pod)
		s.run("pod-hosts", "podman", "run", "--rm", "--pod", pod, image, "grep", "-w", pod, "/etc/hosts")
		s.run("pod-rm", "podman", "pod", "rm", "-f", "-t", "0", pod)
		// pasta (--pid FILE) is gone soon after its container's namespace.
		s.run("pid-run", "podman", "run", "--rm", "--network", "pasta:--pid,"+s.dir()+"/pasta.pid", image, "true")
		s.sh(`pid=$(cat "$D/pasta.pid" 2>/dev/null); t0=$(now_us); ms=-1
if [ -n "$pid" ]; then
	while :; do
		st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
		t=$(now_us); if [ -z "$st" ] || [ "$st" = Z ]; then ms=$(((t - t0) / 1000)); break; fi
		[ $((t - t0)) -ge ` + strconv.Itoa(pidGoneMs*1000) + ` ] && break; sleep 0.05
	done
fi
echo "$pid $ms" >"$D/pidgone"`)
		// Podman itself refuses a protocol pasta cannot forward.
		s.run("sctp", "podman", "run", "--rm", "-p", fmt.Sprintf("%d:%d/sctp", sctpPort, sctpPort), image, "true")
		// A rootless bridge network: pasta connects Podman's rootless
		// network namespace; the container reaches the remote through it.
		net := s.ctr("net")
		s.run("net-create", "podman", "network", "create", net)
		s.run("net-run", "podman", "run", "--rm", "--network", net, image, "sh", "-c", sections(
			sec{"hosts", "grep -w host.containers.internal /etc/hosts"},
			sec{"wget", "wget -q -T 5 -O- " + remoteURL},
		))
		s.run("net-web", "podman", "run", "-d", "--name", s.ctr("netweb"), "--network", net,
			"-p", fmt.Sprintf("%d:80", bridgePort), image, "httpd", "-f", "-p", "80", "-h", "/www")
		s.step("bridge-up")
		s.run("net-web-rm", "podman", "rm", "-f", "-t", "0", s.ctr("netweb"))
		s.run("net-rm", "podman", "network", "rm", "-f", net)
		o := w.exec(t, s, map[string]func(*testing.T, *outcome){"bridge-up": func(t *testing.T, o *outcome) {
			// -p on a bridge network: Podman's own forwarder (rootlessport,
			// or pesto with Podman 6) behind pasta's namespace.
			t.Run("bridge-network-port", func(t *testing.T) {
				if _, ok := o.ok(t, "net-web"); !ok {
					return
				}
				for _, c := range []webClient{
					{"remote-ipv4", w.sb.RemotePath(), fmt.Sprintf("http://%s:%d", sandbox.HostAddr4, bridgePort), ""},
					{"loopback-ipv4", w.sb.HostPath(), fmt.Sprintf("http://127.0.0.1:%d", bridgePort), ""},
				} {
					if waitHTTP(t, c, containerIndex) {
						checkWeb(t, c, containerIndex, nil)
					}
				}
			})
		}})

		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r, ok := o.ok(t, c.name)
				if !ok {
					return
				}
				if err := c.check(r.Stdout); err != nil {
					t.Errorf("%v in:\n%s", err, r.Stdout)
				}
			})
		}
		t.Run("pod-name-in-hosts", func(t *testing.T) {
			o.ok(t, "pod-create")
			if r, ok := o.ok(t, "pod-hosts"); ok {
				if err := hostsEntry(sandbox.HostAddr4)(r.Stdout); err != nil {
					t.Errorf("%v: %q", err, r.Stdout)
				}
			}
			o.ok(t, "pod-rm")
		})
		t.Run("pasta-quits-when-the-namespace-is-gone", func(t *testing.T) {
			o.ok(t, "pid-run")
			line, _ := o.read("pidgone")
			f := strings.Fields(line)
			if len(f) != 2 {
				t.Fatalf("no PID in the --pid file (%q)", line)
			}
			if ms, _ := strconv.Atoi(f[1]); ms < 0 {
				t.Errorf("pasta %s still running %d ms after podman run --rm ended", f[0], pidGoneMs)
			} else {
				t.Logf("pasta %s gone %d ms after podman run --rm ended", f[0], ms)
			}
		})
		t.Run("unsupported-protocol", func(t *testing.T) {
			r := o.cmd("sctp")
			if r.Code != 126 || !strings.Contains(r.Stderr, "can't forward protocol: sctp") {
				t.Errorf("-p /sctp: want exit 126 and \"can't forward protocol: sctp\":\n%s", r)
			}
		})
		t.Run("bridge-network", func(t *testing.T) {
			o.ok(t, "net-create")
			if r, ok := o.ok(t, "net-run"); ok {
				secs := parseSections(r.Stdout)
				if out, ok := section(t, secs, "hosts"); ok {
					if err := hostsEntry(mapGuest)(out); err != nil {
						t.Errorf("host.containers.internal: %v: %q", err, out)
					}
				}
				if out, ok := section(t, secs, "wget"); ok && out != remoteIndex {
					t.Errorf("the remote's index.html: %q, want %q", out, remoteIndex)
				}
			}
			o.ok(t, "net-web-rm")
			o.ok(t, "net-rm")
			peers := w.remoteHTTP.Peers()
			for _, p := range peers {
				if a, err := netip.ParseAddr(p); err != nil || a.String() != sandbox.HostAddr4 {
					t.Errorf("the remote saw a client %s, want the host's %s", p, sandbox.HostAddr4)
				}
			}
		})
	})
}
