package mcp

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// wakeLog records why the front end's waits re-read the store.
type wakeLog struct {
	mu      sync.Mutex
	sources []string
	parked  chan struct{} // closed when a wait first parks
}

func (w *wakeLog) add(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sources = append(w.sources, s)
	if s == service.WaitParked && w.parked != nil {
		close(w.parked)
		w.parked = nil
	}
}
func (w *wakeLog) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sources)
}

// noPoll makes e's waits poll only once an hour and records their wake-ups:
// a wait that ends did so because the store reported a change.
func noPoll(e *testEnv) *wakeLog {
	w := &wakeLog{parked: make(chan struct{})}
	e.setDeps(func(d *service.Deps) { d.PollInterval, d.OnWake = time.Hour, w.add })
	return w
}

// answerAppliesOnChange plays a diff controller that, like the real one, is
// woken by changes rather than polling: it answers each apply intent with
// Applied after the store reports a change. It starts once the front end's
// wait has parked, so the answer always comes while the wait waits.
func answerAppliesOnChange(t testing.TB, s *models.Store, parked <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		if parked != nil {
			select {
			case <-parked:
			case <-ctx.Done():
				return
			}
		}
		for {
			changed := s.Changed()
			// The live diffs, as the real controller lists them.
			ids, err := s.ListLiveDiffIDs(ctx)
			if err != nil && ctx.Err() == nil {
				t.Errorf("diff controller: %v", err)
			}
			for _, id := range ids {
				d, err := s.GetDiff(ctx, id)
				if err != nil || d.Spec.Desired != models.DiffDesiredApplied || d.Status.ObservedGeneration == d.Generation {
					continue
				}
				d.Status.Phase, d.Status.ObservedGeneration, d.Status.AppliedTo = models.DiffPhaseApplied, d.Generation, "/applied"
				if err := s.UpdateDiffStatus(ctx, d); err != nil && ctx.Err() == nil {
					t.Errorf("diff controller: %v", err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
}

// apply_changes returns as soon as the controller's status write lands: the
// wait is woken by the store's change signal, never by its (here hour-long)
// poll interval.
func TestApplyChanges_WokenByTheStatusWriteNotThePoll(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	d := e.finishRun(a.TaskID, 1, models.TaskPhaseSucceeded, "out.txt")
	wakes := noPoll(e)
	answerAppliesOnChange(t, e.store, wakes.parked)

	res := ok[service.ApplyResult](e, "apply_changes", map[string]any{"diffId": d.ID})
	if res.Outcome != service.OutcomeApplied {
		t.Fatalf("outcome %+v (wake-ups %v)", res, wakes.list())
	}
	// Parked, woken by the change, done.
	if got := wakes.list(); !slices.Equal(got, []string{service.WaitParked, service.WakeChange}) {
		t.Fatalf("wake-ups %v: want %q then %q", got, service.WaitParked, service.WakeChange)
	}
}

// wait_for_tasks is woken by a status write of another store on the same
// file (another process), which it notices through the data version with no
// controller running in its process.
func TestWaitForTasks_WokenByAnotherStoresWrite(t *testing.T) {
	e := newTestEnv(t)
	a := e.startTask(nil)
	wakes := noPoll(e)
	other, err := models.Open(context.Background(), e.store.Path(), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	type result struct {
		res *service.WaitResult
		err error
	}
	got := make(chan result, 1)
	parked := wakes.parked
	go func() {
		res, err := e.fe.WaitForTasks(context.Background(), &service.WaitRequest{TaskIDs: []string{a.TaskID}, Timeout: time.Minute}, nil)
		got <- result{res, err}
	}()

	<-parked // the wait has read the task unfinished
	task, err := other.GetTask(context.Background(), a.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	task.Status.Phase, task.Status.ObservedGeneration = models.TaskPhaseFailed, task.Generation
	if err := other.UpdateTaskStatus(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	// No controller runs here: the wait notices the other store's commit
	// through the data version by itself.
	r := <-got
	if r.err != nil || !r.res.AllFinished || r.res.TimedOut {
		t.Fatalf("wait: %+v, %v", r.res, r.err)
	}
	if w := wakes.list(); len(w) < 2 || w[0] != service.WaitParked || w[len(w)-1] != service.WakeChange || slices.Contains(w, service.WakePoll) {
		t.Fatalf("wake-ups %v: want parked, then woken by a change and never by the poll", w)
	}
}
