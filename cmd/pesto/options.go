package main

// pesto's option table: the one source of its parser, --help, man page and
// bash completion (internal/cmdline). The options are pesto(1)'s; the
// words are ours.

import (
	"errors"
	"fmt"

	"gopasta/internal/cmdline"
	"gopasta/internal/control"
)

// opMode says what a port spec on the command line does: replace its
// table (until -A or -D is given), add its rules, or delete them.
type opMode int

const (
	replacing opMode = iota
	adding
	deleting
)

// config is pesto's parsed command line.
type config struct {
	debug, show, json, help, version bool

	mode     opMode
	ops      []control.Op
	replaced map[string]bool // tables cleared by the first spec that replaces them
}

var pestoCommand = cmdline.Command[config]{
	Name:     "pesto",
	Synopsis: []string{"[OPTION]... PATH"},
	Description: "Show or change the port forwarding rules of a running pasta, through its control " +
		"socket PATH (pasta's -c, --conf-path). Without options that change rules, show them.",
	Groups:   []*cmdline.Group{groupChanges, groupOutput, groupInfo},
	Options:  pestoOptions,
	Operands: cmdline.CompleteFile,
}

var (
	groupChanges = &cmdline.Group{
		Title: "Changes, applied in order, all or nothing",
		Note: "SPEC is a port spec as pasta(1) -t takes it. Before any -A or -D, a spec " +
			"replaces the rules of its table (HOST for -t and -u, SPLICE for -T and -U).",
	}
	groupOutput = &cmdline.Group{Title: "Output"}
	groupInfo   = &cmdline.Group{Title: "Information"}
)

var (
	portKeywords  = []string{"none", "auto", "all"}
	tableKeywords = []string{control.TableHost, control.TableSplice}
)

var pestoOptions = []cmdline.Option[config]{
	{
		Long: "add", Short: 'A', Group: groupChanges,
		Set:  setMode(adding),
		Help: "add the rules of the specs that follow",
		Man: `Add the rules of the port specs that follow, up to the next
--delete, to their tables. A rule may not conflict with one in force (the
same port for overlapping addresses).`,
	},
	{
		Long: "delete", Short: 'D', Group: groupChanges,
		Set:  setMode(deleting),
		Help: "delete the rules of the specs that follow",
		Man: `Delete the rules of the port specs that follow, up to the next
--add, from their tables. Each rule must be in force as the spec gives it:
the same ports, target and address. Connections it accepted go on.`,
	},
	{
		Long: "clear", Short: 'C', Arg: "TABLE", Group: groupChanges, Words: tableKeywords,
		Set:  setClear,
		Help: "delete every rule of TABLE: HOST or SPLICE",
		Man: `Delete every rule of TABLE: HOST, the rules of -t and -u (ports of
the host forwarded into the namespace), or SPLICE, those of -T and -U
(ports of the namespace's loopback forwarded to the host's).`,
	},
	{
		Long: "tcp-ports", Short: 't', Arg: "SPEC", Group: groupChanges, Words: portKeywords,
		Set:  setSpec("tcp-ports", control.TableHost),
		Help: "TCP ports of the host to forward into the namespace",
		Man:  `TCP ports of the host to forward into the namespace, as pasta(1) -t.`,
	},
	{
		Long: "udp-ports", Short: 'u', Arg: "SPEC", Group: groupChanges, Words: portKeywords,
		Set:  setSpec("udp-ports", control.TableHost),
		Help: "UDP ports of the host to forward into the namespace",
		Man:  `UDP ports of the host to forward into the namespace, as pasta(1) -u.`,
	},
	{
		Long: "tcp-ns", Short: 'T', Arg: "SPEC", Group: groupChanges, Words: portKeywords,
		Set:  setSpec("tcp-ns", control.TableSplice),
		Help: "TCP ports of the namespace to forward to the host",
		Man:  `TCP ports of the namespace's loopback to forward to the host, as pasta(1) -T.`,
	},
	{
		Long: "udp-ns", Short: 'U', Arg: "SPEC", Group: groupChanges, Words: portKeywords,
		Set:  setSpec("udp-ns", control.TableSplice),
		Help: "UDP ports of the namespace to forward to the host",
		Man:  `UDP ports of the namespace's loopback to forward to the host, as pasta(1) -U.`,
	},
	{
		Long: "show", Short: 's', Group: groupOutput,
		Set:  setFlag(func(c *config) { c.show = true }),
		Help: "show the rules before and after the changes",
		Man: `Show the rules as they were before the changes, and as they are
after. Without changes, pesto shows the rules anyway.`,
	},
	{
		Long: "json", Group: groupOutput,
		Set:  setFlag(func(c *config) { c.json = true }),
		Help: "show the rules as JSON, for scripts",
		Man: `Show the rules as a JSON object (see OUTPUT) instead of text: after
changes too, not only with --show.`,
	},
	{
		Long: "debug", Short: 'd', Group: groupOutput,
		Set:  setFlag(func(c *config) { c.debug = true }),
		Help: "print the request and the answer on standard error",
		Man:  `Print the request sent to pasta and its answer on standard error.`,
	},
	{
		Long: "help", Short: 'h', Group: groupInfo,
		Set:  setFlag(func(c *config) { c.help = true }),
		Help: "show this help and exit",
		Man:  `Show the options, how changes combine, and the exit status, then exit.`,
	},
	{
		Long: "version", Group: groupInfo,
		Set:  setFlag(func(c *config) { c.version = true }),
		Help: "show the version and exit",
		Man:  `Show the version and exit.`,
	},
}

func setFlag(set func(c *config)) func(*config, string) error {
	return func(c *config, _ string) error {
		set(c)
		return nil
	}
}

func setMode(m opMode) func(*config, string) error {
	return func(c *config, _ string) error {
		c.mode = m
		return nil
	}
}

// setClear handles -C: the table must be one of pasta's.
func setClear(c *config, table string) error {
	if table != control.TableHost && table != control.TableSplice {
		return fmt.Errorf("unknown table '%s' (%s or %s)", table, control.TableHost, control.TableSplice)
	}
	c.ops = append(c.ops, control.Op{Op: control.OpClear, Table: table})
	return nil
}

// setSpec handles -t, -u, -T and -U: pasta parses the spec itself. Before
// -A or -D, the first spec of a table clears it (pesto(1), NOTES).
func setSpec(option, table string) func(*config, string) error {
	return func(c *config, spec string) error {
		if spec == "" {
			return errors.New("invalid port spec ''")
		}
		op := control.OpAdd
		switch c.mode {
		case replacing:
			if !c.replaced[table] {
				if c.replaced == nil {
					c.replaced = map[string]bool{}
				}
				c.replaced[table] = true
				c.ops = append(c.ops, control.Op{Op: control.OpClear, Table: table})
			}
		case deleting:
			op = control.OpDelete
		}
		c.ops = append(c.ops, control.Op{Op: op, Option: option, Spec: spec})
		return nil
	}
}
