package models

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// historySizes are the numbers of finished tasks the benchmarks seed.
var historySizes = []int{1_000, 10_000, 100_000}

// liveTasks is the live set every benchmark store holds besides its history.
const liveTasks = 20

func newSeededStore(tb testing.TB, finished int) *Store {
	tb.Helper()
	s := newSQLiteTestStore(tb) // SQLite's partial indexes at scale; PostgreSQL's figures are in make bench
	seedFinishedTasks(tb, s, finished)
	seedLiveTasks(tb, s, liveTasks)
	return s
}

// BenchmarkInsertIntent measures CreateTask (one immediate transaction with
// synchronous=FULL, i.e. one fsync) with a growing history.
func BenchmarkInsertIntent(b *testing.B) {
	ctx := context.Background()
	for _, n := range historySizes {
		b.Run(fmt.Sprintf("finished=%d", n), func(b *testing.B) {
			s := newSeededStore(b, n)
			for b.Loop() {
				if _, _, err := s.CreateTask(ctx, newTask("bench")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLiveWorkQuery measures ListLiveTaskIDs, the query every reconcile
// resync runs, with 20 live tasks and a growing history.
func BenchmarkLiveWorkQuery(b *testing.B) {
	ctx := context.Background()
	for _, n := range historySizes {
		b.Run(fmt.Sprintf("finished=%d", n), func(b *testing.B) {
			s := newSeededStore(b, n)
			for b.Loop() {
				ids, err := s.ListLiveTaskIDs(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(ids) != liveTasks {
					b.Fatalf("%d live tasks, want %d", len(ids), liveTasks)
				}
			}
		})
	}
}

// TestLiveQueryScales measures, in one run, the per-call cost of the live-work
// query and of an intent insert with 1,000 and with 100,000 finished tasks, and
// logs the ratios. The live query must hardly notice the history; the bound
// asserted is deliberately loose (5x) so a noisy machine does not fail it.
func TestLiveQueryScales(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 rows")
	}
	ctx := context.Background()
	small, large := newSeededStore(t, 1_000), newSeededStore(t, 100_000)

	liveQuery := func(s *Store) func() {
		return func() {
			if ids, err := s.ListLiveTaskIDs(ctx); err != nil || len(ids) != liveTasks {
				t.Fatalf("live tasks: %d, %v", len(ids), err)
			}
		}
	}
	insert := func(s *Store) func() {
		return func() {
			if _, _, err := s.CreateTask(ctx, newTask("scale")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Interleave the two stores' rounds so drift in machine load hits both alike.
	q1k, q100k := medianPair(liveQuery(small), liveQuery(large), 15, 200)
	t.Logf("live-work query: %v/op with 1,000 finished tasks, %v/op with 100,000: ratio %.2f", q1k, q100k, float64(q100k)/float64(q1k))
	i1k, i100k := medianPair(insert(small), insert(large), 5, 20)
	t.Logf("intent insert:   %v/op with 1,000 finished tasks, %v/op with 100,000: ratio %.2f", i1k, i100k, float64(i100k)/float64(i1k))
	if ratio := float64(q100k) / float64(q1k); ratio > 5 {
		t.Errorf("live-work query is %.1fx slower with 100x the history; it should hardly change", ratio)
	}
}

// medianPair runs a and b alternately in rounds of n calls and returns the
// median per-call time of each.
func medianPair(a, b func(), rounds, n int) (time.Duration, time.Duration) {
	a()
	b() // warm caches and prepared statements
	var ta, tb []time.Duration
	for range rounds {
		for _, x := range []struct {
			f   func()
			out *[]time.Duration
		}{{a, &ta}, {b, &tb}} {
			start := time.Now()
			for range n {
				x.f()
			}
			*x.out = append(*x.out, time.Since(start)/time.Duration(n))
		}
	}
	slices.Sort(ta)
	slices.Sort(tb)
	return ta[len(ta)/2], tb[len(tb)/2]
}
