package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSyslogMessage: a message to the system logger arrives on its socket
// as RFC 3164 has it: <PRI>TIMESTAMP pasta[PID]: MSG, with facility
// daemon, over a datagram socket and over a stream one (newline-ended).
func TestSyslogMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  int
		end  string
	}{{"datagram", unix.SOCK_DGRAM, ""}, {"stream", unix.SOCK_STREAM, "\n"}} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			srv, err := unix.Socket(unix.AF_UNIX, tc.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(srv)
			if err := unix.Bind(srv, &unix.SockaddrUnix{Name: path}); err != nil {
				t.Fatal(err)
			}
			if tc.typ == unix.SOCK_STREAM {
				if err := unix.Listen(srv, 1); err != nil {
					t.Fatal(err)
				}
			}
			s, err := dialSyslog(path)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(s.fd)
			s.send(syslogWarning, "hello")
			conn := srv
			if tc.typ == unix.SOCK_STREAM {
				if conn, _, err = unix.Accept4(srv, unix.SOCK_CLOEXEC); err != nil {
					t.Fatal(err)
				}
				defer unix.Close(conn)
			}
			buf := make([]byte, 512)
			n, err := unix.Read(conn, buf)
			if err != nil {
				t.Fatal(err)
			}
			re := regexp.MustCompile(`^<28>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d pasta\[\d+\]: hello` + tc.end + `$`)
			if !re.Match(buf[:n]) {
				t.Errorf("got %q, want <28>TIMESTAMP pasta[PID]: hello%q", buf[:n], tc.end)
			}
		})
	}
}
