package logging

import (
	"fmt"
	"log/syslog"
	"strings"

	"go.uber.org/zap/zapcore"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/config/redact"
)

// syslogTag names the program in every syslog message.
const syslogTag = "claude-parallel"

// dialSyslog connects to the collector named by addr (config log.syslog):
// "local" is the machine's syslog socket (/dev/log, which journald reads
// under systemd); "udp://host:port", "tcp://host:port", "unix:///path" and
// "unixgram:///path" name one. Messages carry facility daemon.
func dialSyslog(addr string) (*syslog.Writer, error) {
	if addr == "local" {
		w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, syslogTag)
		if err != nil {
			return nil, fmt.Errorf("connect to the local syslog: %w", err)
		}
		return w, nil
	}
	network, raddr, err := config.SyslogAddress(addr)
	if err != nil {
		return nil, err
	}
	w, err := syslog.Dial(network, raddr, syslog.LOG_DAEMON|syslog.LOG_INFO, syslogTag)
	if err != nil {
		return nil, fmt.Errorf("connect to syslog %s: %w", addr, err)
	}
	return w, nil
}

// syslogCore sends each entry, JSON-encoded as in the log file, to syslog
// at the severity of its level.
type syslogCore struct {
	zapcore.LevelEnabler
	enc zapcore.Encoder
	w   *syslog.Writer
	// secrets redacts each line before it leaves, as the log files are.
	secrets func() *redact.Redactor
}

func (c *syslogCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &syslogCore{LevelEnabler: c.LevelEnabler, enc: enc, w: c.w, secrets: c.secrets}
}

func (c *syslogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *syslogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(ent, fields)
	if err != nil {
		return err
	}
	line := strings.TrimSuffix(buf.String(), "\n")
	buf.Free()
	if c.secrets != nil {
		line = c.secrets().String(line)
	}
	switch {
	case ent.Level <= zapcore.DebugLevel:
		return c.w.Debug(line)
	case ent.Level == zapcore.InfoLevel:
		return c.w.Info(line)
	case ent.Level == zapcore.WarnLevel:
		return c.w.Warning(line)
	case ent.Level == zapcore.ErrorLevel:
		return c.w.Err(line)
	default:
		return c.w.Crit(line)
	}
}

func (c *syslogCore) Sync() error { return nil }
