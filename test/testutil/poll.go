package testutil

import (
	"testing"
	"time"
)

// Poll calls get every interval until cond holds for the value it returns,
// and returns that value and true; once timeout has passed it returns the
// last value and false, for the caller to describe. An error from get fails
// the test at once.
func Poll[T any](t testing.TB, timeout, interval time.Duration, get func() (T, error), cond func(T) bool) (T, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if cond(v) {
			return v, true
		}
		if time.Now().After(deadline) {
			return v, false
		}
		time.Sleep(interval)
	}
}
