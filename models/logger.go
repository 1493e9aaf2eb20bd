package models

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	gormlogger "gorm.io/gorm/logger"
)

// gormLogger routes GORM's logging to zap: slow queries at warn, failed ones
// at debug (the caller gets the error and decides whether it matters). SQL is
// logged without its values, which may hold prompts or patches.
type gormLogger struct {
	log  *zap.Logger
	slow time.Duration
}

func newGormLogger(log *zap.Logger, slow time.Duration) gormlogger.Interface {
	if log == nil || !log.Core().Enabled(zap.FatalLevel) {
		return gormlogger.Discard
	}
	return &gormLogger{log: log.Named("store"), slow: slow}
}

// LogMode is ignored: the level is the zap logger's business. (GORM's Debug()
// would otherwise switch on a log line per query.)
func (l *gormLogger) LogMode(gormlogger.LogLevel) gormlogger.Interface { return l }

func (l *gormLogger) Info(_ context.Context, msg string, args ...any) {
	l.log.Sugar().Debugf(msg, args...)
}

func (l *gormLogger) Warn(_ context.Context, msg string, args ...any) {
	l.log.Sugar().Warnf(msg, args...)
}

func (l *gormLogger) Error(_ context.Context, msg string, args ...any) {
	l.log.Sugar().Errorf(msg, args...)
}

func (l *gormLogger) Trace(_ context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, gormlogger.ErrRecordNotFound) && l.log.Core().Enabled(zap.DebugLevel):
		sql, rows := fc()
		l.log.Debug("query failed", zap.String("sql", truncate(sql, 500)), zap.Int64("rows", rows),
			zap.Duration("elapsed", elapsed), zap.Error(err))
	case elapsed > l.slow:
		sql, rows := fc()
		l.log.Warn("slow query", zap.String("sql", truncate(sql, 500)), zap.Int64("rows", rows),
			zap.Duration("elapsed", elapsed))
	}
}

// ParamsFilter drops the bound values from logged SQL.
func (l *gormLogger) ParamsFilter(_ context.Context, sql string, _ ...any) (string, []any) {
	return sql, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
