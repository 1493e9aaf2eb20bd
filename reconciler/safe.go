package reconciler

import (
	"fmt"
	"runtime/debug"
	"sync"

	"go.uber.org/zap"
)

// GoSafe runs fn in a new goroutine tracked by wg (when not nil). A panic in fn is
// recovered and logged with its stack instead of taking the whole server down: the
// process also serves MCP requests and follows other tasks' containers, and every
// loop started this way is started again by the next leadership term anyway.
func GoSafe(wg *sync.WaitGroup, logger *zap.Logger, what string, fn func()) {
	if wg != nil {
		wg.Add(1)
	}
	go func() {
		if wg != nil {
			defer wg.Done()
		}
		defer func() {
			if r := recover(); r != nil {
				_ = logPanic(logger, what, r)
			}
		}()
		fn()
	}()
}

// logPanic logs a value recovered from a panic, with the panicking goroutine's stack
// (debug.Stack called from a deferred function still shows the frames that
// panicked), and returns it as an error so callers can route it through their
// normal failure path.
func logPanic(logger *zap.Logger, what string, r any) error {
	logger.Error("recovered from panic",
		zap.String("in", what),
		zap.Any("panic", r),
		zap.ByteString("stack", debug.Stack()))
	return fmt.Errorf("%s: panic: %v", what, r)
}
