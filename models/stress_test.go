package models

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// stressDuration is CP_STRESS_SECONDS (default 10; 2 with -short).
func stressDuration(t *testing.T) time.Duration {
	return testutil.StressDuration(t, 10*time.Second, 2*time.Second)
}

// stressTask counts the writes that succeeded against one task.
type stressTask struct {
	id           string
	specWrites   atomic.Int64 // successful UpdateTaskSpec calls (each adds 1 to TimeoutSeconds)
	statusWrites int64        // successful UpdateTaskStatus calls (each adds 1 to RunNumber); one writer only
}

// 64 goroutines write intents (new tasks, spec updates) while a reconciler
// writes statuses through a second Store on the same file: its own pool, its
// own write queue and its own lock descriptor, exactly what another server
// process would have. No caller may see an error (SQLITE_BUSY in particular), no
// write may be lost, and every status write based on a stale read must be
// refused as a conflict, never applied.
func TestStress_IntentsAndStatusesConcurrently(t *testing.T) {
	ctx := context.Background()
	duration := stressDuration(t)
	path := filepath.Join(t.TempDir(), "stress.db")
	front, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	reconciler, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer reconciler.Close()

	var mu sync.RWMutex
	var tasks []*stressTask
	byID := map[string]*stressTask{}
	add := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		st := &stressTask{id: id}
		tasks = append(tasks, st)
		byID[id] = st
	}
	// Half the picks go to a hot set of 16 tasks, so spec and status writes
	// meet on the same rows and the conflict path is exercised all the time.
	const hot = 16
	pick := func(r *rand.Rand) *stressTask {
		mu.RLock()
		defer mu.RUnlock()
		if r.IntN(2) == 0 {
			return tasks[r.IntN(hot)]
		}
		return tasks[r.IntN(len(tasks))]
	}
	for i := range hot {
		add(mustCreateTask(t, front, newTask(fmt.Sprintf("seed %d", i))).ID)
	}

	stop := time.Now().Add(duration)
	var creates, specs, statuses, conflicts atomic.Int64
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
	failed := func() bool { return firstErr != nil }

	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for time.Now().Before(stop) && !failed() {
				if r.IntN(4) == 0 {
					task, created, err := front.CreateTask(ctx, newTask(fmt.Sprintf("writer %d", w)))
					if err != nil || !created {
						fail(fmt.Errorf("create task: created=%v err=%w", created, err))
						return
					}
					add(task.ID)
					creates.Add(1)
					continue
				}
				st := pick(r)
				if _, err := front.UpdateTaskSpec(ctx, st.id, func(t *Task) error {
					t.Spec.TimeoutSeconds++
					return nil
				}); err != nil {
					fail(fmt.Errorf("update spec: %w", err))
					return
				}
				st.specWrites.Add(1)
				specs.Add(1)
			}
		})
	}
	var staleRefused atomic.Int64
	wg.Go(func() {
		r := rand.New(rand.NewPCG(99, 1))
		for n := 0; time.Now().Before(stop) && !failed(); n++ {
			st := pick(r)
			if n%20 == 0 {
				// Deliberately stale: read, wait until a spec write lands on
				// the row, then write what was read. It must be refused.
				mu.RLock()
				st = tasks[r.IntN(hot)]
				mu.RUnlock()
				if refused, err := staleStatusWrite(ctx, reconciler, st.id); err != nil {
					fail(err)
					return
				} else if refused {
					staleRefused.Add(1)
				}
			}
			for !failed() { // read, modify, write; on conflict re-read
				task, err := reconciler.GetTask(ctx, st.id)
				if err != nil {
					fail(fmt.Errorf("get task: %w", err))
					return
				}
				if task.Status.RunNumber != int(st.statusWrites) {
					fail(fmt.Errorf("task %s: read run number %d after %d status writes", st.id, task.Status.RunNumber, st.statusWrites))
					return
				}
				task.Status.Phase = TaskPhaseRunning
				task.Status.RunNumber++
				task.Status.Message = fmt.Sprintf("status write %d", task.Status.RunNumber)
				task.Status.ObservedGeneration = task.Generation
				err = reconciler.UpdateTaskStatus(ctx, task)
				if errors.Is(err, ErrConflict) {
					conflicts.Add(1)
					continue
				}
				if err != nil {
					fail(fmt.Errorf("update status: %w", err))
					return
				}
				st.statusWrites++
				statuses.Add(1)
				break
			}
		}
	})
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("a caller saw an error: %v", firstErr)
	}

	// Zero lost updates: every successful write is in the final rows.
	stored, err := front.ListTasks(ctx, TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(tasks) {
		t.Fatalf("%d tasks stored, %d created", len(stored), len(tasks))
	}
	for _, task := range stored {
		st := byID[task.ID]
		if got, want := task.Spec.TimeoutSeconds, st.specWrites.Load(); got != want {
			t.Errorf("task %s: timeout %d, want %d spec writes", task.ID, got, want)
		}
		if got, want := task.Generation, 1+st.specWrites.Load(); got != want {
			t.Errorf("task %s: generation %d, want %d", task.ID, got, want)
		}
		if got, want := int64(task.Status.RunNumber), st.statusWrites; got != want {
			t.Errorf("task %s: run number %d, want %d status writes", task.ID, got, want)
		}
		if want := st.statusWrites; want > 0 && task.Status.Message != fmt.Sprintf("status write %d", want) {
			t.Errorf("task %s: message %q after %d status writes", task.ID, task.Status.Message, want)
		}
		if got, want := task.ResourceVersion, 1+st.specWrites.Load()+st.statusWrites; got != want {
			t.Errorf("task %s: resource version %d, want %d", task.ID, got, want)
		}
	}
	if statuses.Load() == 0 || staleRefused.Load() == 0 {
		t.Errorf("the test did not exercise its paths: %d status writes, %d deliberately stale writes refused", statuses.Load(), staleRefused.Load())
	}
	secs := duration.Seconds()
	t.Logf("%v: %d creates + %d spec updates (%.0f intents/s) from 64 goroutines; %d status writes (%.0f/s) from another Store; "+
		"%d stale status writes refused as conflicts (%d of them deliberate); 0 errors, 0 lost updates",
		duration, creates.Load(), specs.Load(), float64(creates.Load()+specs.Load())/secs, statuses.Load(), float64(statuses.Load())/secs,
		conflicts.Load()+staleRefused.Load(), staleRefused.Load())
}

// staleStatusWrite reads a task, waits (up to a second) until another writer
// changes it, then writes a status based on the old read. It reports whether
// the write was refused with ErrConflict; a stale write that is accepted is an
// error (a lost update).
func staleStatusWrite(ctx context.Context, s *Store, id string) (refused bool, err error) {
	old, err := s.GetTask(ctx, id)
	if err != nil {
		return false, fmt.Errorf("stale write: get task: %w", err)
	}
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		cur, err := s.GetTask(ctx, id)
		if err != nil {
			return false, fmt.Errorf("stale write: get task: %w", err)
		}
		if cur.ResourceVersion != old.ResourceVersion {
			break
		}
		if time.Now().After(deadline) {
			return false, nil // nobody wrote this task meanwhile; nothing to prove
		}
	}
	old.Status.Message = "stale write that must not land"
	err = s.UpdateTaskStatus(ctx, old)
	if errors.Is(err, ErrConflict) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("stale write: %w", err)
	}
	return false, fmt.Errorf("task %s: a status write based on a stale read was accepted", id)
}
