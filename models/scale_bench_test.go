package models

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkStoreScaling is the store's part of `make bench`: in one run, the
// per-call cost of writing a task intent and of the query every reconcile
// resync uses to find live work, over a store with 1,000 and one with 100,000
// finished tasks (20 live tasks in each), measured in interleaved rounds so a
// change in machine load hits both sizes alike. The live query must hardly
// notice the history.
//
//	go test -run '^$' -bench StoreScaling -benchtime 1x ./models/
func BenchmarkStoreScaling(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		small, large := newSeededStore(b, 1_000), newSeededStore(b, 100_000)
		liveQuery := func(s *Store) func() {
			return func() {
				if ids, err := s.ListLiveTaskIDs(ctx); err != nil || len(ids) != liveTasks {
					b.Fatalf("live tasks: %d, %v", len(ids), err)
				}
			}
		}
		insert := func(s *Store) func() {
			return func() {
				if _, _, err := s.CreateTask(ctx, newTask("scale")); err != nil {
					b.Fatal(err)
				}
			}
		}
		q1k, q100k := medianPair(liveQuery(small), liveQuery(large), 15, 200)
		i1k, i100k := medianPair(insert(small), insert(large), 5, 20)
		printScaling("live-work query (20 live tasks)", q1k, q100k)
		printScaling("insert one task intent (fsync)", i1k, i100k)
		b.ReportMetric(float64(q100k)/float64(q1k), "query-ratio")
		b.ReportMetric(float64(i100k)/float64(i1k), "insert-ratio")
	}
}

func printScaling(what string, at1k, at100k time.Duration) {
	fmt.Printf("store  | %-33s | %9s/op with 1,000 finished tasks | %9s/op with 100,000 | ratio 100k/1k %.2f\n",
		what, at1k.Round(100*time.Nanosecond), at100k.Round(100*time.Nanosecond), float64(at100k)/float64(at1k))
}
