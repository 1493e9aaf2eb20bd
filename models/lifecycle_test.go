package models

import "testing"

func TestTaskLifecyclePredicates(t *testing.T) {
	mk := func(phase TaskPhase, run, desired int, cancel bool) *Task {
		t := &Task{Generation: 3}
		t.Status.Phase, t.Status.RunNumber, t.Spec.DesiredRuns = phase, run, desired
		t.Status.ObservedGeneration = 3
		t.Spec.DesiredState = TaskDesiredRun
		if cancel {
			t.Spec.DesiredState = TaskDesiredCancel
		}
		return t
	}
	cases := []struct {
		name                     string
		t                        *Task
		follow, finished, settle bool
		block                    FollowUpBlock
	}{
		{"pending first run", mk(TaskPhasePending, 0, 1, false), false, false, false, FollowUpRunning},
		{"running", mk(TaskPhaseRunning, 1, 1, false), false, false, false, FollowUpRunning},
		{"succeeded", mk(TaskPhaseSucceeded, 1, 1, false), false, true, true, FollowUpReady},
		{"failed run", mk(TaskPhaseFailed, 1, 1, false), false, true, true, FollowUpReady},
		{"timed out run", mk(TaskPhaseTimedOut, 1, 1, false), false, true, true, FollowUpReady},
		{"succeeded, revision asked", mk(TaskPhaseSucceeded, 1, 2, false), true, false, false, FollowUpRequested},
		{"failed, revision asked", mk(TaskPhaseFailed, 1, 2, false), true, false, false, FollowUpRequested},
		{"timed out, revision asked", mk(TaskPhaseTimedOut, 1, 2, false), true, false, false, FollowUpRequested},
		// A dependency failed before the first run: it can never run.
		{"failed before the first run", mk(TaskPhaseFailed, 0, 1, false), false, true, true, FollowUpNeverRan},
		{"cancelled", mk(TaskPhaseCancelled, 1, 1, true), false, true, true, FollowUpCancelled},
		{"cancel asked after a revision", mk(TaskPhaseSucceeded, 1, 2, true), false, true, true, FollowUpCancelled},
	}
	for _, c := range cases {
		if got := c.t.WantsFollowUp(); got != c.follow {
			t.Errorf("%s: WantsFollowUp = %v, want %v", c.name, got, c.follow)
		}
		if got := c.t.Finished(); got != c.finished {
			t.Errorf("%s: Finished = %v, want %v", c.name, got, c.finished)
		}
		if got := c.t.Settled(); got != c.settle {
			t.Errorf("%s: Settled = %v, want %v", c.name, got, c.settle)
		}
		c.t.Generation++
		if c.t.Settled() {
			t.Errorf("%s: Settled with a spec change not observed", c.name)
		}
		if got := c.t.FollowUpBlock(); got != c.block {
			t.Errorf("%s: FollowUpBlock = %v, want %v", c.name, got, c.block)
		}
		// What the front end accepts, the controller carries out: a run
		// asked on a ready task is wanted, and the task is no longer finished.
		if c.block == FollowUpReady {
			c.t.Spec.DesiredRuns = c.t.Status.RunNumber + 1
			if !c.t.WantsFollowUp() || c.t.Finished() {
				t.Errorf("%s: a follow-up the front end accepts is not wanted by the controller", c.name)
			}
		}
	}
}

func TestDiffDecision(t *testing.T) {
	mk := func(desired DiffDesired, phase DiffPhase, observed bool) *Diff {
		d := &Diff{Generation: 2, Spec: DiffSpec{Desired: desired},
			Status: DiffStatus{Phase: phase, State: DiffStateFor(phase), ObservedGeneration: 1}}
		if observed {
			d.Status.ObservedGeneration = 2
		}
		return d
	}
	cases := []struct {
		name     string
		d        *Diff
		answered bool
		decision DiffDesired
		awaiting bool
	}{
		{"pending", mk(DiffDesiredPending, DiffPhasePending, true), false, DiffDesiredPending, true},
		{"apply asked, not yet seen", mk(DiffDesiredApplied, DiffPhasePending, false), false, DiffDesiredApplied, false},
		{"apply asked while in conflict, not yet seen", mk(DiffDesiredApplied, DiffPhaseConflict, false), false, DiffDesiredApplied, false},
		{"applying", mk(DiffDesiredApplied, DiffPhaseApplying, true), false, DiffDesiredApplied, false},
		{"applied", mk(DiffDesiredApplied, DiffPhaseApplied, true), false, DiffDesiredApplied, false},
		// The apply met a conflict: the request is over, the diff waits again.
		{"apply met a conflict", mk(DiffDesiredApplied, DiffPhaseConflict, true), true, DiffDesiredPending, true},
		{"apply met a conflict, target since fixed", mk(DiffDesiredApplied, DiffPhasePending, true), true, DiffDesiredPending, true},
		{"apply failed for good", mk(DiffDesiredApplied, DiffPhaseFailed, true), true, DiffDesiredApplied, false},
		{"apply failed, retrying", mk(DiffDesiredApplied, DiffPhaseFailed, false), false, DiffDesiredApplied, false},
		{"rejected", mk(DiffDesiredRejected, DiffPhaseRejected, true), false, DiffDesiredRejected, false},
	}
	for _, c := range cases {
		if got := c.d.ApplyAnswered(); got != c.answered {
			t.Errorf("%s: ApplyAnswered = %v, want %v", c.name, got, c.answered)
		}
		if got := c.d.Decision(); got != c.decision {
			t.Errorf("%s: Decision = %v, want %v", c.name, got, c.decision)
		}
		if got := c.d.AwaitingDecision(); got != c.awaiting {
			t.Errorf("%s: AwaitingDecision = %v, want %v", c.name, got, c.awaiting)
		}
	}
}
