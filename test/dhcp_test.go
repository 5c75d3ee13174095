package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// Autoconfiguration end to end: pasta runs without --config-net, so the
// namespace's interface is down and bare, and real clients configure it
// from pasta's DHCP, router advertisements and DHCPv6: busybox udhcpc and
// ISC dhclient (IPv4), rdisc6 (router advertisements), dhclient -6. Then
// the namespace reaches the remote over ICMP and TCP, and looks as
// --config-net would have made it.

const (
	autoconfTimeout = 90 * time.Second
	tcpPort         = "8777"
	tcpGreeting     = "TCP-OK"

	// What the tests tell pasta to advertise, instead of the machine's own
	// resolv.conf: addresses of the sandbox only.
	testDNS4     = "192.0.2.53"
	testDNS6     = "2001:db8::53"
	testSearch   = "example.org test.invalid"
	testHost     = "guest1"
	testFQDN     = "guest1.example.org"
	advertiseMTU = "65520" // pasta's default MTU, in DHCP option 26 and the RA MTU option
)

// autoconfArgs are the pasta options of these tests: DNS and names
// advertised (pasta mode doesn't unless asked), no --config-net.
//
// The search domains go in one -S each, and share no label: C pasta
// (2025-05) takes "-S 'a b'" for one domain with a space in it, and
// compresses names wrongly in DHCP option 119 ("test.example" after
// "example.org" becomes "test.example.org").
var autoconfArgs = []string{"--dhcp-dns", "--dhcp-search", "-D", testDNS4, "-D", testDNS6,
	"-S", "example.org", "-S", "test.invalid", "-H", testHost, "--fqdn", testFQDN}

// Scripts the clients run to apply what they got, and print it on a line
// starting with LEASE4 or LEASE6. They never touch resolv.conf: the
// command shares the machine's mount namespace.
const (
	udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
	for r in $router; do ip route add default via "$r" dev "$interface"; break; done
	echo "LEASE4 ip=$ip prefix=$mask router=$router mtu=$mtu dns=$dns search=$search hostname=$hostname lease=$lease server=$serverid"
	;;
esac
`
	dhclientScript = `#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
	ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
	[ -n "$new_interface_mtu" ] && ip link set "$interface" mtu "$new_interface_mtu"
	for r in $new_routers; do ip route add default via "$r" dev "$interface"; break; done
	echo "LEASE4 ip=$new_ip_address prefix=$new_subnet_mask router=$new_routers mtu=$new_interface_mtu dns=$new_domain_name_servers search=$new_domain_search hostname=$new_host_name lease=$new_dhcp_lease_time server=$new_dhcp_server_identifier"
	;;
BOUND6|RENEW6|REBIND6|REBOOT6)
	ip -6 addr add "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" nodad
	echo "LEASE6 ip=$new_ip6_address prefixlen=$new_ip6_prefixlen dns=$new_dhcp6_name_servers search=$new_dhcp6_domain_search fqdn=$new_fqdn_fqdn"
	;;
esac
`
)

// autoconf writes the client scripts into a directory the command can
// read and write (leases, PID files) and returns shell snippets using it.
type autoconf struct {
	dir string
	ifc string
}

func newAutoconf(t *testing.T, sb *sandbox.Sandbox) autoconf {
	t.Helper()
	a := autoconf{dir: sb.UserDir(), ifc: sandbox.HostIf}
	for name, body := range map[string]string{"udhcpc.sh": udhcpcScript, "dhclient.sh": dhclientScript} {
		if err := os.WriteFile(filepath.Join(a.dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// up brings the interface up without duplicate address detection, then
// waits (at most 5 s) for its link-local address: the kernel adds it
// asynchronously once the link has carrier, and rdisc6 and dhclient -6
// can't send without it.
func (a autoconf) up() string {
	return "sysctl -qw net.ipv6.conf." + a.ifc + ".accept_dad=0 && ip link set " + a.ifc + " up\n" +
		"i=0; until ip -6 addr show dev " + a.ifc + " scope link -tentative | grep -q inet6; do " +
		"i=$((i+1)); [ $i -le 50 ] || { echo 'no link-local address after 5 s' >&2; exit 1; }; sleep 0.1; done"
}

func (a autoconf) udhcpc() string {
	return "timeout 20 busybox udhcpc -i " + a.ifc + " -n -q -f -t 3 -T 2 -s " + a.dir + "/udhcpc.sh"
}

// dhclient runs ISC dhclient once for family ("-4" or "-6"), then stops
// the daemon it leaves behind without releasing the lease. Both runs use
// our script: dhclient-script would deconfigure the interface on stop.
func (a autoconf) dhclient(family string) string {
	common := " " + family + " -sf " + a.dir + "/dhclient.sh -pf " + a.dir + "/dhclient" + family + ".pid -lf " +
		a.dir + "/dhclient" + family + ".leases " + a.ifc
	return "timeout 30 dhclient -1" + common + " && timeout 10 dhclient -x" + common
}

func (a autoconf) rdisc6() string { return "timeout 10 rdisc6 -1 -w 2000 " + a.ifc }

// run runs pasta with autoconfArgs and the given shell steps as its
// command, and returns the command's output. Each step must succeed.
func (a autoconf) run(t *testing.T, m mode, sb *sandbox.Sandbox, steps ...string) string {
	t.Helper()
	ctx := withTimeout(t, autoconfTimeout)
	args := append(append([]string{}, autoconfArgs...), "--", "sh", "-c", "set -e\n"+strings.Join(steps, "\n"))
	cmd := m.pasta(t, ctx, sb, args...)
	res := sandbox.Run(cmd)
	t.Logf("$ pasta %s\n%s", strings.Join(args, " "), res)
	mustExit(t, res, 0)
	return res.Stdout
}

var leaseKeyRE = regexp.MustCompile(`(\w+)=`)

// lease returns the key=value fields of the line starting with tag. A
// value runs to the next key: some (dns, search) hold spaces.
func lease(t *testing.T, out, tag string) map[string]string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			continue
		}
		fields := map[string]string{}
		keys := leaseKeyRE.FindAllStringSubmatchIndex(rest, -1)
		for i, kv := range keys {
			end := len(rest)
			if i+1 < len(keys) {
				end = keys[i+1][0]
			}
			fields[rest[kv[2]:kv[3]]] = strings.TrimSpace(rest[kv[1]:end])
		}
		return fields
	}
	t.Fatalf("no %s line in the output:\n%s", tag, out)
	return nil
}

// inspectMark precedes inspectScript's output in a command's output.
const inspectMark = "@@INSPECT"

func inspectStep() string { return "echo " + inspectMark + "\n" + inspectScript }

// inspected returns inspectScript's output from a command's output.
func inspected(t *testing.T, out string) string {
	t.Helper()
	_, after, ok := strings.Cut(out, inspectMark+"\n")
	if !ok {
		t.Fatalf("no %q in the output:\n%s", inspectMark, out)
	}
	return after
}

// checkFields compares the fields of a lease line with what is expected.
func checkFields(t *testing.T, client string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s got %s=%q, want %q", client, k, got[k], v)
		}
	}
	t.Logf("%s got %v", client, got)
}

// lease4Want is what an IPv4 client must get: the host's address, prefix
// and gateway, pasta's MTU, the DNS configuration given, an infinite lease
// from the gateway.
func lease4Want(prefix string) map[string]string {
	return map[string]string{
		"ip": sandbox.HostAddr4, "prefix": prefix, "router": sandbox.Gateway4, "mtu": advertiseMTU,
		"dns": testDNS4, "hostname": testHost, "lease": "4294967295", "server": sandbox.Gateway4,
	}
}

func TestDHCPBusyboxUdhcpc(t *testing.T) {
	sandbox.RequireTools(t, "busybox")
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		m.pingArgv(t, sb) // skips the reference as root: its command can't configure anything
		a := newAutoconf(t, sb)
		out := a.run(t, m, sb, a.up(), a.udhcpc(), inspectStep())
		want := lease4Want("24")
		want["search"] = testSearch
		checkFields(t, "udhcpc", lease(t, out, "LEASE4"), want)
		checkLikeConfigNet(t, m, sb, inspected(t, out), false)
	})
}

func TestDHCPISCDhclient(t *testing.T) {
	sandbox.RequireTools(t, "dhclient")
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		m.pingArgv(t, sb)
		a := newAutoconf(t, sb)
		out := a.run(t, m, sb, a.up(), a.dhclient("-4"), inspectStep())
		want := lease4Want("255.255.255.0")
		want["search"] = "example.org. test.invalid." // dhclient prints them fully qualified
		checkFields(t, "dhclient -4", lease(t, out, "LEASE4"), want)
		checkLikeConfigNet(t, m, sb, inspected(t, out), false)
	})
}

func TestDHCPRdisc6(t *testing.T) {
	sandbox.RequireTools(t, "rdisc6")
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		m.pingArgv(t, sb)
		a := newAutoconf(t, sb)
		out := a.run(t, m, sb, a.up(), a.rdisc6())
		for _, re := range []string{
			`Stateful address conf\.\s*:\s*Yes`,
			`Router lifetime\s*:\s*65535`,
			`On-link\s*:\s*Yes`,
			`Autonomous address conf\.\s*:\s*Yes`,
			`MTU\s*:\s*` + advertiseMTU + ` bytes`,
			`Recursive DNS server\s*:\s*` + testDNS6,
			`DNS search list\s*:\s*` + testSearch,
			`from ` + sandbox.Gateway6, // our link-local address: the host's gateway, as in C pasta
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("rdisc6 output lacks %q", re)
			}
		}
		// RFC 4861 section 4.6.2: the bits past the prefix length are zero.
		if !regexp.MustCompile(`Prefix\s*:\s*2001:db8::/64`).MatchString(out) {
			knownRefBug(t, "rdisc6 sees no prefix 2001:db8::/64 (C pasta sends the host's address, 2001:db8::1/64):\n%s", out)
		}
	})
}

func TestDHCPv6ISCDhclient(t *testing.T) {
	sandbox.RequireTools(t, "dhclient")
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		m.pingArgv(t, sb)
		a := newAutoconf(t, sb)
		out := a.run(t, m, sb, a.up(), a.dhclient("-6"))
		checkFields(t, "dhclient -6", lease(t, out, "LEASE6"), map[string]string{
			"ip": sandbox.HostAddr6, "prefixlen": "128", "dns": testDNS6,
			"search": "example.org. test.invalid.", "fqdn": testFQDN,
		})
	})
}

// All clients at once, then traffic: the namespace configured by DHCP,
// router advertisements and DHCPv6 pings the remote and talks TCP to it.
func TestAutoconfThenTraffic(t *testing.T) {
	sandbox.RequireTools(t, "busybox", "dhclient", "ncat")
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		ping := strings.Join(m.pingArgv(t, sb), " ")
		startTCPServer(t, sb)
		a := newAutoconf(t, sb)
		tcp := func(dst string) string {
			return "timeout 10 ncat -w 5 --recv-only " + dst + " " + tcpPort + " | grep -x " + tcpGreeting
		}
		out := a.run(t, m, sb, a.up(), a.udhcpc(), a.dhclient("-6"),
			ping+" -4 -c 1 -W 2 "+sandbox.RemoteAddr4,
			ping+" -6 -c 1 -W 2 "+sandbox.RemoteAddr6,
			"echo PINGS-OK",
			tcp(sandbox.RemoteAddr4), tcp(sandbox.RemoteAddr6),
			inspectStep())
		if !strings.Contains(out, "PINGS-OK") {
			t.Errorf("pings failed:\n%s", out)
		}
		if n := strings.Count(out, tcpGreeting); n != 2 {
			t.Errorf("%d TCP greetings from the remote, want 2:\n%s", n, out)
		}
		checkLikeConfigNet(t, m, sb, inspected(t, out), true)
	})
}

// startTCPServer starts a TCP server in the remote netns, on IPv4 and
// IPv6, that greets every client, and waits until it listens.
func startTCPServer(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	ctx := withTimeout(t, autoconfTimeout)
	sb.Start(t, sb.Remote(ctx, sandbox.Root, "ncat", "-l", "-k", tcpPort, "--sh-exec", "echo "+tcpGreeting))
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := sandbox.Run(sb.Remote(ctx, sandbox.Root, "ss", "-Hltn", "sport = :"+tcpPort)).Stdout
		if strings.Count(out, "LISTEN") >= 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ncat does not listen on port %s after 5s: %q", tcpPort, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLikeConfigNet compares the namespace configured by the clients
// (inspectScript's output) with what --config-net makes in the same
// sandbox: the same interface, MTU, IPv4 address and prefix, default
// routes, and, if withIPv6, the host's IPv6 address. The expected
// differences: DHCPv6 gives a /128 (the /64 is on-link through the router
// advertisement's prefix), and SLAAC adds an address --config-net doesn't.
func checkLikeConfigNet(t *testing.T, m mode, sb *sandbox.Sandbox, inspected string, withIPv6 bool) {
	t.Helper()
	got := parseInspect(t, inspected)
	res := m.runPasta(t, sb, "--config-net", "--", "sh", "-c", inspectScript)
	mustExit(t, res, 0)
	want := parseInspect(t, res.Stdout)

	gl, wl := sandbox.FindLink(got.addrs, sandbox.HostIf), sandbox.FindLink(want.addrs, sandbox.HostIf)
	if gl == nil || wl == nil {
		t.Fatalf("no %s: autoconfigured %v, --config-net %v", sandbox.HostIf, got.raw, want.raw)
	}
	if !gl.HasFlag("UP") || gl.MTU != wl.MTU {
		t.Errorf("%s: flags %v MTU %d; --config-net: MTU %d", sandbox.HostIf, gl.Flags, gl.MTU, wl.MTU)
	}
	for _, w := range wl.AddrInfo {
		g := gl.Addr(w.Local)
		switch {
		case w.Family == "inet" && (g == nil || g.Prefixlen != w.Prefixlen):
			t.Errorf("IPv4 address %s/%d of --config-net: autoconfigured %+v", w.Local, w.Prefixlen, g)
		case w.Family == "inet6" && w.Scope == "global" && withIPv6 && g == nil:
			t.Errorf("IPv6 address %s of --config-net missing", w.Local)
		}
	}
	checkDefaultRoute(t, "IPv4", got.routes4, want.routes4)
	if withIPv6 {
		checkDefaultRoute(t, "IPv6", got.route6, want.route6)
	}
}

func checkDefaultRoute(t *testing.T, family string, got, want []sandbox.Route) {
	t.Helper()
	g, w := sandbox.DefaultRoute(got), sandbox.DefaultRoute(want)
	if g == nil || w == nil || g.Gateway != w.Gateway || g.Dev != w.Dev {
		t.Errorf("%s default route %+v; --config-net: %+v", family, g, w)
	}
}
