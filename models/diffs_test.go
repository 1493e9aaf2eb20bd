package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
)

func newDiff(taskID string, run int) *Diff {
	return &Diff{
		TaskID: taskID, RunNumber: run, BaseCommit: "aaa", ResultCommit: "bbb",
		FilesChanged: 2, Additions: 3, Deletions: 1,
		Files: JSONList[DiffFile]{
			{Path: "a.txt", Status: FileModified, Additions: 3, Deletions: 1},
			{Path: "img.png", OldPath: "old.png", Status: FileRenamed, Binary: true},
		},
		Patch: []byte("diff --git a/a.txt b/a.txt\n\x00binary\n"),
	}
}

// Capturing the same run twice yields one row: the second call returns the first diff.
func TestCreateDiff_IdempotentOnTaskRun(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))
	first, created, err := s.CreateDiff(ctx, newDiff(task.ID, 1))
	if err != nil || !created {
		t.Fatalf("first capture: created=%v err=%v", created, err)
	}
	sum := sha256.Sum256(first.Patch)
	if first.PatchSHA256 != hex.EncodeToString(sum[:]) || first.PatchSize != int64(len(first.Patch)) {
		t.Fatalf("patch digest/size not computed: %s %d", first.PatchSHA256, first.PatchSize)
	}
	if first.Spec.Desired != DiffDesiredPending || first.Spec.ApplyMode != ApplyModeWorktree || first.Status.State != DiffStatePending {
		t.Fatalf("defaults: %+v %+v", first.Spec, first.Status)
	}

	second, created, err := s.CreateDiff(ctx, newDiff(task.ID, 1))
	if err != nil {
		t.Fatal(err)
	}
	if created || second.ID != first.ID {
		t.Fatalf("second capture: created=%v id=%s, want the first diff %s", created, second.ID, first.ID)
	}
	if _, created, err := s.CreateDiff(ctx, newDiff(task.ID, 2)); err != nil || !created {
		t.Fatalf("next run: created=%v err=%v", created, err)
	}
	all, err := s.ListDiffs(ctx, DiffFilter{TaskID: task.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("%d diffs, want 2", len(all))
	}

	got, err := s.GetDiff(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Patch) != string(first.Patch) || len(got.Files) != 2 || got.Files[1] != first.Files[1] {
		t.Fatalf("stored diff differs: %+v", got)
	}
}

func TestCreateDiff_UnknownTaskIsNotFound(t *testing.T) {
	s := newTestStore(t)
	if _, _, err := s.CreateDiff(context.Background(), newDiff("task-000000000000", 1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.CreateDiff(context.Background(), newDiff("task-000000000000", 0)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("run 0: err = %v, want ErrInvalid", err)
	}
}

func TestDiff_SpecStatusLiveAndList(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))
	d, _, err := s.CreateDiff(ctx, newDiff(task.ID, 1))
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := s.CreateDiff(ctx, newDiff(task.ID, 2))
	if err != nil {
		t.Fatal(err)
	}
	// The controller observes both new diffs (a conflict check), so neither is live.
	for _, x := range []*Diff{d, other} {
		x.Status.ObservedGeneration = x.Generation
		if err := s.UpdateDiffStatus(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if ids, _ := s.ListLiveDiffIDs(ctx); len(ids) != 0 {
		t.Fatalf("live diffs %v, want none", ids)
	}

	stale := *d
	applied, err := s.UpdateDiffSpec(ctx, d.ID, func(d *Diff) error {
		d.Spec.Desired, d.Spec.ApplyMode, d.Spec.TargetWorkspace = DiffDesiredApplied, ApplyModeBranch, "/target"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if applied.Generation != 2 || applied.Patch != nil {
		t.Fatalf("spec update: generation %d, patch loaded=%v", applied.Generation, applied.Patch != nil)
	}
	if ids, _ := s.ListLiveDiffIDs(ctx); !slices.Equal(ids, []string{d.ID}) {
		t.Fatalf("live diffs %v, want [%s]", ids, d.ID)
	}
	stale.Status.Phase = DiffPhaseConflict
	if err := s.UpdateDiffStatus(ctx, &stale); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale diff status write: err = %v, want ErrConflict", err)
	}

	applied.Status.Phase = DiffPhaseApplied
	applied.Status.AppliedTo, applied.Status.Branch = "/target", "claude-parallel/"+task.ID
	applied.Status.ObservedGeneration = applied.Generation
	if err := s.UpdateDiffStatus(ctx, applied); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.ListLiveDiffIDs(ctx); len(ids) != 0 {
		t.Fatalf("live diffs after apply %v, want none", ids)
	}
	got, _ := s.GetDiff(ctx, d.ID)
	if got.Status.State != DiffStateApplied || got.Spec.TargetWorkspace != "/target" || len(got.Patch) == 0 {
		t.Fatalf("stored diff: %+v %+v patch %d bytes", got.Spec, got.Status, len(got.Patch))
	}

	list, err := s.ListDiffs(ctx, DiffFilter{States: []DiffState{DiffStatePending}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != other.ID || list[0].Patch != nil {
		t.Fatalf("pending diffs: %d, patch loaded=%v", len(list), len(list) > 0 && list[0].Patch != nil)
	}
	withPatch, _ := s.ListDiffs(ctx, DiffFilter{TargetWorkspace: "/target", WithPatch: true})
	if len(withPatch) != 1 || len(withPatch[0].Patch) == 0 {
		t.Fatalf("target filter with patch: %+v", withPatch)
	}
	counts, _ := s.CountDiffsByStatus(ctx)
	if counts[DiffStateApplied] != 1 || counts[DiffStatePending] != 1 {
		t.Fatalf("counts %v", counts)
	}

	if err := s.DeleteDiff(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDiff(ctx, d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted diff: err = %v", err)
	}
}

// A diff's status write carries its timeline, lines about its task included,
// in one transaction; a write refused as a conflict records none of them.
func TestUpdateDiffStatus_TimelineCommitsWithTheStatus(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	task := mustCreateTask(t, s, newTask("p"))
	d, _, err := s.CreateDiff(ctx, newDiff(task.ID, 1))
	if err != nil {
		t.Fatal(err)
	}
	stale := *d
	d.Status.Phase = DiffPhaseApplied
	err = s.UpdateDiffStatus(ctx, d,
		TimelineEntry{Reason: "Applied", Message: "applied to /repo"},
		TimelineEntry{Reason: "DiffApplied", Message: "its diff was applied", Kind: EventKindTask, ObjectID: task.ID})
	if err != nil {
		t.Fatal(err)
	}
	stale.Status.Phase = DiffPhaseRejected
	if err := s.UpdateDiffStatus(ctx, &stale, TimelineEntry{Reason: "Rejected", Message: "from a stale read"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	if got := eventReasons(t, s, EventKindDiff, d.ID); !slices.Equal(got, []string{"Applied"}) {
		t.Fatalf("diff events %v, want [Applied]", got)
	}
	if got := eventReasons(t, s, EventKindTask, task.ID); !slices.Contains(got, "DiffApplied") || slices.Contains(got, "Rejected") {
		t.Fatalf("task events %v, want DiffApplied on the task's timeline", got)
	}
}
