package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"gopasta/test/sandbox"
)

// autoForwardCase is what differs between -t auto and -u auto for
// checkAutoForward: the helper program's commands and their output words.
type autoForwardCase struct {
	tool, port, option string
	max                time.Duration             // how soon the port must work once bound
	probe              func(dst string) []string // checks the port is closed
	probed             string                    // the probe's output word
	closed             []string                  // probe results that mean closed
	client             func(dst string) []string // retries until it gets an answer
	answer             string                    // the server's answer word in the client's output
}

// checkAutoForward starts pasta (with the auto mode by default and
// explicitly) around a server that binds ac.port a second late, and checks
// that the port is closed on the host before, and reachable from the
// remote within ac.max after, the server bound it, the server seeing the
// client's real address. The server and clients print times on the same
// clock, so process start-up delays on a busy machine don't count.
func checkAutoForward(t *testing.T, ac autoForwardCase) {
	eachMode(t, func(t *testing.T, m mode, sb *sandbox.Sandbox) {
		for _, tc := range []struct {
			name string
			opts []string
		}{
			{"default", nil},
			{"explicit", []string{ac.option, "auto"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := withTimeout(t, 2*time.Minute)
				script := "echo STARTED; sleep 1; exec " + ac.tool + " serve -name NS -l :" + ac.port
				args := append(append([]string{"--config-net"}, tc.opts...), "--", "sh", "-c", script)
				t.Logf("$ pasta %s &", strings.Join(args, " "))
				p := sb.Start(t, m.pasta(t, ctx, sb, args...))
				defer p.Kill()
				waitForLine(t, p, "STARTED", tcpServerReadyWait)
				started := time.Now()
				res := sandbox.Run(sb.Remote(ctx, m.as, ac.probe(hostPort(sandbox.HostAddr4, ac.port))...))
				if r := toolLine(t, res.Stdout, ac.probed); !slices.Contains(ac.closed, r["result"]) && time.Since(started) < 800*time.Millisecond {
					t.Errorf("port %s of the host answered before the server in the namespace started: %v", ac.port, r)
				}
				clients := map[string]*sandbox.Proc{}
				for _, fam := range tcpFamilies {
					clients[fam.name] = sb.Start(t, sb.Remote(ctx, m.as, ac.client(hostPort(fam.host, ac.port))...))
				}
				waitForLine(t, p, "LISTENING", tcpServerReadyWait)
				listened := unixMilli(t, toolLine(t, p.Stdout(), "LISTENING")["t"])
				for _, fam := range tcpFamilies {
					c := clients[fam.name]
					if exited, err := c.Wait(20 * time.Second); !exited || err != nil {
						t.Fatalf("%s: client: exited %v, %v\n[stdout]\n%s[stderr]\n%s", fam.name, exited, err, c.Stdout(), c.Stderr())
					}
					g, cl := toolLine(t, c.Stdout(), ac.answer), toolLine(t, c.Stdout(), "CLIENT")
					took := unixMilli(t, cl["t"]).Sub(listened)
					if took > ac.max {
						t.Errorf("%s: port %s reachable %v after the server bound it (%s attempts), want within %v",
							fam.name, ac.port, took, cl["attempts"], ac.max)
					}
					if g["name"] != "NS" || peerAddr(t, g["peer"]) != netip.MustParseAddr(fam.remote) {
						t.Errorf("%s: answer %v, want the namespace's server seeing %s", fam.name, g, fam.remote)
					}
					t.Logf("%s: reachable %v after the server bound its port (%s attempts): %v", fam.name, took, cl["attempts"], g)
				}
			})
		}
	})
}
