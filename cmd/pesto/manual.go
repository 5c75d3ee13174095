package main

// pesto's manual: the man page's text besides the options, in the markup
// of internal/cmdline. --help prints most of it too.

import (
	"gopasta/internal/cmdline"
	"gopasta/internal/control"
	"gopasta/internal/version"
)

// section is a section of the man page, which --help may print as well.
type section struct {
	cmdline.Section
	inHelp bool
}

var pestoSections = []section{
	{cmdline.Section{Title: "CHANGES", Text: changesText}, true},
	{cmdline.Section{Title: "PORT SPECIFICATIONS", Text: control.SpecGrammar + "\n\n" + control.SpecExamples}, true},
	{cmdline.Section{Title: "OUTPUT", Text: outputText}, true},
	{cmdline.Section{Title: "EXIT STATUS", Text: exitStatusText}, true},
	{cmdline.Section{Title: "NOTES", Text: notesText}, true},
	{cmdline.Section{Title: "SEE ALSO", Text: `pasta(1), podman(1), containers.conf(5), unix(7), and the passt
project's own pesto(1), at https://passt.top.`}, false},
}

// pestoManual is what the man page adds to the option table.
var pestoManual = cmdline.ManPage{
	Section: 1,
	Date:    "2026-11-30",
	Source:  version.String,
	Manual:  "User Commands",
	Names:   []string{"pesto"},
	Summary: "show and change the port forwarding of a running pasta",
	Description: `pesto shows and changes the port forwarding rules of a running
pasta(1): those of its -t, -u, -T and -U options. PATH is pasta's control
socket, the one given to its -c (--conf-path) option.

Rules are in two tables. HOST holds the rules of -t and -u: ports of the
host, forwarded into the namespace. SPLICE holds those of -T and -U: ports
of the namespace's loopback, forwarded to the host's.

Without options that change rules, pesto shows them. Podman (6 and later)
runs pesto this way to forward the published ports of rootless containers
on bridge networks, when containers.conf(5) sets
rootless_port_forwarder="pasta".`,
	Sections: manSections(),
}

func manSections() []cmdline.Section {
	var out []cmdline.Section
	for _, s := range pestoSections {
		out = append(out, s.Section)
	}
	return out
}

const changesText = `Changes are applied in the order given, as one request: if any of them
fails (a spec pasta can't parse, a rule that conflicts with one in force,
a rule to delete that is not in force, a port that can't be bound), pasta
changes nothing and pesto says why.

Before any --add or --delete, a port spec replaces its table: the first
spec of a table clears it. So

    pesto -t 8080 -U 53 PATH

leaves the TCP rule of port 8080 alone in the HOST table, and the UDP rule
of port 53 alone in the SPLICE table, as

    pesto -C HOST -C SPLICE -A -t 8080 -U 53 PATH

would. After --add, specs add rules; after --delete, they delete them;
each holds until the other is given. So

    pesto -A -t 2000 -D -t 3000 -u 5000 PATH

adds the TCP rule of port 2000, and deletes the TCP rule of port 3000 and
the UDP rule of port 5000.

A deleted rule's sockets close: its ports take no new connections.
Connections it accepted go on, each with its own socket. So do its UDP
flows: their replies go through the rule's socket, which stays bound for
them alone until they end (180 s without traffic). A rule that goes and
one that comes in the same request with the same address and port share
that socket, so replacing a rule never loses its port.`

const outputText = `pesto shows each table, HOST then SPLICE, and in each its rules in
the order they were added, as the C pasta does, each followed by a line
of counters:

    HOST
      TCP [*]:8080  =>  80
        connections 3, bytes in 1534, out 80
      UDP [127.0.0.1]:5353  =>  53
        flows 1, datagrams in 4 (240 bytes), out 4 (512 bytes)

[*] is any address, %IF an interface; SPLICE rules show the namespace's
loopback as [*]%lo. (best effort) and (auto-scan) mark the rules of all,
exclusion-only lists and auto. The counters count since the rule was
added: TCP connections accepted, UDP flows (one per sender), and the
bytes and datagrams in (from the clients of the rule's ports to the other
side) and out (back to the clients). For auto rules, and rules that could
not bind every port, the line also lists the ports that have a socket
now ("listening: none" if none has).

--json prints a JSON object instead: "socket" (PATH), "tables" (the tables
now) and, with --show and changes, "before". A table has "name" and
"rules"; a rule has "proto" ("tcp" or "udp"), "address" and "interface"
(absent for any), "first", "last" and "target" (ports), "target_address"
(absent for the namespace's own, or the host's loopback), "auto" and
"best_effort" (absent when false), "listening" (the ports with a socket
now, as comma-separated ranges), "sockets", and "counters" with
"connections", "flows", "bytes_in", "bytes_out", "datagrams_in" and
"datagrams_out".`

const exitStatusText = `0
  The changes were applied, or the rules shown.

1
  A bad option, no answer at PATH, or pasta refused the request (then
  nothing changed).`

const notesText = `This is gopasta's pesto. It talks to gopasta's pasta with a protocol of
its own, not to the C pasta of the passt project, whose own pesto it
replaces: install the two together. pasta answers only the user who
started it.`
