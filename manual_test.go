package main

// The man page and the bash completion are generated from the option table
// (options.go) and committed under dist/, where the Debian package takes
// them. These tests fail when a committed file is not what the table gives;
// `go test . -run 'TestManPage|TestBashCompletion' -update` rewrites them.
// The sections of the man page besides the options are here, since only
// the generator needs them.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopasta/internal/cmdline"
	"gopasta/internal/cmdline/cmdlinetest"
	"gopasta/internal/control"
)

const (
	manPagePath    = "dist/pasta.1"
	completionPath = "dist/bash-completion/gopasta"
)

// pastaManual is what the man page adds to the option table.
var pastaManual = cmdline.ManPage{
	Section: 1,
	Date:    "2026-11-29",
	Source:  versionString,
	Manual:  "User Commands",
	Names:   []string{"pasta", "gopasta"},
	Summary: "connect a network namespace to the host's network, without privileges",
	Description: `pasta gives a network namespace (a shell, a command, a rootless
container) the host's connectivity over IPv4 and IPv6, without any
privileges. It puts a tap device in the namespace and translates the
namespace's traffic, frame by frame, into ordinary sockets of the host:
each TCP connection, UDP flow and ICMP echo of the namespace becomes a
socket of pasta on the host, so that the namespace's traffic leaves with
the host's addresses, and needs no NAT, bridge or routing set-up. It
answers ARP, NDP, DHCP and DHCPv6 itself, and listens on host ports to
forward connections into the namespace (-t, -u), and the other way round
(-T, -U).

This is gopasta, a Go implementation of pasta from the passt project: it
takes the same command line as pasta(1) and can replace it for Podman and
other users. Its Debian package installs it as /usr/libexec/gopasta/pasta,
where Podman finds it first, and as the command gopasta.

Without PID or --netns, pasta creates a user and a network namespace and
runs COMMAND in them, by default the user's shell ($SHELL, else /bin/sh),
and exits with its status. The command is PID 1 of new PID, mount, UTS
and IPC namespaces too, with its own /proc (not with --no-pidns).

With PID, pasta connects the network namespace of that process, joining
its user namespace first; with --netns, the namespace of a file such as
/run/netns/NAME. Once the namespace is connected, pasta goes to the
background (unless --foreground is given), and exits when the process or
the namespace file goes away.

Unless --config-net is given, the tap device is left down and without
addresses, for a DHCP client, NDP and DHCPv6 in the namespace, or
whoever runs pasta (Podman passes --config-net), to configure.`,
	OptionsText: `Long options may be abbreviated to any prefix that names one
option only (--netns-o for --netns-only). An option's argument is the
next word, or follows an equals sign (--mtu=1500), or follows a short
option directly (-t80). Options end at "--" or at the first word that is
not an option. Given several times, an option's last value counts,
unless its description says otherwise. An invalid option or value makes
pasta print a one-line message naming it, and exit with status 1.`,
	Sections: []cmdline.Section{
		{Title: "PORT SPECIFICATIONS", Text: portSpecText},
		{Title: "ADDRESS MAPPING", Text: addressMappingText},
		{Title: "EXAMPLES", Text: examplesText},
		{Title: "EXIT STATUS", Text: exitStatusText},
		{Title: "ENVIRONMENT", Text: `SHELL
  The command pasta runs when none is given; /bin/sh if unset.`},
		{Title: "FILES", Text: filesText},
		{Title: "NOTES", Text: notesText},
		{Title: "SEE ALSO", Text: `podman-run(1), containers.conf(5), unshare(1), ip-netns(8),
namespaces(7), user_namespaces(7), slirp4netns(1), and the passt project's own passt(1), pasta(1) and
pesto(1), at https://passt.top.`},
	},
}

// portSpecText is the man page's section on port specs: the grammar and
// examples, which pesto's page shares, and how UDP follows TCP on the
// command line.
const portSpecText = control.SpecGrammar + `

Without -u, UDP forwards the ports a list given to -t names (without
their translation, and not those of all or auto), and -U follows -T the
same way.

` + control.SpecExamples

const addressMappingText = `The namespace gets a copy of the host's addresses and routes, so
an address in the namespace usually means the same host as outside.
Three exceptions let the namespace reach the host itself:

--map-host-loopback ADDR
  By default the gateway's address (unless --no-map-gw): connections and
  datagrams the namespace sends there reach the host's loopback, 127.0.0.1
  or ::1, where they come from. Traffic that reaches a -t or -u port
  from the host's loopback arrives from this address.

--map-guest-addr ADDR
  Reaches the host's address that the namespace was given, which the
  namespace can't reach directly because it has the same address.

--dns-forward ADDR
  DNS to this address goes to the host's nameserver (--dns-host).

Local traffic does not go through the tap device at all: a connection
from the host's loopback to a -t port, or from the namespace's loopback
to a -T port, is joined with a socket on the other side, and the data
moves between the two sockets with splice(2) (datagrams of -u and -U
through a socket on the other side). Such connections arrive from the
namespace's own address, or from its loopback with --host-lo-to-ns-lo.
--no-splice sends them through the tap device instead.

Connections from other machines to a -t port arrive in the namespace
from the client's own address. A client on the host itself that comes
through the host's own address, which the namespace has too, arrives from
the --map-guest-addr address of its IP version if there is one, else from
pasta's own address: the IPv4 gateway, or the IPv6 link-local address
pasta answers from. So do loopback clients that are not spliced when
there is no --map-host-loopback address, and 127.0.0.0/8 addresses other
than 127.0.0.1. A forwarded connection that can't be delivered (no
address to show it from, no answer to its SYN, no room for it) is reset.`

const examplesText = `A shell with the host's network, in new namespaces:

    $ pasta --config-net
    # ip address show

A command, with the host's port 8080 forwarded to it:

    $ pasta --config-net -t 8080 -- python3 -m http.server 8080

Connecting the namespace of a running process (here from unshare(1)):

    $ unshare -rUn sh -c 'echo $$; exec sleep 1d' &
    12345
    $ pasta --config-net 12345

Connecting a named network namespace, as root:

    # ip netns add ns1
    # pasta --config-net --netns ns1

Podman passes options of its own; more are given after --network pasta:

    $ podman run --network pasta:-T,5432 -p 8080:80 IMAGE`

const exitStatusText = `With a command, pasta exits with the command's status, or 128
plus the number of the signal that killed it; 127 if the command was not
found and 126 if it could not be run.

With a PID or --netns, the process that started pasta exits with 0 once
the namespace is connected and pasta runs in the background; the
background process exits with 0 when the namespace goes away or on
SIGTERM, SIGINT or SIGHUP.

In all cases, 1 means an invalid command line or a failure to set up, with
a message on standard error.`

const filesText = `/dev/net/tun
  The tap device's control file. pasta opens it inside the namespace: a
  rootless pasta needs it readable and writable by everyone (mode 0666).

/etc/resolv.conf
  The host's nameservers and search list, for --dhcp-dns,
  --dhcp-search and --dns-forward.

/proc/net/tcp, /proc/net/tcp6, /proc/net/udp, /proc/net/udp6
  The ports bound on each side, for auto forwarding, where the kernel
  has no sock_diag(7).

/proc/sys/net/ipv4/ip_local_port_range
  The ephemeral ports, which all and exclusion lists leave out.

/run/netns/NAME
  The namespace file of --netns NAME.

/usr/libexec/gopasta/pasta, /usr/bin/gopasta
  The program, as installed by the gopasta package; gopasta is a link to
  pasta.

/etc/containers/containers.conf.d/50-gopasta.conf
  Installed by the gopasta package: makes Podman look for pasta in
  /usr/libexec/gopasta first (helper_binaries_dir, see
  containers.conf(5)).`

const notesText = `For ICMP and ICMPv6 echo (ping), pasta uses the kernel's ping sockets:
the sysctl net.ipv4.ping_group_range must include the user's group
(sysctl -w net.ipv4.ping_group_range="0 2147483647"). Without it, all but
ping works, and pasta says so at start.

A rootless pasta needs unprivileged user namespaces, Linux 5.3 or later
(pidfd), and is fastest on Linux 6.9 or later (SO_PEEK_OFF on TCP
sockets).

Once set up, pasta gives up root if it has it (see --runas) and allows
itself only the system calls it needs from then on (seccomp).

gopasta differs from the passt project's pasta in a few ways: the
passt-only options are refused with an error, error messages are worded
differently, and the control socket (-c) speaks a protocol of gopasta's
own, which gopasta's pesto(1) speaks too: the C pesto can't change
gopasta's rules, nor gopasta's pesto the C pasta's.`

// TestManPage checks the committed man page against the table, and that
// it renders without warnings.
func TestManPage(t *testing.T) {
	cmdlinetest.Golden(t, manPagePath, pastaCommand.Man(&pastaManual))
	cmdlinetest.LintMan(t, manPagePath)
}

// TestManPageCoversOptions checks that every option of the parser appears
// in the rendered man page: the ones pasta takes as the tag of their
// description, the refused ones by name.
func TestManPageCoversOptions(t *testing.T) {
	text := cmdlinetest.RenderMan(t, manPagePath)
	for i := range cmdOptions {
		opt := &cmdOptions[i]
		if opt.Group.Refused {
			if !strings.Contains(text, "--"+opt.Long+",") && !strings.Contains(text, "--"+opt.Long+".") {
				t.Errorf("the man page does not list --%s", opt.Long)
			}
			continue
		}
		if !cmdlinetest.HasOptionTag(text, opt.Short, opt.Long, opt.Arg) {
			t.Errorf("the man page does not describe --%s", opt.Long)
		}
	}
	for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "PORT SPECIFICATIONS",
		"ADDRESS MAPPING", "EXAMPLES", "EXIT STATUS", "FILES", "SEE ALSO"} {
		if !strings.Contains(text, "\n"+section+"\n") {
			t.Errorf("the man page has no section %s", section)
		}
	}
}

// TestBashCompletion checks the committed completion script against the
// table.
func TestBashCompletion(t *testing.T) {
	cmdlinetest.Golden(t, completionPath, pastaCommand.BashCompletion("gopasta", "pasta"))
}

// TestBashCompletionOffers runs the completion script in bash: option
// names, file arguments in their three spellings, keywords, interfaces,
// users, and the command pasta runs.
func TestBashCompletionOffers(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"alpha.log", "alpine.pcap", "beta"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		words []string
		want  []string
	}{
		{[]string{"gopasta", "--log-f"}, []string{"--log-file"}},
		{[]string{"gopasta", "--no-dhcp"}, []string{"--no-dhcp", "--no-dhcp-dns", "--no-dhcp-search", "--no-dhcpv6"}},
		{[]string{"gopasta", "--sock"}, nil}, // refused options are not offered
		{[]string{"gopasta", "--log-file", "al"}, []string{"alpha.log", "alpine.pcap"}},
		{[]string{"gopasta", "--log-file", "="}, []string{"alpha.log", "alpine.pcap", "beta"}},
		{[]string{"gopasta", "--log-file", "=", "alph"}, []string{"alpha.log"}},
		{[]string{"gopasta", "-l", "alph"}, []string{"alpha.log"}},
		{[]string{"gopasta", "-fdp", "alpi"}, []string{"alpine.pcap"}},
		{[]string{"gopasta", "-lalpha.log", "--pid", "b"}, []string{"beta"}},
		{[]string{"gopasta", "--config-net", "--netns", "b"}, []string{"beta"}},
		{[]string{"gopasta", "--userns", "al"}, []string{"alpha.log", "alpine.pcap"}},
		{[]string{"gopasta", "-t", "a"}, []string{"all", "auto"}},
		{[]string{"gopasta", "-t", "80", "-U", ""}, []string{"all", "auto", "none"}},
		{[]string{"gopasta", "--dns", "n"}, []string{"none"}},
		{[]string{"gopasta", "--address", "al"}, nil}, // an address: no file names
		{[]string{"gopasta", "-i", "l"}, []string{"lo"}},
		{[]string{"gopasta", "--runas", "roo"}, []string{"root"}},
		{[]string{"gopasta", "-l", "x", "--fo"}, []string{"--foreground"}},
		{[]string{"gopasta", "-d", "--", "ech"}, []string{"echo"}},
		{[]string{"gopasta", "-t", "80", "ech"}, []string{"echo"}},
		{[]string{"gopasta", "sh", "alph"}, []string{"alpha.log"}},
		{[]string{"gopasta", "--", "sh", "--"}, nil},
		{[]string{"pasta", "--ipv4"}, []string{"--ipv4-only"}},
	}
	for _, tt := range tests {
		got := cmdlinetest.Complete(t, completionPath, dir, false, tt.words...)
		if !slices.Equal(got, tt.want) {
			t.Errorf("completing %q: got %q, want %q", tt.words, got, tt.want)
		}
	}
}

// TestBashCompletionWithBashCompletion checks the script in a shell that
// loaded Debian's bash-completion: the command pasta runs is completed by
// its own completion.
func TestBashCompletionWithBashCompletion(t *testing.T) {
	got := cmdlinetest.Complete(t, completionPath, t.TempDir(), true, "gopasta", "--config-net", "--", "ip", "li")
	if !slices.Equal(got, []string{"link"}) {
		t.Errorf("completing the arguments of ip: got %q, want [link]", got)
	}
	got = cmdlinetest.Complete(t, completionPath, t.TempDir(), true, "gopasta", "--mtu=")
	if len(got) != 0 {
		t.Errorf("completing --mtu=: got %q, want nothing", got)
	}
}
