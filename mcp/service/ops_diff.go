package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

// Bounds of review_changes replies, in JSON-escaped characters: one diff's
// patch (the rest is read with offset, or file by file), and one page of
// the pending list with its patches (the rest is read with cursor). The
// resource patchUri has the whole patch.
const (
	maxPatchInReply     = maxContentChars
	minPatchInReply     = 2_000
	maxPendingListChars = maxContentChars
	maxPendingDiffsShow = 50
)

// ReviewChanges returns one diff (by diffId, or the newest of taskId), or
// every pending diff when neither is given. Pending diffs are read from the
// store, so they survive restarts.
func (f *Frontend) ReviewChanges(ctx context.Context, req *ReviewRequest) (*ReviewResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	if req.DiffID == "" && req.TaskID == "" {
		return f.pendingDiffs(ctx, req)
	}
	diffID := req.DiffID
	if req.TaskID != "" {
		t, err := f.getTask(ctx, "taskId", req.TaskID)
		if err != nil {
			return nil, err
		}
		switch {
		case diffID == "" && t.Status.DiffID == "":
			return nil, &InputError{Arg: "taskId",
				Problem: fmt.Sprintf("task %s has no diff (status %s%s)%s", t.ID, t.Status.State, reasonSuffix(t.Status.Reason),
					messageSuffix(t.Status.Message)),
				Accepted: "a task that finished with changes; wait for it with wait_for_tasks"}
		case diffID == "":
			diffID = t.Status.DiffID
		}
	}
	// The patch (up to max_patch_bytes) is read only when it is shown.
	ds, err := f.d.Store.ListDiffs(ctx, models.DiffFilter{IDs: []string{diffID}, WithPatch: req.ShowContent})
	if err != nil {
		return nil, fmt.Errorf("read diff %s: %w", diffID, err)
	}
	if len(ds) == 0 {
		return nil, noSuchDiff("diffId", diffID)
	}
	d := &ds[0]
	if req.TaskID != "" && d.TaskID != req.TaskID {
		return nil, &InputError{Arg: "taskId", Problem: fmt.Sprintf("diff %s belongs to task %s, not %s", d.ID, d.TaskID, req.TaskID),
			Accepted: "either diffId or taskId, or both naming the same task"}
	}
	t, err := f.d.Store.GetTask(ctx, d.TaskID)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return nil, fmt.Errorf("read task %s: %w", d.TaskID, err)
	}
	v := newDiffView(d, t)
	if req.Detailed {
		events, err := f.d.Store.ListEvents(ctx, models.EventKindDiff, d.ID, eventsShown)
		if err != nil {
			return nil, fmt.Errorf("read events of diff %s: %w", d.ID, err)
		}
		for _, e := range events {
			v.Events = append(v.Events, EventView{Time: e.Time, Reason: e.Reason, Message: e.Message})
		}
	}
	if req.ShowContent {
		// The patch gets what the rest of the view (file list, events) leaves
		// of the bound, and at least a few lines.
		budget := max(maxPatchInReply-jsonSize(v), minPatchInReply)
		if err := v.setPatchPart(d.Patch, req.File, req.Offset, budget); err != nil {
			return nil, err
		}
	}
	return &ReviewResult{Diff: &v, Count: 1, Detailed: req.Detailed, PatchHidden: !req.ShowContent && d.FilesChanged > 0}, nil
}

// setPatchPart shows the part of the patch (or of one file's patch) from
// offset that fits the reply; PatchTruncated and NextOffset say where the
// rest starts (present.go turns them into the call that shows it).
func (v *DiffView) setPatchPart(patch []byte, file string, offset, budget int) error {
	text := strings.ToValidUTF8(string(patch), "\uFFFD")
	if file != "" {
		sec, ok := filePatch(text, file)
		if !ok {
			return &InputError{Arg: "file", Problem: fmt.Sprintf("diff %s changes no file %s", v.DiffID, Quote(file)),
				Accepted: "a path from the diff's file list"}
		}
		text, v.PatchFile = sec, file
	}
	if offset > len(text) {
		return &InputError{Arg: "offset", Problem: fmt.Sprintf("is %d, past the end of the patch (%d bytes)", offset, len(text)),
			Accepted: fmt.Sprintf("0 to %d, the nextOffset of a previous reply", len(text))}
	}
	part, next := chunkAt(text, offset, budget)
	v.Patch, v.PatchOffset = part, offset
	if next >= len(text) {
		return nil
	}
	v.PatchTruncated, v.NextOffset = true, next
	return nil
}

// messageSuffix carries the task's own sentence into a "no diff" answer: for
// a change too large to keep it says where the result is.
func messageSuffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ", reason " + reason
}

// pendingDiffs lists the diffs waiting for a decision, oldest first.
func (f *Frontend) pendingDiffs(ctx context.Context, req *ReviewRequest) (*ReviewResult, error) {
	// A page of the awaiting diffs' index, one row more to know whether
	// another page follows.
	ds, err := f.d.Store.ListDiffs(ctx, models.DiffFilter{
		Awaiting:  true,
		Order:     models.DiffsOldestFirst,
		Paged:     true,
		After:     req.After,
		Limit:     maxPendingDiffsShow + 1,
		WithPatch: req.ShowContent && req.Detailed,
	})
	if err != nil {
		return nil, fmt.Errorf("list pending diffs: %w", err)
	}
	more := len(ds) > maxPendingDiffsShow
	ds = ds[:min(len(ds), maxPendingDiffsShow)]
	tasks, err := f.tasksOf(ctx, ds)
	if err != nil {
		return nil, err
	}
	res := &ReviewResult{Pending: make([]DiffView, 0, len(ds)), Detailed: req.Detailed}
	// The page ends where its JSON would pass the bound; the cursor then
	// names the last diff looked at, so the next page starts after it.
	used, last := 0, -1
	for i := range ds {
		// A diff whose apply or rejection is on its way is decided; one whose
		// apply met a conflict is not (models.Diff.Decision).
		if !ds[i].AwaitingDecision() {
			last = i
			continue
		}
		v := newDiffView(&ds[i], tasks[ds[i].TaskID]) // nil for a task deleted meanwhile
		size := jsonSize(v)
		if used+size > maxPendingListChars && len(res.Pending) > 0 {
			break
		}
		if len(ds[i].Patch) > 0 {
			text := strings.ToValidUTF8(string(ds[i].Patch), "\uFFFD")
			part, end := chunkAt(text, 0, max(maxPendingListChars-used-size, 0))
			if end < len(text) {
				part = part[:strings.LastIndexByte(part, '\n')+1] // whole lines only, possibly none
				v.PatchTruncated = true
			}
			v.Patch = part
			size += jsonLen(part)
		}
		used += size
		res.Pending = append(res.Pending, v)
		last = i
	}
	res.Count = len(res.Pending)
	if last >= 0 && (more || last < len(ds)-1) {
		res.NextCursor = models.Cursor{Time: ds[last].CreatedAt, ID: ds[last].ID}.String()
	}
	return res, nil
}

// jsonSize is the length of v encoded as JSON.
func jsonSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

// tasksOf reads the tasks of diffs in one query, by id.
func (f *Frontend) tasksOf(ctx context.Context, ds []models.Diff) (map[string]*models.Task, error) {
	ids := make([]string, 0, len(ds))
	for i := range ds {
		ids = append(ids, ds[i].TaskID)
	}
	out, err := f.d.Store.TasksByID(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read tasks of the diffs: %w", err)
	}
	return out, nil
}

// ApplyChanges writes the intent to apply a diff, then waits up to wait for
// the diff controller's outcome. A repeated call for an applied diff with
// the same target and mode answers "applied" without writing anything.
func (f *Frontend) ApplyChanges(ctx context.Context, req *ApplyRequest, wait time.Duration, progress ProgressFunc) (*ApplyResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = noProgress
	}
	target := ""
	if req.TargetWorkspace != "" {
		resolved, ierr := resolveRepoDir(ctx, "targetWorkspace", req.TargetWorkspace, f.cfg().AllowedRoots)
		if ierr != nil {
			return nil, ierr
		}
		target = resolved
	}
	d, err := f.getDiff(ctx, "diffId", req.DiffID)
	if err != nil {
		return nil, err
	}
	t, err := f.d.Store.GetTask(ctx, d.TaskID)
	if err != nil {
		return nil, fmt.Errorf("read task %s of diff %s: %w", d.TaskID, d.ID, err)
	}
	res := &ApplyResult{DiffID: d.ID, TaskID: d.TaskID, Target: firstNonEmpty(target, t.Spec.WorkFolder), Mode: string(req.Mode)}
	for _, file := range d.Files {
		res.Files = append(res.Files, file.Path)
	}
	if ierr := applicable(d, t, target, req.Mode); ierr != nil {
		return nil, ierr
	}
	if d.Status.State == models.DiffStateApplied {
		return fillOutcome(res, d), nil
	}
	if !req.Confirm {
		res.Outcome, res.Status, res.Phase = OutcomePreview, string(d.Status.State), string(d.Status.Phase)
		res.Message = fmt.Sprintf("not applied (confirm is false): %d file(s) would change in %s (%s mode); call again with confirm true to apply",
			d.FilesChanged, res.Target, req.Mode)
		return res, nil
	}
	if target == "" {
		// The default target, the task's folder, is checked like an explicit
		// one: it may have been swapped for a symlink since the task was
		// accepted. (The controller checks again when it applies.)
		if _, ierr := resolveRepoDir(ctx, "targetWorkspace", t.Spec.WorkFolder, f.cfg().AllowedRoots); ierr != nil {
			ierr.Problem = "the default target, the task's folder, fails the check: " + ierr.Problem
			return nil, ierr
		}
	}
	if err := f.endAnsweredApply(ctx, d); err != nil {
		return nil, err
	}
	written, err := f.d.Store.UpdateDiffSpec(ctx, d.ID, func(cur *models.Diff) error {
		if ierr := applicable(cur, t, target, req.Mode); ierr != nil {
			return ierr
		}
		cur.Spec.Desired = models.DiffDesiredApplied
		cur.Spec.TargetWorkspace = target
		cur.Spec.ApplyMode = req.Mode
		return nil
	})
	if err != nil {
		if ie := asInputError(err); ie != nil {
			return nil, ie
		}
		return nil, fmt.Errorf("request apply: %w", err)
	}
	f.notify("diff", d.ID)
	return f.awaitApply(ctx, res, written, wait, progress)
}

// endAnsweredApply records, before a new apply request, that the one the
// spec still holds ended in a conflict: it writes desired pending, what
// models.Diff.Decision already reads, so the new request is a spec change of
// its own — a new generation the diff controller carries out — even with the
// same target and mode.
func (f *Frontend) endAnsweredApply(ctx context.Context, d *models.Diff) error {
	if !d.ApplyEndedByConflict() {
		return nil
	}
	_, err := f.d.Store.UpdateDiffSpec(ctx, d.ID, func(cur *models.Diff) error {
		if cur.ApplyEndedByConflict() {
			cur.Spec.Desired = models.DiffDesiredPending
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("end the answered apply request of diff %s: %w", d.ID, err)
	}
	return nil
}

// applicable explains why diff d cannot be applied to target in mode, or
// returns nil. An applied diff is applicable only to where it went (the
// repeated call is answered from its status).
func applicable(d *models.Diff, t *models.Task, target string, mode models.ApplyMode) *InputError {
	bad := func(problem, accepted string) *InputError {
		return &InputError{Arg: "diffId", Problem: problem, Accepted: accepted}
	}
	switch {
	case d.Status.State == models.DiffStateSuperseded:
		return bad(fmt.Sprintf("diff %s was superseded by %s, the diff of a newer run", d.ID, firstNonEmpty(t.Status.DiffID, "a newer diff")),
			"the newest diff of the task")
	case d.Spec.Desired == models.DiffDesiredRejected || d.Status.State == models.DiffStateRejected:
		return bad(fmt.Sprintf("diff %s was rejected", d.ID), "a diff that was not rejected")
	case d.Status.State == models.DiffStateApplied && (d.Spec.TargetWorkspace != target || d.Spec.ApplyMode != mode):
		return bad(fmt.Sprintf("diff %s was already applied to %s (%s mode)", d.ID, firstNonEmpty(d.Status.AppliedTo, d.Spec.TargetWorkspace, t.Spec.WorkFolder), d.Spec.ApplyMode),
			"a pending diff; a diff is applied once")
	case d.Status.State == models.DiffStateFailed && d.Spec.Desired == models.DiffDesiredPending:
		return bad(fmt.Sprintf("diff %s failed: %s", d.ID, firstNonEmpty(d.Status.Message, d.Status.Reason, "no reason recorded")),
			"a diff that was captured successfully")
	}
	return nil
}

// awaitApply polls the diff until the controller has decided on the intent
// written at written's resource version, or the bound passes.
func (f *Frontend) awaitApply(ctx context.Context, res *ApplyResult, written *models.Diff, wait time.Duration, progress ProgressFunc) (*ApplyResult, error) {
	start := time.Now()
	current := written
	lastPhase, lastReport := models.DiffPhase(""), time.Time{}
	timedOut, err := f.pollUntil(ctx, wait, func() (bool, error) {
		ds, err := f.d.Store.ListDiffs(ctx, models.DiffFilter{IDs: []string{written.ID}})
		if err != nil {
			return false, fmt.Errorf("read diff %s: %w", written.ID, err)
		}
		if len(ds) == 0 {
			return false, fmt.Errorf("diff %s disappeared while being applied", written.ID)
		}
		current = &ds[0]
		if current.Status.Phase != lastPhase || time.Since(lastReport) >= progressHeartbeat {
			progress(time.Since(start).Seconds(), wait.Seconds(), "diff is "+string(current.Status.State))
			lastPhase, lastReport = current.Status.Phase, time.Now()
		}
		return applyDecided(current, written), nil
	})
	if err != nil {
		return nil, err
	}
	if timedOut {
		res.Outcome, res.Status, res.Phase = OutcomeInProgress, string(current.Status.State), string(current.Status.Phase)
		res.Message = fmt.Sprintf("apply requested; still %s after %s. Call apply_changes again with the same arguments, or review_changes, to see the outcome",
			current.Status.State, wait.Round(100*time.Millisecond))
		return res, nil
	}
	return fillOutcome(res, current), nil
}

// applyDecided reports whether d's status answers the intent in written: a
// final phase, written by a pass that saw the intent (its observed
// generation, or any status write after the intent's, which the store's
// compare-and-swap orders after it).
func applyDecided(d, written *models.Diff) bool {
	switch d.Status.Phase {
	case models.DiffPhaseApplied, models.DiffPhaseConflict, models.DiffPhaseFailed, models.DiffPhaseRejected, models.DiffPhaseSuperseded:
		return d.Status.ObservedGeneration >= written.Generation || d.ResourceVersion > written.ResourceVersion
	}
	return false
}

// fillOutcome turns a decided diff into the reply.
func fillOutcome(res *ApplyResult, d *models.Diff) *ApplyResult {
	res.Status, res.Phase = string(d.Status.State), string(d.Status.Phase)
	res.Reason = d.Status.Reason
	switch d.Status.Phase {
	case models.DiffPhaseApplied:
		res.Outcome = OutcomeApplied
		res.Target = firstNonEmpty(d.Status.AppliedTo, res.Target)
		res.Branch = d.Status.Branch
		res.Message = fmt.Sprintf("applied to %s", res.Target)
		if res.Branch != "" {
			res.Message += " as branch " + res.Branch
		}
	case models.DiffPhaseConflict:
		res.Outcome = OutcomeConflict
		res.ConflictFiles = d.Status.ConflictFiles
		res.Message = firstNonEmpty(d.Status.Message, "the diff no longer applies to the target") +
			"; NOT applied, and it will not be applied later by itself: resolve the conflict and call apply_changes again, " +
			"ask for a revision with request_revision, or reject it"
	default:
		res.Outcome = OutcomeFailed
		res.Message = firstNonEmpty(d.Status.Message, d.Status.Reason, "the apply failed")
	}
	return res
}

// RejectChanges records the decision to discard a diff.
func (f *Frontend) RejectChanges(ctx context.Context, req *RejectRequest) (*RejectResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	d, err := f.getDiff(ctx, "diffId", req.DiffID)
	if err != nil {
		return nil, err
	}
	res := &RejectResult{DiffID: d.ID, Reason: req.Reason}
	switch {
	case d.Spec.Desired == models.DiffDesiredRejected:
		res.Message = "the diff was already rejected"
		res.Reason = d.Spec.RejectReason
	case d.Status.State == models.DiffStateSuperseded:
		res.Message = "the diff was superseded by a newer run's diff; nothing to reject"
	default:
		if ierr := rejectable(d); ierr != nil {
			return nil, ierr
		}
		d, err = f.d.Store.UpdateDiffSpec(ctx, d.ID, func(cur *models.Diff) error {
			if ierr := rejectable(cur); ierr != nil {
				return ierr
			}
			cur.Spec.Desired = models.DiffDesiredRejected
			cur.Spec.RejectReason = req.Reason
			return nil
		})
		if err != nil {
			if ie := asInputError(err); ie != nil {
				return nil, ie
			}
			return nil, fmt.Errorf("request rejection: %w", err)
		}
		f.notify("diff", d.ID)
		res.Message = "rejected; the change will not be applied"
	}
	res.Status, res.Phase = string(d.Status.State), string(d.Status.Phase)
	return res, nil
}

// rejectable explains why a diff can no longer be rejected, or returns nil.
func rejectable(d *models.Diff) *InputError {
	switch {
	case d.Status.State == models.DiffStateApplied:
		return &InputError{Arg: "diffId", Problem: fmt.Sprintf("diff %s was already applied to %s", d.ID, firstNonEmpty(d.Status.AppliedTo, "its target")),
			Accepted: "a diff that was not applied; revert an applied change in the repository itself"}
	case d.Status.State == models.DiffStateApplying:
		return &InputError{Arg: "diffId", Problem: fmt.Sprintf("diff %s is being applied", d.ID),
			Accepted: "a diff that is not being applied; wait for the apply's outcome"}
	}
	return nil
}
