package main

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sync"
	"time"
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
	stderr  io.Writer      // nil once we run in the background
	file    *os.File       // -l FILE
	maxSize int64          // --log-size
	written int64          // bytes in file
	sys     *syslog.Writer // background without -l
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
	if w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "pasta"); err == nil {
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
	switch level {
	case levelError:
		_ = l.sys.Err(msg)
	case levelWarn:
		_ = l.sys.Warning(msg)
	case levelInfo:
		_ = l.sys.Info(msg)
	default:
		_ = l.sys.Debug(msg)
	}
}

func errorf(format string, args ...any) { lg.logf(levelError, format, args...) }
func warnf(format string, args ...any)  { lg.logf(levelWarn, format, args...) }
func infof(format string, args ...any)  { lg.logf(levelInfo, format, args...) }
func debugf(format string, args ...any) { lg.logf(levelDebug, format, args...) }
func tracef(format string, args ...any) { lg.logf(levelTrace, format, args...) }
