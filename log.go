package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// logLevel orders messages by importance; a message is shown when its level
// is at most the configured one.
type logLevel int

const (
	levelError logLevel = iota
	levelWarn
	levelInfo
	levelDebug
	levelTrace
)

// logger writes one line per message to standard error, a size-limited log
// file, or syslog. It is used from the event loop and from setup code; the
// mutex only matters for the few goroutines outside the loop (signals).
type logger struct {
	mu      sync.Mutex
	level   logLevel
	stderr  io.Writer   // nil once we run in the background
	file    *os.File    // -l FILE
	maxSize int64       // --log-size
	written int64       // bytes in file
	sys     *syslogConn // background without -l
	start   time.Time
}

var lg = &logger{level: levelInfo, stderr: os.Stderr, start: time.Now()}

// debugOn and traceOn let hot paths skip building arguments for messages
// that would not be shown.
func debugOn() bool { return lg.level >= levelDebug }
func traceOn() bool { return lg.level >= levelTrace }

// configureLogging applies -d, --trace, -q, -l and --log-size.
func configureLogging(cfg *config) error {
	switch {
	case cfg.trace:
		lg.level = levelTrace
	case cfg.debug:
		lg.level = levelDebug
	case cfg.quiet:
		lg.level = levelWarn
	}
	if cfg.logFile == "" {
		return nil
	}
	f, err := os.OpenFile(cfg.logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("--log-file: %v", err)
	}
	lg.file, lg.maxSize = f, cfg.logSize
	lg.stderr = nil
	return nil
}

// detachLogging is called in the background process: standard error is
// gone, so messages go to the log file or, without one, to syslog.
// With --debug (which C pasta documents as "don't log to the system logger")
// and no log file, messages are dropped.
func detachLogging(debug bool) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	lg.stderr = nil
	if lg.file != nil || debug {
		return
	}
	if w, err := dialSyslog(syslogPath); err == nil {
		lg.sys = w
	}
}

func (l *logger) logf(level logLevel, format string, args ...any) {
	if level > l.level {
		return
	}
	msg := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stderr != nil {
		fmt.Fprintf(l.stderr, "%s\n", msg)
	}
	if l.file != nil {
		l.writeFile(msg)
	}
	if l.sys != nil {
		l.writeSyslog(level, msg)
	}
}

// writeFile appends a time-stamped line; when the file would grow past
// --log-size it starts over, noting that older lines were dropped.
func (l *logger) writeFile(msg string) {
	line := fmt.Sprintf("%.6f: %s\n", time.Since(l.start).Seconds(), msg)
	if l.maxSize > 0 && l.written+int64(len(line)) > l.maxSize {
		if err := l.file.Truncate(0); err == nil {
			l.written = 0
			n, _ := l.file.WriteString("(log size limit reached: older messages dropped)\n")
			l.written += int64(n)
		}
	}
	n, _ := l.file.WriteString(line)
	l.written += int64(n)
}

func (l *logger) writeSyslog(level logLevel, msg string) {
	sev := syslogDebug
	switch level {
	case levelError:
		sev = syslogErr
	case levelWarn:
		sev = syslogWarning
	case levelInfo:
		sev = syslogInfo
	}
	l.sys.send(sev, msg)
}

// The system logger, spoken to directly (RFC 3164 messages on its socket)
// rather than through log/syslog, which reconnects by path after an error:
// once pasta is confined, no path leads anywhere, and the seccomp filter
// refuses the socket family. A logger that goes away loses our messages.
const (
	syslogPath     = "/dev/log"
	syslogDaemon   = 3 << 3 // facility LOG_DAEMON (RFC 3164 section 4.1.1)
	syslogErr      = 3
	syslogWarning  = 4
	syslogInfo     = 6
	syslogDebug    = 7
	syslogMaxLine  = 2048
	syslogTagFixed = "pasta"
)

type syslogConn struct {
	fd     int
	stream bool   // a stream socket: messages end with a newline
	tag    string // "pasta[PID]"
}

// dialSyslog connects to the logger's socket at path, as a datagram socket
// or, failing that, a stream one.
func dialSyslog(path string) (*syslogConn, error) {
	var err error
	for _, typ := range []int{unix.SOCK_DGRAM, unix.SOCK_STREAM} {
		var fd int
		if fd, err = unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0); err != nil {
			continue
		}
		if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
			continue
		}
		tag := fmt.Sprintf("%s[%d]", syslogTagFixed, outsidePID())
		return &syslogConn{fd: fd, stream: typ == unix.SOCK_STREAM, tag: tag}, nil
	}
	return nil, err
}

// send writes one message: <PRI>TIMESTAMP TAG: MSG (RFC 3164 section 4.1),
// without waiting for a logger that is behind.
func (s *syslogConn) send(severity int, msg string) {
	line := fmt.Sprintf("<%d>%s %s: %s", syslogDaemon|severity, time.Now().Format(time.Stamp), s.tag, msg)
	if len(line) > syslogMaxLine {
		line = line[:syslogMaxLine]
	}
	if s.stream {
		line += "\n"
	}
	_ = unix.Sendto(s.fd, []byte(line), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, nil)
}

func errorf(format string, args ...any) { lg.logf(levelError, format, args...) }
func warnf(format string, args ...any)  { lg.logf(levelWarn, format, args...) }
func infof(format string, args ...any)  { lg.logf(levelInfo, format, args...) }
func debugf(format string, args ...any) { lg.logf(levelDebug, format, args...) }
func tracef(format string, args ...any) { lg.logf(levelTrace, format, args...) }
