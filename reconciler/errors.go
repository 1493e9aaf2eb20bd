package reconciler

import "errors"

// terminalError marks a failure that retrying cannot fix.
type terminalError struct {
	err error
}

func (e *terminalError) Error() string { return "terminal error: " + e.err.Error() }

func (e *terminalError) Unwrap() error { return e.err }

// Terminal marks err as terminal: the spec itself is wrong (a work folder outside
// the allowed roots, an unknown profile), so no amount of retrying will help.
//
// The controller logs it, forgets the key's backoff and does not requeue it. The key
// is reconciled again only when something enqueues it anew: an in-process write, a
// cross-process wake-up or the periodic resync. Those hints do not say whether the
// spec changed, so a reconciler must itself skip a terminally failed object whose
// generation equals its observed generation (record the failure in status together
// with the observed generation); the queue's only promise is that it does not retry
// with backoff.
//
// Terminal(nil) returns nil, so `return res, Terminal(err)` is safe in any branch.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err: err}
}

// IsTerminal reports whether err, or any error it wraps, was marked with Terminal.
func IsTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}
