package mcp

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapSlogHandler sends the MCP library's slog records to the server's zap
// logger, so they reach the log files and never stdout.
type zapSlogHandler struct {
	logger *zap.Logger
	attrs  []zap.Field
	group  string
}

func newZapSlogHandler(logger *zap.Logger) *zapSlogHandler {
	return &zapSlogHandler{logger: logger.WithOptions(zap.AddCallerSkip(3))}
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		// The library's per-request lines are chatty; the front end logs
		// each tool call itself.
		return zapcore.DebugLevel
	default:
		return zapcore.DebugLevel
	}
}

func (h *zapSlogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.logger.Core().Enabled(zapLevel(l))
}

func (h *zapSlogHandler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]zap.Field{}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, h.field(a))
		return true
	})
	if ce := h.logger.Check(zapLevel(r.Level), r.Message); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

func (h *zapSlogHandler) field(a slog.Attr) zap.Field {
	key := a.Key
	if h.group != "" {
		key = h.group + "." + key
	}
	return zap.Any(key, a.Value.Resolve().Any())
}

func (h *zapSlogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	next := *h
	next.attrs = append([]zap.Field{}, h.attrs...)
	for _, a := range attrs {
		next.attrs = append(next.attrs, h.field(a))
	}
	return &next
}

func (h *zapSlogHandler) WithGroup(name string) slog.Handler {
	next := *h
	if next.group != "" {
		name = next.group + "." + name
	}
	next.group = name
	return &next
}
