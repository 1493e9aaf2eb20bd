// Package logging builds the server's zap logger: JSON lines to
// <dir>/server-combined.log (everything at or above the configured level) and
// <dir>/server-error.log (errors only), each rotated by lumberjack, plus
// readable console lines on stderr. It never writes to stdout, which belongs
// to the MCP protocol when serving over stdio.
package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/config/redact"
)

// File names inside the log directory; the same as the TypeScript original's
// so existing log tooling keeps working.
const (
	CombinedFile = "server-combined.log"
	ErrorFile    = "server-error.log"
)

// New builds the logger described by cfg. Console output goes to stderr
// (pass os.Stderr; tests pass a buffer). The returned close function flushes
// and closes the log files; call it once when the program ends.
func New(cfg config.LogConfig, stderr io.Writer) (*zap.Logger, func() error, error) {
	return NewRedacting(cfg, stderr, nil)
}

// NewRedacting is New with every line redacted on its way out, whatever
// logged it and in whichever field: secrets returns the redactor in force
// (the configuration may be reloaded); nil redacts nothing.
func NewRedacting(cfg config.LogConfig, stderr io.Writer, secrets func() *redact.Redactor) (*zap.Logger, func() error, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, nil, fmt.Errorf("log level %q: %w", cfg.Level, err)
	}
	if cfg.Dir == "" {
		return nil, nil, errors.New("log directory is not set")
	}
	if cfg.MaxSizeMB < 1 || cfg.MaxFiles < 1 {
		return nil, nil, fmt.Errorf("log rotation needs max_size_mb and max_files >= 1, got %d and %d", cfg.MaxSizeMB, cfg.MaxFiles)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create log directory: %w", err)
	}

	rotated := func(name string) *lumberjack.Logger {
		return &lumberjack.Logger{
			Filename:   filepath.Join(cfg.Dir, name),
			MaxSize:    cfg.MaxSizeMB,
			MaxBackups: cfg.MaxFiles,
		}
	}
	combined, errorLog := rotated(CombinedFile), rotated(ErrorFile)
	// Open both files now so a directory that cannot be written to is an
	// error here rather than a silently lost first log line later.
	for _, f := range []*lumberjack.Logger{combined, errorLog} {
		if _, err := f.Write(nil); err != nil {
			return nil, nil, fmt.Errorf("open log file %s: %w", f.Filename, err)
		}
	}

	jsonEnc := zapcore.NewJSONEncoder(encoderConfig())
	consoleCfg := encoderConfig()
	consoleCfg.EncodeLevel = zapcore.CapitalLevelEncoder
	consoleEnc := zapcore.NewConsoleEncoder(consoleCfg)
	// Hide the writer's Sync: fsync on a terminal or pipe fails with EINVAL,
	// which would make every close report an error that means nothing.
	console := zapcore.Lock(redacting(zapcore.AddSync(struct{ io.Writer }{stderr}), secrets))

	atOrAbove := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= level })
	errorsOnly := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= max(level, zapcore.ErrorLevel) })
	cores := []zapcore.Core{
		zapcore.NewCore(jsonEnc, redacting(zapcore.AddSync(combined), secrets), atOrAbove),
		zapcore.NewCore(jsonEnc, redacting(zapcore.AddSync(errorLog), secrets), errorsOnly),
		zapcore.NewCore(consoleEnc, console, atOrAbove),
	}
	closeSyslog := func() error { return nil }
	if cfg.Syslog != "" {
		w, err := dialSyslog(cfg.Syslog)
		if err != nil {
			return nil, nil, err
		}
		closeSyslog = w.Close
		cores = append(cores, &syslogCore{LevelEnabler: atOrAbove, enc: jsonEnc.Clone(), w: w, secrets: secrets})
	}
	core := zapcore.NewTee(cores...)
	logger := zap.New(core,
		zap.AddCaller(),
		zap.AddStacktrace(zapcore.DPanicLevel),
		zap.ErrorOutput(console), // zap's own write failures: stderr, never stdout
	)

	closeFn := func() error {
		// Sync only flushes encoder buffers here; lumberjack writes through.
		return errors.Join(logger.Sync(), combined.Close(), errorLog.Close(), closeSyslog())
	}
	return logger, closeFn, nil
}

// redactingSyncer redacts each encoded entry before it is written. zap
// writes an entry (message, fields, stack) in one Write call, so no secret
// is cut across two; the JSON encoder leaves a secret of the usual
// characters as it is, and one with quotes or backslashes is known to the
// redactor in its JSON-escaped form too.
type redactingSyncer struct {
	zapcore.WriteSyncer
	secrets func() *redact.Redactor
}

func redacting(ws zapcore.WriteSyncer, secrets func() *redact.Redactor) zapcore.WriteSyncer {
	if secrets == nil {
		return ws
	}
	return redactingSyncer{ws, secrets}
}

func (r redactingSyncer) Write(p []byte) (int, error) {
	if _, err := r.WriteSyncer.Write(r.secrets().Bytes(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func encoderConfig() zapcore.EncoderConfig {
	c := zap.NewProductionEncoderConfig()
	c.TimeKey = "ts"
	c.EncodeTime = zapcore.ISO8601TimeEncoder
	c.EncodeDuration = zapcore.StringDurationEncoder
	return c
}

// ToolCallMessage is the message of every tool call's log line. It keeps the
// original server's wording, so `grep "Tool invoked" logs/server-combined.log`
// finds every call, as its monitoring instructions say.
const ToolCallMessage = "Tool invoked"

// LogToolCall logs one MCP tool invocation: tool, duration, outcome and the
// NAMES of the arguments given, never their values (a prompt or a path may be
// private). A non-nil err is the handler's failure and is logged at error
// level, so it also reaches server-error.log.
func LogToolCall(logger *zap.Logger, tool string, dur time.Duration, argNames []string, err error) {
	names := slices.Clone(argNames)
	slices.Sort(names)
	fields := []zap.Field{
		zap.String("tool", tool),
		zap.Duration("duration", dur),
		zap.Strings("args", names),
	}
	// Report the handler that called us, not this helper, as the caller.
	logger = logger.WithOptions(zap.AddCallerSkip(1))
	if err != nil {
		logger.Error(ToolCallMessage, append(fields, zap.String("outcome", "error"), zap.Error(err))...)
		return
	}
	logger.Info(ToolCallMessage, append(fields, zap.String("outcome", "ok"))...)
}

// ArgNames returns the sorted keys of a tool's arguments, for LogToolCall.
func ArgNames[V any](args map[string]V) []string {
	names := make([]string, 0, len(args))
	for k := range args {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// GoSafe runs fn in a new goroutine; a panic in fn is logged with its stack
// instead of killing the process. The returned channel is closed when fn has
// returned or its panic has been logged.
func GoSafe(logger *zap.Logger, name string, fn func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer Recover(logger, name)
		fn()
	}()
	return done
}

// Recover logs a panic with its stack and stops it. It must be deferred
// directly: `defer logging.Recover(logger, "resync")`.
func Recover(logger *zap.Logger, name string) {
	if r := recover(); r != nil {
		logPanic(logger, name, r)
	}
}

// RecoverError is Recover for functions that return an error: the panic is
// logged and turned into an error in *errp, so a caller such as a reconcile
// worker can retry instead of losing the goroutine. Defer it directly.
func RecoverError(logger *zap.Logger, name string, errp *error) {
	if r := recover(); r != nil {
		logPanic(logger, name, r)
		if e, ok := r.(error); ok {
			*errp = fmt.Errorf("panic in %s: %w", name, e)
		} else {
			*errp = fmt.Errorf("panic in %s: %v", name, r)
		}
	}
}

func logPanic(logger *zap.Logger, name string, r any) {
	// Skip logPanic and Recover so the stack starts at the panic.
	logger.Error("recovered panic",
		zap.String("goroutine", name),
		zap.Any("panic", r),
		zap.StackSkip("stack", 2),
	)
}
