package service

import "context"

type afterReplyKey struct{}

// WithAfterReply returns ctx for a transport that can put work off until a
// call's reply is written: run must run fn once the next message has gone
// out. A handler hands it what the caller need not wait for — waking the
// controllers for a new task, whose first steps (a status write, git
// commands) otherwise compete for the CPU with the reply itself.
func WithAfterReply(ctx context.Context, run func(fn func())) context.Context {
	return context.WithValue(ctx, afterReplyKey{}, run)
}

// afterReply runs fn once the reply is written where ctx's transport says
// when (WithAfterReply), else at once.
func afterReply(ctx context.Context, fn func()) {
	if run, ok := ctx.Value(afterReplyKey{}).(func(func())); ok && run != nil {
		run(fn)
		return
	}
	fn()
}
