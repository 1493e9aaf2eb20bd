package models

import "slices"

// Lifecycle predicates. The front ends (what they show, what they accept) and
// the controllers (what they do next) must agree on when a task is finished,
// when it takes another run and when a diff still waits for a decision, so
// each rule is written here once and both sides call it.

// WantsFollowUp reports whether the task must start another run: a revision
// or an answer asked for one after a run that ended, whatever that run's
// outcome (a failed or timed-out run often leaves partial work worth
// revising). A cancelled task never runs again, and a task that never started
// a run (its dependency failed, its spec cannot run) has nothing to follow up.
func (t *Task) WantsFollowUp() bool {
	return t.Status.Phase.Terminal() && t.Status.Phase != TaskPhaseCancelled &&
		t.Status.RunNumber >= 1 && t.Spec.DesiredRuns > t.Status.RunNumber &&
		t.Spec.DesiredState != TaskDesiredCancel
}

// Finished reports whether the task has stopped and will not run again as
// things stand: its phase is terminal and no run it would still start is
// asked for. A task that can never run (DependencyFailed before its first
// run) is finished whatever its run count. Status.Finished, the stored
// column, only says that the current run ended.
func (t *Task) Finished() bool {
	return t.Status.Phase.Terminal() && !t.WantsFollowUp()
}

// Settled reports whether the task controller has nothing left to do with
// the task: it is finished and its current spec was observed.
func (t *Task) Settled() bool {
	return t.Finished() && t.Generation == t.Status.ObservedGeneration
}

// FollowUpBlock says why a task cannot take another run (a revision or an
// answer) now; FollowUpReady when it can.
type FollowUpBlock int

// Why a follow-up is refused.
const (
	FollowUpReady     FollowUpBlock = iota
	FollowUpCancelled               // cancellation was asked for, or the task ended cancelled
	FollowUpRunning                 // the current run has not ended
	FollowUpNeverRan                // the task ended before any run started
	FollowUpRequested               // a run asked for earlier has not finished yet
)

// FollowUpBlock tells whether the task can take another run now. Asking for
// one on a task that is FollowUpReady (DesiredRuns = RunNumber+1) makes
// WantsFollowUp true, so the controller starts it.
func (t *Task) FollowUpBlock() FollowUpBlock {
	switch {
	case t.Spec.DesiredState == TaskDesiredCancel || t.Status.Phase == TaskPhaseCancelled:
		return FollowUpCancelled
	case !t.Status.Phase.Terminal():
		return FollowUpRunning
	case t.Status.RunNumber < 1:
		return FollowUpNeverRan
	case t.Spec.DesiredRuns > t.Status.RunNumber:
		return FollowUpRequested
	}
	return FollowUpReady
}

// ApplyAnswered reports whether the apply the spec asks for has had its
// answer: the diff controller observed the spec's generation and did not end
// Applying or Applied, so the apply met a conflict (phase Conflict, or Pending
// after a later re-check) or failed for good. Such an apply request is over:
// nothing applies the diff until a new request (a new generation) comes.
func (d *Diff) ApplyAnswered() bool {
	if d.Spec.Desired != DiffDesiredApplied || d.Status.ObservedGeneration != d.Generation {
		return false
	}
	switch d.Status.Phase {
	case DiffPhasePending, DiffPhaseConflict, DiffPhaseFailed:
		return true
	}
	return false
}

// Decision is the decision in force on the diff: its spec's, except that an
// apply that met a conflict ended that apply request, so the diff is again
// waiting for a decision (DiffDesiredPending), with its conflict named in
// its status. The target watch may then refresh its verdict; only a new
// apply request applies it.
func (d *Diff) Decision() DiffDesired {
	if d.ApplyEndedByConflict() {
		return DiffDesiredPending
	}
	return d.Spec.Desired
}

// ApplyEndedByConflict reports whether the apply request the spec holds met
// a conflict, which ended it: the spec still says applied, the decision in
// force is pending again. The front end writes desired pending over such a
// request before a new one, so the new one is a generation of its own.
func (d *Diff) ApplyEndedByConflict() bool {
	return d.ApplyAnswered() && d.Status.Phase != DiffPhaseFailed
}

// DiffAwaitingStates are the external states of a diff that may be waiting
// for a decision (pending, conflict), for queries; AwaitingDecision tells
// each diff apart.
func DiffAwaitingStates() []DiffState {
	return []DiffState{DiffStatePending, DiffStateConflict}
}

// AwaitingDecision reports whether nobody has decided on the diff yet, or the
// apply asked for met a conflict (which ended that request): it can be
// applied, revised or rejected, and its verdict against its target is kept
// fresh.
func (d *Diff) AwaitingDecision() bool {
	return slices.Contains(DiffAwaitingStates(), d.Status.State) && d.Decision() == DiffDesiredPending
}
