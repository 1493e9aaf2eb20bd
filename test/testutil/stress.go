package testutil

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// StressDuration is how long a stress, chaos or fuzz test keeps going:
// CP_STRESS_SECONDS when set (make soak sets 120), else def, or short under
// -short.
func StressDuration(t testing.TB, def, short time.Duration) time.Duration {
	t.Helper()
	if v := os.Getenv("CP_STRESS_SECONDS"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			t.Fatalf("CP_STRESS_SECONDS=%q: want a positive number of seconds", v)
		}
		return time.Duration(n * float64(time.Second))
	}
	if testing.Short() {
		return short
	}
	return def
}

// Seed is the seed of a randomised test: the value of the environment
// variable env when set, so a logged run can be replayed, else a fresh one.
// It is logged with the line that replays it.
func Seed(t testing.TB, env string) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(env); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", env, v, err)
		}
	}
	t.Logf("seed %d (%s=%d replays it)", seed, env, seed)
	return seed
}
