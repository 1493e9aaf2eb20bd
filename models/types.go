package models

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"slices"
)

// TaskPhase is where a task is in its lifecycle, as the task controller sees it.
type TaskPhase string

// Task phases. Succeeded, Failed, Cancelled and TimedOut are terminal.
const (
	TaskPhasePending    TaskPhase = "Pending"    // accepted, waiting for admission (parallelism, dependencies)
	TaskPhasePreparing  TaskPhase = "Preparing"  // workspace and container being set up
	TaskPhaseRunning    TaskPhase = "Running"    // container running
	TaskPhaseCollecting TaskPhase = "Collecting" // container exited, diff being captured
	TaskPhaseSucceeded  TaskPhase = "Succeeded"
	TaskPhaseFailed     TaskPhase = "Failed"
	TaskPhaseCancelled  TaskPhase = "Cancelled"
	TaskPhaseTimedOut   TaskPhase = "TimedOut"
)

// Valid reports whether p is one of the known phases.
func (p TaskPhase) Valid() bool {
	switch p {
	case TaskPhasePending, TaskPhasePreparing, TaskPhaseRunning, TaskPhaseCollecting,
		TaskPhaseSucceeded, TaskPhaseFailed, TaskPhaseCancelled, TaskPhaseTimedOut:
		return true
	}
	return false
}

// Terminal reports whether a task in phase p has finished its current run.
func (p TaskPhase) Terminal() bool {
	switch p {
	case TaskPhaseSucceeded, TaskPhaseFailed, TaskPhaseCancelled, TaskPhaseTimedOut:
		return true
	}
	return false
}

// TaskState is the external status of a task, the one users and operators see
// (column background_tasks.status, kept from the original server).
type TaskState string

// External task statuses.
const (
	TaskStatePending    TaskState = "pending"
	TaskStateRunning    TaskState = "running"
	TaskStateCompleted  TaskState = "completed"
	TaskStateFailed     TaskState = "failed"
	TaskStateCancelled  TaskState = "cancelled"
	TaskStateTimedOut   TaskState = "timed_out"
	TaskStateNeedsInput TaskState = "needs_input"
)

// TaskStates lists every external task status, in lifecycle order.
func TaskStates() []TaskState {
	return []TaskState{TaskStatePending, TaskStateRunning, TaskStateCompleted, TaskStateFailed,
		TaskStateCancelled, TaskStateTimedOut, TaskStateNeedsInput}
}

// Valid reports whether s is one of the known external statuses.
func (s TaskState) Valid() bool { return slices.Contains(TaskStates(), s) }

// TaskStateFor maps a phase to the external status. A run that succeeded while
// leaving a question for the user is needs_input. The store applies it on every
// status write, so State can never disagree with Phase.
func TaskStateFor(phase TaskPhase, pendingQuestion string) TaskState {
	switch phase {
	case TaskPhasePreparing, TaskPhaseRunning, TaskPhaseCollecting:
		return TaskStateRunning
	case TaskPhaseSucceeded:
		if pendingQuestion != "" {
			return TaskStateNeedsInput
		}
		return TaskStateCompleted
	case TaskPhaseFailed:
		return TaskStateFailed
	case TaskPhaseCancelled:
		return TaskStateCancelled
	case TaskPhaseTimedOut:
		return TaskStateTimedOut
	default:
		return TaskStatePending
	}
}

// Priority orders admission of pending tasks.
type Priority string

// Task priorities.
const (
	PriorityHigh   Priority = "high"
	PriorityMedium Priority = "medium"
	PriorityLow    Priority = "low"
)

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool { return p == PriorityHigh || p == PriorityMedium || p == PriorityLow }

// Rank is the sort key stored in priority_rank: lower ranks are admitted first.
func (p Priority) Rank() int {
	switch p {
	case PriorityHigh:
		return 0
	case PriorityLow:
		return 2
	default:
		return 1
	}
}

// TaskDesiredState is what the front end wants done with a task.
type TaskDesiredState string

// Desired task states.
const (
	TaskDesiredRun    TaskDesiredState = "run"
	TaskDesiredCancel TaskDesiredState = "cancel"
)

// Valid reports whether d is a known desired state.
func (d TaskDesiredState) Valid() bool { return d == TaskDesiredRun || d == TaskDesiredCancel }

// FollowUpKind says what the follow-up text of the newest requested run is.
type FollowUpKind string

// Follow-up kinds. Empty means the newest run is the first one.
const (
	FollowUpNone     FollowUpKind = ""
	FollowUpRevision FollowUpKind = "revision" // feedback on a diff (request_revision)
	FollowUpAnswer   FollowUpKind = "answer"   // answer to a pending question (answer_worker_question)
)

// Valid reports whether k is a known follow-up kind.
func (k FollowUpKind) Valid() bool {
	return k == FollowUpNone || k == FollowUpRevision || k == FollowUpAnswer
}

// DiffPhase is where a diff is in its review lifecycle, as the diff controller sees it.
type DiffPhase string

// Diff phases.
const (
	DiffPhasePending    DiffPhase = "Pending"    // captured, waiting for a decision
	DiffPhaseApplying   DiffPhase = "Applying"   // apply in progress
	DiffPhaseApplied    DiffPhase = "Applied"    // applied to its target
	DiffPhaseRejected   DiffPhase = "Rejected"   // rejected by a user or by retention
	DiffPhaseConflict   DiffPhase = "Conflict"   // no longer applies to its target
	DiffPhaseFailed     DiffPhase = "Failed"     // could not be captured or applied
	DiffPhaseSuperseded DiffPhase = "Superseded" // replaced by the diff of a newer run
)

// Valid reports whether p is one of the known phases.
func (p DiffPhase) Valid() bool {
	switch p {
	case DiffPhasePending, DiffPhaseApplying, DiffPhaseApplied, DiffPhaseRejected,
		DiffPhaseConflict, DiffPhaseFailed, DiffPhaseSuperseded:
		return true
	}
	return false
}

// DiffState is the external status of a diff (column git_diffs.status, kept
// from the original server).
type DiffState string

// External diff statuses.
const (
	DiffStatePending    DiffState = "pending"
	DiffStateApplying   DiffState = "applying"
	DiffStateApplied    DiffState = "applied"
	DiffStateRejected   DiffState = "rejected"
	DiffStateConflict   DiffState = "conflict"
	DiffStateFailed     DiffState = "failed"
	DiffStateSuperseded DiffState = "superseded"
)

// DiffStates lists every external diff status.
func DiffStates() []DiffState {
	return []DiffState{DiffStatePending, DiffStateApplying, DiffStateApplied, DiffStateRejected,
		DiffStateConflict, DiffStateFailed, DiffStateSuperseded}
}

// Valid reports whether s is one of the known external statuses.
func (s DiffState) Valid() bool { return slices.Contains(DiffStates(), s) }

// DiffStateFor maps a diff phase to its external status; the store applies it
// on every status write.
func DiffStateFor(phase DiffPhase) DiffState {
	switch phase {
	case DiffPhaseApplying:
		return DiffStateApplying
	case DiffPhaseApplied:
		return DiffStateApplied
	case DiffPhaseRejected:
		return DiffStateRejected
	case DiffPhaseConflict:
		return DiffStateConflict
	case DiffPhaseFailed:
		return DiffStateFailed
	case DiffPhaseSuperseded:
		return DiffStateSuperseded
	default:
		return DiffStatePending
	}
}

// DiffDesired is the decision a front end asked for on a diff.
type DiffDesired string

// Desired diff outcomes.
const (
	DiffDesiredPending  DiffDesired = "pending"
	DiffDesiredApplied  DiffDesired = "applied"
	DiffDesiredRejected DiffDesired = "rejected"
)

// Valid reports whether d is a known desired outcome.
func (d DiffDesired) Valid() bool {
	return d == DiffDesiredPending || d == DiffDesiredApplied || d == DiffDesiredRejected
}

// ApplyMode is how a diff is applied to its target.
type ApplyMode string

// Apply modes.
const (
	ApplyModeWorktree ApplyMode = "worktree" // patch the target's working tree
	ApplyModeBranch   ApplyMode = "branch"   // create branch claude-parallel/<task id>, working tree untouched
)

// Valid reports whether m is a known apply mode.
func (m ApplyMode) Valid() bool { return m == ApplyModeWorktree || m == ApplyModeBranch }

// Per-file change kinds used in DiffFile.Status.
const (
	FileAdded       = "added"
	FileModified    = "modified"
	FileDeleted     = "deleted"
	FileRenamed     = "renamed"
	FileCopied      = "copied"
	FileModeChanged = "mode_changed"
	FileTypeChanged = "type_changed"
)

// Event kinds: the kind of object an event is about.
const (
	EventKindTask      = "task"
	EventKindDiff      = "diff"
	EventKindContainer = "container"
	EventKindLease     = "lease"
)

// JSONList is a list stored as a JSON array in one text column, so operators
// can still read it with sqlite3. A nil or empty list is stored as "[]".
type JSONList[T any] []T

// Value implements driver.Valuer.
func (l JSONList[T]) Value() (driver.Value, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal([]T(l))
	if err != nil {
		return nil, fmt.Errorf("encode JSON list: %w", err)
	}
	return string(b), nil
}

// Scan implements sql.Scanner.
func (l *JSONList[T]) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*l = nil
		return nil
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("decode JSON list: unsupported column type %T", src)
	}
	if len(b) == 0 {
		*l = nil
		return nil
	}
	var out []T
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("decode JSON list: %w", err)
	}
	if len(out) == 0 {
		out = nil // "[]" and NULL read back the same, so DeepEqual-based change detection is stable
	}
	*l = out
	return nil
}

// GormDataType tells GORM to declare the column as text.
func (JSONList[T]) GormDataType() string { return "text" }
