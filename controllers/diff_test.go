package controllers

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/reconciler"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// The diff controller's tests run it over a real SQLite store in a temporary
// directory and real git repositories; diffs are captured from real
// workspaces (workspace.Prepare, edits in work/, CaptureDiff). Only Docker is
// replaced, by dtContainers, since a captured run's container is only ever
// inspected and removed here.

// dtClock is a settable clock for the store, so tests can seed rows written
// in the past.
type dtClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *dtClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// at makes the store's clock read t (moving with real time) until reset.
func (c *dtClock) at(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = time.Until(t)
}

func (c *dtClock) reset() { c.at(time.Now()) }

// dtContainers is the container engine as the diff reconciler sees it.
type dtContainers struct {
	mu      sync.Mutex
	byName  map[string]engine.ContainerInfo
	removed []string
}

func (c *dtContainers) add(info engine.ContainerInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byName == nil {
		c.byName = map[string]engine.ContainerInfo{}
	}
	c.byName[info.Name] = info
}

func (c *dtContainers) Inspect(_ context.Context, idOrName string) (engine.ContainerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, info := range c.byName {
		if info.Name == idOrName || info.ID == idOrName {
			return info, nil
		}
	}
	return engine.ContainerInfo{}, fmt.Errorf("inspect %s: %w", idOrName, engine.ErrNotFound)
}

func (c *dtContainers) Remove(_ context.Context, id string, _ bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, info := range c.byName {
		if info.ID == id || name == id {
			delete(c.byName, name)
			c.removed = append(c.removed, name)
			return nil
		}
	}
	return fmt.Errorf("remove %s: %w", id, engine.ErrNotFound)
}

// dtEnv is one test's installation: store, paths, fake engine and the diff
// reconciler, whose enqueues are collected in queue.
type dtEnv struct {
	t          *testing.T
	ctx        context.Context
	store      *models.Store
	clock      *dtClock
	paths      config.Paths
	containers *dtContainers
	r          *diffReconciler

	mu    sync.Mutex
	queue []string
}

func newDiffTestEnv(t *testing.T) *dtEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	home := t.TempDir()
	paths := (&config.Config{Home: home, DBPath: filepath.Join(home, "data", "test.db")}).Paths()
	clock := &dtClock{}
	store, err := models.Open(ctx, paths.DBPath, models.Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e := &dtEnv{t: t, ctx: ctx, store: store, clock: clock, paths: paths, containers: &dtContainers{}}
	e.r = &diffReconciler{
		store:      store,
		rt:         e.containers,
		workspaces: hostWorkspaces{},
		paths:      paths,
		storeID:    store.InstallationID(),
		log:        zaptest.NewLogger(t),
		now:        time.Now,
		notify: func(kind, id string) {
			if kind != KindDiff {
				t.Errorf("notify kind %q, want %q", kind, KindDiff)
			}
			e.mu.Lock()
			e.queue = append(e.queue, id)
			e.mu.Unlock()
		},
		step: func(Step, string, int) {},
	}
	return e
}

// dtWrite writes a file of mode 0644, creating its folders.
func dtWrite(t *testing.T, path, content string) {
	t.Helper()
	testutil.WriteFile(t, path, content)
}

// dtEditLine is an edit for newDiff: line of file becomes text.
func dtEditLine(t *testing.T, file string, line int, text string) func(work string) {
	return func(work string) {
		p := filepath.Join(work, file)
		dtWrite(t, p, testutil.ReplaceLine(testutil.ReadFile(t, p), line, text))
	}
}

// newRepo makes a committed repository holding the given files and an empty
// .keep.
func (e *dtEnv) newRepo(files map[string]string) string {
	e.t.Helper()
	withKeep := map[string]string{".keep": ""}
	maps.Copy(withKeep, files)
	dir := testutil.NewRepo(e.t, filepath.Join(e.t.TempDir(), "repo"), withKeep)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return real
}

// newDiff makes a finished task on repo whose run did edit in its work tree,
// captures the change and stores it as a pending diff.
func (e *dtEnv) newDiff(repo string, edit func(work string)) *models.Diff {
	e.t.Helper()
	task, _, err := e.store.CreateTask(e.ctx, &models.Task{Spec: models.TaskSpec{
		Prompt: "edit", WorkFolder: repo, Agent: "shell",
	}})
	if err != nil {
		e.t.Fatalf("create task: %v", err)
	}
	ws, err := workspace.Prepare(e.ctx, workspace.PrepareSpec{
		TaskID: task.ID, WorkFolder: repo, Root: e.paths.WorkspaceDir, UID: -1, GID: -1,
	})
	if err != nil {
		e.t.Fatalf("prepare workspace: %v", err)
	}
	edit(ws.WorkDir)
	d, err := workspaceDiffs{}.CaptureDiff(e.ctx, ws, 1, 0)
	if err != nil {
		e.t.Fatalf("capture diff: %v", err)
	}
	d.TaskID, d.RunNumber = task.ID, 1
	stored, _, err := e.store.CreateDiff(e.ctx, d)
	if err != nil {
		e.t.Fatalf("create diff: %v", err)
	}
	task.Status.Phase = models.TaskPhaseSucceeded
	task.Status.RunNumber = 1
	task.Status.WorkspacePath = ws.Dir
	task.Status.BaseCommit = ws.BaseCommit
	task.Status.DiffID = stored.ID
	task.Status.ObservedGeneration = task.Generation
	if err := e.store.UpdateTaskStatus(e.ctx, task); err != nil {
		e.t.Fatalf("finish task: %v", err)
	}
	return e.diff(stored.ID)
}

func (e *dtEnv) diff(id string) *models.Diff {
	e.t.Helper()
	d, err := e.store.GetDiff(e.ctx, id)
	if err != nil {
		e.t.Fatalf("get diff: %v", err)
	}
	return d
}

func (e *dtEnv) task(id string) *models.Task {
	e.t.Helper()
	t, err := e.store.GetTask(e.ctx, id)
	if err != nil {
		e.t.Fatalf("get task: %v", err)
	}
	return t
}

// decide writes a front end's decision on a diff.
func (e *dtEnv) decide(id string, mutate func(*models.DiffSpec)) {
	e.t.Helper()
	if _, err := e.store.UpdateDiffSpec(e.ctx, id, func(d *models.Diff) error {
		mutate(&d.Spec)
		return nil
	}); err != nil {
		e.t.Fatalf("update diff spec: %v", err)
	}
}

func dtApplyIn(mode models.ApplyMode) func(*models.DiffSpec) {
	return func(s *models.DiffSpec) { s.Desired, s.ApplyMode = models.DiffDesiredApplied, mode }
}

// reconcile runs one pass, as a worker would.
func (e *dtEnv) reconcile(id string) (reconciler.Result, error) {
	return e.r.Reconcile(e.ctx, reconciler.Request{Key: id})
}

// settle reconciles the given diffs and everything they enqueue until no pass
// asks for more, like the controller's queue would. Terminal errors are
// returned by id; any other error fails the test.
func (e *dtEnv) settle(ids ...string) map[string]error {
	e.t.Helper()
	e.mu.Lock()
	e.queue = append(e.queue, ids...)
	e.mu.Unlock()
	terminal := map[string]error{}
	for pass := 0; ; pass++ {
		if pass > 200 {
			e.t.Fatal("diffs did not settle after 200 passes")
		}
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.mu.Unlock()
			return terminal
		}
		id := e.queue[0]
		e.queue = e.queue[1:]
		e.mu.Unlock()
		res, err := e.reconcile(id)
		switch {
		case reconciler.IsTerminal(err):
			terminal[id] = err
		case err != nil:
			e.t.Fatalf("reconcile %s: %v", id, err)
		case res.RequeueAfter > 0:
			e.mu.Lock()
			e.queue = append(e.queue, id)
			e.mu.Unlock()
		}
	}
}

// snapshot is the state of a target repository: every file outside .git
// with its content and mode, HEAD, the branches and `git status`.
func dtSnapshot(t *testing.T, repo string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, p)
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		content := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			content, _ = os.Readlink(p)
		} else if content, err = func() (string, error) { b, err := os.ReadFile(p); return string(b), err }(); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %q\n", rel, info.Mode(), content)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "HEAD %s\n", testutil.Git(t, repo, "rev-parse", "HEAD"))
	fmt.Fprintf(&b, "branches %s\n", testutil.Git(t, repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"))
	fmt.Fprintf(&b, "status %s\n", testutil.Git(t, repo, "status", "--porcelain=v1", "--untracked-files=all"))
	return b.String()
}

// assertAppliedOnce checks that repo holds d's change exactly once: the
// reverse of the patch applies, and no reject or backup file was left.
func dtAssertAppliedOnce(t *testing.T, repo string, d *models.Diff) {
	t.Helper()
	if _, err := testutil.GitErr(repo, d.Patch, "apply", "--reverse", "--check", "-"); err != nil {
		t.Errorf("the change of %s is not (exactly) in %s: %v", d.ID, repo, err)
	}
	_ = filepath.WalkDir(repo, func(p string, de fs.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, ".rej") || strings.HasSuffix(p, ".orig")) {
			t.Errorf("apply left %s behind", p)
		}
		return nil
	})
}

// assertStable reconciles d twice more and checks nothing moves: no status
// write, the target unchanged.
func (e *dtEnv) assertStable(id, repo string) {
	e.t.Helper()
	before, snap := e.diff(id), dtSnapshot(e.t, repo)
	for range 2 {
		if _, err := e.reconcile(id); err != nil && !reconciler.IsTerminal(err) {
			e.t.Fatalf("reconcile again: %v", err)
		}
	}
	after := e.diff(id)
	if after.ResourceVersion != before.ResourceVersion {
		e.t.Errorf("reconciling a settled diff wrote it: resource version %d → %d (status %+v)",
			before.ResourceVersion, after.ResourceVersion, after.Status)
	}
	if got := dtSnapshot(e.t, repo); got != snap {
		e.t.Errorf("reconciling a settled diff changed the target:\nbefore:\n%s\nafter:\n%s", snap, got)
	}
}

func dtEventReasons(t *testing.T, s *models.Store, kind, id string) []string {
	t.Helper()
	evs, err := s.ListEvents(context.Background(), kind, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Reason)
	}
	return out
}

func dtBaseFiles() map[string]string {
	return map[string]string{"a.txt": testutil.Lines("a line", 20), "b.txt": testutil.Lines("b line", 20)}
}

func TestDiffReconcile_AppliesToWorktree(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	var wantA, wantC string
	d := e.newDiff(repo, func(work string) {
		wantA = testutil.ReplaceLine(testutil.ReadFile(t, filepath.Join(work, "a.txt")), 3, "a line three, edited")
		wantC = "new file\n"
		dtWrite(t, filepath.Join(work, "a.txt"), wantA)
		dtWrite(t, filepath.Join(work, "dir", "c.txt"), wantC)
	})
	e.settle(d.ID)
	if got := e.diff(d.ID).Status; got.Phase != models.DiffPhasePending || got.Reason != diffReasonApplies {
		t.Fatalf("new diff: phase %s reason %s (%s), want Pending/Applies", got.Phase, got.Reason, got.Message)
	}

	e.decide(d.ID, dtApplyIn(models.ApplyModeWorktree))
	e.settle(d.ID)
	got := e.diff(d.ID)
	st := got.Status
	if st.Phase != models.DiffPhaseApplied || st.Reason != diffReasonApplied || st.State != models.DiffStateApplied {
		t.Fatalf("phase %s reason %s state %s (%s), want Applied", st.Phase, st.Reason, st.State, st.Message)
	}
	if st.AppliedTo != repo || st.AppliedAt == nil || st.Branch != "" || st.ObservedGeneration != got.Generation {
		t.Errorf("status %+v: want AppliedTo %s, AppliedAt set, no branch, generation %d observed", st, repo, got.Generation)
	}
	if a, c := testutil.ReadFile(t, filepath.Join(repo, "a.txt")), testutil.ReadFile(t, filepath.Join(repo, "dir", "c.txt")); a != wantA || c != wantC {
		t.Errorf("target files differ from the agent's:\na.txt %q\nc.txt %q", a, c)
	}
	if head := testutil.Git(t, repo, "log", "--format=%s", "-1"); head != "initial" {
		t.Errorf("worktree mode committed: HEAD is %q", head)
	}
	dtAssertAppliedOnce(t, repo, got)
	if reasons := dtEventReasons(t, e.store, models.EventKindDiff, d.ID); !slices.Contains(reasons, "Applying") || !slices.Contains(reasons, "Applied") {
		t.Errorf("diff events %v, want Applying and Applied", reasons)
	}
	e.assertStable(d.ID, repo)
	dtAssertAppliedOnce(t, repo, got)
}

func TestDiffReconcile_AppliesAsBranch(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	dtWrite(t, filepath.Join(repo, "b.txt"), "a local edit the branch must not touch\n")
	d := e.newDiff(repo, func(work string) {
		dtWrite(t, filepath.Join(work, "a.txt"), "rewritten\n")
		if err := os.Remove(filepath.Join(work, "b.txt")); err != nil {
			t.Fatal(err)
		}
	})
	before := dtSnapshot(t, repo)

	e.decide(d.ID, dtApplyIn(models.ApplyModeBranch))
	e.settle(d.ID)
	got := e.diff(d.ID)
	st := got.Status
	branch := workspace.BranchName(got.TaskID)
	if st.Phase != models.DiffPhaseApplied || st.Branch != branch || st.AppliedTo != repo {
		t.Fatalf("status %+v, want Applied as branch %s to %s", st, branch, repo)
	}
	if tip := testutil.Git(t, repo, "rev-parse", "refs/heads/"+branch); tip != got.ResultCommit {
		t.Errorf("branch %s at %s, want the result commit %s", branch, tip, got.ResultCommit)
	}
	if tree := testutil.Git(t, repo, "show", branch+":a.txt"); tree != "rewritten" {
		t.Errorf("a.txt on the branch = %q", tree)
	}
	after := dtSnapshot(t, repo)
	wantAfter := strings.Replace(before, "branches refs/heads/main", "branches refs/heads/"+branch+" "+got.ResultCommit+"\nrefs/heads/main", 1)
	if after != wantAfter {
		t.Errorf("branch mode touched the working tree or HEAD:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	e.assertStable(d.ID, repo)
}

// A branch-mode apply whose branch name is already taken in the target is a
// clash of branch names, not of files: it is reported as BranchExists naming
// the branch (it used to read "conflicting files: b.txt"), ends the apply
// request, and a new request after the branch is gone creates it.
func TestDiffReconcile_BranchNameTakenReportsBranchExists(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, dtEditLine(t, "b.txt", 4, "the agent's b four"))
	branch := workspace.BranchName(d.TaskID)
	testutil.Git(t, repo, "branch", branch) // someone's branch of that name, at HEAD
	before := dtSnapshot(t, repo)

	e.decide(d.ID, dtApplyIn(models.ApplyModeBranch))
	e.settle(d.ID)
	got := e.diff(d.ID)
	st := got.Status
	if st.Phase != models.DiffPhaseConflict || st.Reason != diffReasonBranchExists || len(st.ConflictFiles) != 0 ||
		!strings.Contains(st.Message, "branch "+branch+" already exists") || strings.Contains(st.Message, "conflicting files") {
		t.Fatalf("status %+v, want Conflict with reason %s naming branch %s and no conflicting files", st, diffReasonBranchExists, branch)
	}
	if got.Decision() != models.DiffDesiredPending {
		t.Errorf("decision %s after the clash, want pending (the apply request ended)", got.Decision())
	}
	if after := dtSnapshot(t, repo); after != before {
		t.Errorf("the clash changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	e.assertStable(d.ID, repo)

	// The branch is renamed away: a re-check says it applies, applies nothing.
	testutil.Git(t, repo, "branch", "-m", branch, "mine")
	e.settle(d.ID)
	if st := e.diff(d.ID).Status; st.Phase != models.DiffPhasePending || st.Reason != diffReasonApplies {
		t.Fatalf("after the branch was renamed: %+v, want Pending (%s)", st, diffReasonApplies)
	}
	if _, err := testutil.GitErr(repo, nil, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err == nil {
		t.Fatal("the branch was created with no new apply request")
	}
	e.decide(d.ID, func(s *models.DiffSpec) { s.Desired = models.DiffDesiredPending })
	e.decide(d.ID, dtApplyIn(models.ApplyModeBranch))
	e.settle(d.ID)
	if st := e.diff(d.ID).Status; st.Phase != models.DiffPhaseApplied || st.Branch != branch {
		t.Fatalf("after a new request: %+v, want Applied as branch %s", st, branch)
	}
}

// Branch mode needs the run's commit from the task's workspace: once that is
// gone, a dry run says so in the diff's reason, and an apply fails for good
// with the same reason, leaving the target as it was.
func TestDiffReconcile_BranchModeWithoutWorkspace(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, dtEditLine(t, "a.txt", 3, "changed"))
	e.settle(d.ID)
	if err := (&workspace.Workspace{TaskID: d.TaskID, Dir: e.task(d.TaskID).Status.WorkspacePath}).Remove(); err != nil {
		t.Fatal(err)
	}
	before := dtSnapshot(t, repo)

	e.decide(d.ID, func(s *models.DiffSpec) { s.ApplyMode = models.ApplyModeBranch })
	e.settle(d.ID)
	if st := e.diff(d.ID).Status; st.Phase != models.DiffPhasePending || st.Reason != diffReasonWorkspaceGone ||
		!strings.Contains(st.Message, "workspace is gone") {
		t.Fatalf("dry run without the workspace: %+v, want Pending with reason %s", st, diffReasonWorkspaceGone)
	}

	e.decide(d.ID, dtApplyIn(models.ApplyModeBranch))
	terminal := e.settle(d.ID)
	st := e.diff(d.ID).Status
	if st.Phase != models.DiffPhaseFailed || st.Reason != diffReasonWorkspaceGone || terminal[d.ID] == nil {
		t.Fatalf("apply without the workspace: %+v (terminal %v), want Failed, %s, terminal", st, terminal[d.ID], diffReasonWorkspaceGone)
	}
	if after := dtSnapshot(t, repo); after != before {
		t.Errorf("target changed:\n%s\nwant\n%s", after, before)
	}
}

func TestDiffReconcile_ConflictLeavesTargetUntouched(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, func(work string) {
		dtWrite(t, filepath.Join(work, "a.txt"), testutil.ReplaceLine(testutil.Lines("a line", 20), 5, "the agent's line five"))
		dtWrite(t, filepath.Join(work, "b.txt"), testutil.ReplaceLine(testutil.Lines("b line", 20), 5, "the agent's b five"))
	})
	// The user edits the same line meanwhile, without committing.
	dtWrite(t, filepath.Join(repo, "a.txt"), testutil.ReplaceLine(testutil.Lines("a line", 20), 5, "the user's line five"))
	before := dtSnapshot(t, repo)

	e.decide(d.ID, dtApplyIn(models.ApplyModeWorktree))
	e.settle(d.ID)
	got := e.diff(d.ID)
	st := got.Status
	if st.Phase != models.DiffPhaseConflict || st.State != models.DiffStateConflict {
		t.Fatalf("phase %s (%s), want Conflict", st.Phase, st.Message)
	}
	if !slices.Equal([]string(st.ConflictFiles), []string{"a.txt"}) || !strings.Contains(st.Message, "a.txt") {
		t.Errorf("conflict files %v, message %q: want a.txt named", st.ConflictFiles, st.Message)
	}
	if after := dtSnapshot(t, repo); after != before {
		t.Errorf("a conflicting apply changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if st.ObservedGeneration != got.Generation {
		t.Errorf("observed generation %d, want %d", st.ObservedGeneration, got.Generation)
	}
	e.assertStable(d.ID, repo)

	if got.Decision() != models.DiffDesiredPending || !strings.Contains(st.Message, "not applied") {
		t.Errorf("after the conflict: decision %s, message %q: want the diff waiting for a decision, saying it was not applied",
			got.Decision(), st.Message)
	}

	// The conflict ended the apply request: once the user's edit is gone,
	// the target watch and any other hint only refresh the verdict; nothing
	// applies the diff by itself (it used to, seconds after the user was told
	// it was not applied).
	testutil.Git(t, repo, "checkout", "--", "a.txt")
	undone := dtSnapshot(t, repo)
	w := newTargetWatchForTest(e)
	e.look(w)
	e.settle(d.ID)
	e.look(w)
	e.settle(d.ID)
	now := e.diff(d.ID)
	if now.Status.Phase != models.DiffPhasePending || now.Status.Reason != diffReasonApplies || now.Decision() != models.DiffDesiredPending {
		t.Fatalf("after the overlapping edit was undone: phase %s reason %s decision %s (%s), want Pending, %s, still undecided",
			now.Status.Phase, now.Status.Reason, now.Decision(), now.Status.Message, diffReasonApplies)
	}
	if after := dtSnapshot(t, repo); after != undone {
		t.Fatalf("the diff was applied with no new request:\nbefore:\n%s\nafter:\n%s", undone, after)
	}

	// A new request (the front end writes it as a new generation) applies it.
	e.decide(d.ID, func(s *models.DiffSpec) { s.Desired = models.DiffDesiredPending })
	e.decide(d.ID, dtApplyIn(models.ApplyModeWorktree))
	e.settle(d.ID)
	if st := e.diff(d.ID).Status; st.Phase != models.DiffPhaseApplied {
		t.Fatalf("after a new apply request: phase %s (%s), want Applied", st.Phase, st.Message)
	}
	dtAssertAppliedOnce(t, repo, got)
}

func TestDiffReconcile_RecheckAfterApplyMarksOverlappingDiffs(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	a := e.newDiff(repo, dtEditLine(t, "a.txt", 3, "A's line"))
	b := e.newDiff(repo, dtEditLine(t, "a.txt", 3, "B's line")) // overlaps A
	c := e.newDiff(repo, dtEditLine(t, "b.txt", 10, "C's line"))
	e.settle(a.ID, b.ID, c.ID)
	for _, d := range []*models.Diff{a, b, c} {
		if st := e.diff(d.ID).Status; st.Phase != models.DiffPhasePending {
			t.Fatalf("%s before any apply: phase %s (%s), want Pending", d.ID, st.Phase, st.Message)
		}
	}

	e.decide(a.ID, dtApplyIn(models.ApplyModeWorktree))
	e.settle(a.ID)
	if st := e.diff(a.ID).Status; st.Phase != models.DiffPhaseApplied {
		t.Fatalf("A: phase %s (%s), want Applied", st.Phase, st.Message)
	}
	bst := e.diff(b.ID)
	if bst.Status.Phase != models.DiffPhaseConflict || !slices.Equal([]string(bst.Status.ConflictFiles), []string{"a.txt"}) {
		t.Errorf("B after A applied: phase %s files %v (%s), want Conflict on a.txt", bst.Status.Phase, bst.Status.ConflictFiles, bst.Status.Message)
	}
	if bst.Spec.Desired != models.DiffDesiredPending {
		t.Errorf("B's spec changed: desired %s", bst.Spec.Desired)
	}
	if st := e.diff(c.ID).Status; st.Phase != models.DiffPhasePending {
		t.Errorf("C after A applied: phase %s (%s), want Pending", st.Phase, st.Message)
	}
	e.assertStable(b.ID, repo)

	e.decide(c.ID, dtApplyIn(models.ApplyModeWorktree))
	e.settle(c.ID)
	if st := e.diff(c.ID).Status; st.Phase != models.DiffPhaseApplied {
		t.Fatalf("C: phase %s (%s), want Applied", st.Phase, st.Message)
	}
	dtAssertAppliedOnce(t, repo, e.diff(a.ID))
	dtAssertAppliedOnce(t, repo, e.diff(c.ID))

	// The user undoes A by hand: B applies again and goes back to Pending on
	// its next pass.
	p := filepath.Join(repo, "a.txt")
	dtWrite(t, p, testutil.Lines("a line", 20))
	e.settle(b.ID)
	if st := e.diff(b.ID).Status; st.Phase != models.DiffPhasePending || len(st.ConflictFiles) != 0 {
		t.Errorf("B after A was undone: phase %s files %v (%s), want Pending", st.Phase, st.ConflictFiles, st.Message)
	}
}

func TestDiffReconcile_CrashAfterPatchEndsAppliedOnce(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, func(work string) {
		dtWrite(t, filepath.Join(work, "a.txt"), testutil.Lines("a line", 20)+"appended by the agent\n")
	})
	e.decide(d.ID, dtApplyIn(models.ApplyModeWorktree))
	if _, err := e.reconcile(d.ID); err != nil {
		t.Fatal(err)
	}
	if st := e.diff(d.ID).Status; st.Phase != models.DiffPhaseApplying {
		t.Fatalf("first pass: phase %s, want Applying", st.Phase)
	}
	// The process patched the target and died before recording it.
	if _, err := testutil.GitErr(repo, d.Patch, "apply", "-"); err != nil {
		t.Fatal(err)
	}
	e.settle(d.ID)
	st := e.diff(d.ID).Status
	if st.Phase != models.DiffPhaseApplied || st.Reason != diffReasonAlreadyApplied {
		t.Fatalf("after the restart: phase %s reason %s (%s), want Applied/AlreadyApplied", st.Phase, st.Reason, st.Message)
	}
	if got := testutil.ReadFile(t, filepath.Join(repo, "a.txt")); strings.Count(got, "appended by the agent") != 1 {
		t.Errorf("a.txt holds the change %d times:\n%s", strings.Count(got, "appended by the agent"), got)
	}
	dtAssertAppliedOnce(t, repo, d)
}

func TestDiffReconcile_UnsafePatchFailsTerminally(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	good := e.newDiff(repo, func(work string) { dtWrite(t, filepath.Join(work, "x.txt"), "x\n") })
	canary := filepath.Join(filepath.Dir(repo), "escaped.txt")
	hostile := []byte("diff --git a/../escaped.txt b/../escaped.txt\nnew file mode 100644\n" +
		"--- /dev/null\n+++ b/../escaped.txt\n@@ -0,0 +1 @@\n+pwned\n")
	bad, _, err := e.store.CreateDiff(e.ctx, &models.Diff{TaskID: good.TaskID, RunNumber: 2,
		BaseCommit: good.BaseCommit, ResultCommit: good.ResultCommit, FilesChanged: 1, Patch: hostile})
	if err != nil {
		t.Fatal(err)
	}

	for _, desired := range []func(*models.DiffSpec){
		func(*models.DiffSpec) {}, // pending: the re-check refuses it
		dtApplyIn(models.ApplyModeWorktree),
	} {
		e.decide(bad.ID, desired)
		terminal := e.settle(bad.ID)
		st := e.diff(bad.ID).Status
		if st.Phase != models.DiffPhaseFailed || st.Reason != diffReasonUnsafePatch {
			t.Fatalf("hostile diff: phase %s reason %s (%s), want Failed/UnsafePatch", st.Phase, st.Reason, st.Message)
		}
		if !errors.Is(terminal[bad.ID], workspace.ErrUnsafePatch) {
			t.Errorf("hostile diff: error %v, want a terminal one matching ErrUnsafePatch", terminal[bad.ID])
		}
		e.assertStable(bad.ID, repo)
	}
	if _, err := os.Lstat(canary); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a write escaped the target: %s exists", canary)
	}
}

func TestDiffReconcile_RejectRemovesContainerAndWorkspace(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, func(work string) { dtWrite(t, filepath.Join(work, "a.txt"), "changed\n") })
	task := e.task(d.TaskID)
	name := engine.ContainerName(task.ID, 1)
	e.containers.add(engine.ContainerInfo{ID: "c1", Name: name, State: "exited",
		Labels: engine.Labels(e.store.InstallationID(), task.ID, 1)})
	foreign := engine.ContainerName(task.ID, 7)
	e.containers.add(engine.ContainerInfo{ID: "c7", Name: foreign, State: "exited",
		Labels: engine.Labels("another-installation", task.ID, 7)})
	before := dtSnapshot(t, repo)

	e.decide(d.ID, func(s *models.DiffSpec) {
		s.Desired, s.RejectReason = models.DiffDesiredRejected, "not what I asked for"
	})
	e.settle(d.ID)
	got := e.diff(d.ID)
	if st := got.Status; st.Phase != models.DiffPhaseRejected || st.State != models.DiffStateRejected ||
		st.Message != "rejected: not what I asked for" || st.ObservedGeneration != got.Generation {
		t.Fatalf("status %+v, want Rejected with the reason, generation observed", st)
	}
	if _, err := os.Lstat(task.Status.WorkspacePath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("workspace %s still there after the reject", task.Status.WorkspacePath)
	}
	if !slices.Equal(e.containers.removed, []string{name}) {
		t.Errorf("removed containers %v, want only %s", e.containers.removed, name)
	}
	if dtSnapshot(t, repo) != before {
		t.Error("a reject touched the target")
	}
	reasons := dtEventReasons(t, e.store, models.EventKindTask, task.ID)
	if !slices.Contains(reasons, "WorkspaceRemoved") || !slices.Contains(reasons, "ContainerRemoved") {
		t.Errorf("task events %v, want WorkspaceRemoved and ContainerRemoved", reasons)
	}
	nEvents := len(dtEventReasons(t, e.store, "", ""))
	e.assertStable(d.ID, repo)
	if n := len(dtEventReasons(t, e.store, "", "")); n != nEvents {
		t.Errorf("reconciling a settled rejected diff recorded %d more events", n-nEvents)
	}
}

func TestDiffReconcile_RejectKeepsWorkspaceWhileANewerRunIsAsked(t *testing.T) {
	e := newDiffTestEnv(t)
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, func(work string) { dtWrite(t, filepath.Join(work, "a.txt"), "changed\n") })
	if _, err := e.store.UpdateTaskSpec(e.ctx, d.TaskID, func(t *models.Task) error {
		t.Spec.DesiredRuns, t.Spec.FollowUp, t.Spec.FollowUpKind = 2, "try again", models.FollowUpRevision
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.decide(d.ID, func(s *models.DiffSpec) { s.Desired = models.DiffDesiredRejected })
	e.settle(d.ID)
	if st := e.diff(d.ID).Status; st.Phase != models.DiffPhaseRejected {
		t.Fatalf("phase %s, want Rejected", st.Phase)
	}
	if _, err := os.Stat(e.task(d.TaskID).Status.WorkspacePath); err != nil {
		t.Errorf("the workspace a revision needs was removed: %v", err)
	}
}

// TestDiffReconcile_TenInParallelOnOneRepository runs the diff controller
// with several workers on ten diffs of one repository: seven disjoint ones
// and three that edit the same line. Every apply is checked, under the
// target's lock, to have left the target whole (each diff all in or all out).
func TestDiffReconcile_TenInParallelOnOneRepository(t *testing.T) {
	e := newDiffTestEnv(t)
	files := map[string]string{"shared.txt": testutil.Lines("shared line", 30)}
	for i := range 10 {
		files[fmt.Sprintf("f%d.txt", i)] = testutil.Lines(fmt.Sprintf("f%d line", i), 10)
	}
	repo := e.newRepo(files)

	// want[i] maps each file diff i touches to the content it leaves.
	want := make([]map[string]string, 10)
	diffs := make([]*models.Diff, 10)
	for i := range 10 {
		want[i] = map[string]string{}
		own := fmt.Sprintf("f%d.txt", i)
		want[i][own] = testutil.ReplaceLine(files[own], 4, fmt.Sprintf("diff %d was here", i))
		if i >= 7 { // the overlapping ones also rewrite the same shared line
			want[i]["shared.txt"] = testutil.ReplaceLine(files["shared.txt"], 15, fmt.Sprintf("diff %d's shared line", i))
		} else { // the disjoint ones add a file of their own in a new folder too
			want[i][fmt.Sprintf("new%d/n.txt", i)] = fmt.Sprintf("new file of diff %d\n", i)
		}
		diffs[i] = e.newDiff(repo, func(work string) {
			for p, c := range want[i] {
				dtWrite(t, filepath.Join(work, p), c)
			}
		})
	}

	// wholeness: each diff is entirely in the target or entirely out of it.
	var checks sync.Mutex
	checked := 0
	checkWhole := func() {
		checks.Lock()
		defer checks.Unlock()
		checked++
		for i, w := range want {
			in := 0
			for p, c := range w {
				if b, err := os.ReadFile(filepath.Join(repo, p)); err == nil && string(b) == c {
					in++
				}
			}
			if in != 0 && in != len(w) {
				t.Errorf("diff %d is half applied: %d of its %d files in the target", i, in, len(w))
			}
		}
		if _, err := testutil.GitErr(repo, nil, "status", "--porcelain"); err != nil {
			t.Errorf("git status: %v", err)
		}
	}
	e.r.step = func(step Step, _ string, _ int) {
		if step == StepDiffPatched {
			checkWhole() // runs while the apply still holds the target's lock
		}
	}

	ctl, err := reconciler.New("diff-test", e.r, reconciler.Options{Workers: 4, Logger: zaptest.NewLogger(t),
		BaseBackoff: 10 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.r.notify = func(_, id string) { ctl.Enqueue(id) }
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = ctl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for !ctl.Stats().Running {
		time.Sleep(time.Millisecond)
	}

	waitFor := func(what string, ok func(ds []*models.Diff) bool) []*models.Diff {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			var ds []*models.Diff
			for _, d := range diffs {
				ds = append(ds, e.diff(d.ID))
			}
			if ok(ds) {
				return ds
			}
			if time.Now().After(deadline) {
				for _, d := range ds {
					t.Logf("%s desired %s phase %s files %v: %s", d.ID, d.Spec.Desired, d.Status.Phase, d.Status.ConflictFiles, d.Status.Message)
				}
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Round 1: the seven disjoint diffs and one of the overlapping ones are
	// applied at once; the other two are never asked to apply.
	for i := range 8 {
		e.decide(diffs[i].ID, dtApplyIn(models.ApplyModeWorktree))
		ctl.Enqueue(diffs[i].ID)
	}
	ctl.Enqueue(diffs[8].ID)
	ctl.Enqueue(diffs[9].ID)
	ds := waitFor("disjoint diffs applied, overlapping ones in conflict", func(ds []*models.Diff) bool {
		for i, d := range ds {
			switch {
			case i < 8 && d.Status.Phase != models.DiffPhaseApplied:
				return false
			case i >= 8 && (d.Status.Phase != models.DiffPhaseConflict || d.Status.ObservedGeneration != d.Generation):
				return false
			}
		}
		return true
	})
	for i := 8; i < 10; i++ {
		if d := ds[i]; !slices.Equal([]string(d.Status.ConflictFiles), []string{"shared.txt"}) || d.Spec.Desired != models.DiffDesiredPending {
			t.Errorf("diff %d: conflict files %v desired %s, want shared.txt named before any apply was asked", i, d.Status.ConflictFiles, d.Spec.Desired)
		}
	}
	checkWhole()
	for i := range 8 {
		dtAssertAppliedOnce(t, repo, ds[i])
		for p, c := range want[i] {
			if got := testutil.ReadFile(t, filepath.Join(repo, p)); got != c {
				t.Errorf("diff %d: %s = %q, want %q", i, p, got, c)
			}
		}
	}
	status := testutil.Git(t, repo, "status", "--porcelain", "--untracked-files=all")
	if n := len(strings.Split(status, "\n")); n != 8+1+7 { // f0..f7, shared, new0..new6
		t.Errorf("git status lists %d paths, want 16:\n%s", n, status)
	}
	before := dtSnapshot(t, repo)

	// Round 2: the two conflicting diffs are asked to apply anyway, together.
	for i := 8; i < 10; i++ {
		e.decide(diffs[i].ID, dtApplyIn(models.ApplyModeWorktree))
		ctl.Enqueue(diffs[i].ID)
	}
	waitFor("conflicting applies refused", func(ds []*models.Diff) bool {
		for _, d := range ds[8:] {
			if d.Status.Phase != models.DiffPhaseConflict || d.Status.ObservedGeneration != d.Generation {
				return false
			}
		}
		return true
	})
	if after := dtSnapshot(t, repo); after != before {
		t.Errorf("conflicting applies changed the target:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	checks.Lock()
	if checked < 8 {
		t.Errorf("the wholeness check ran %d times, want once per apply (8)", checked)
	}
	checks.Unlock()
}

func TestDiffSettled(t *testing.T) {
	cases := []struct {
		phase    models.DiffPhase
		reason   string
		observed int64
		want     bool
	}{
		{models.DiffPhaseApplied, "", 2, true},
		{models.DiffPhaseRejected, "", 2, true},
		{models.DiffPhaseSuperseded, "", 2, true},
		{models.DiffPhaseFailed, diffReasonUnsafePatch, 2, true},
		{models.DiffPhaseFailed, diffReasonApplyError, 2, false}, // may heal: every hint retries
		{models.DiffPhasePending, "", 2, false},                  // re-checked on every hint
		{models.DiffPhaseConflict, "", 2, false},
		{models.DiffPhaseApplying, "", 2, false},
		{models.DiffPhaseApplied, "", 1, false}, // a spec change to observe
		{models.DiffPhaseRejected, "", 1, false},
	}
	for _, c := range cases {
		d := &models.Diff{Generation: 2, Status: models.DiffStatus{Phase: c.phase, Reason: c.reason, ObservedGeneration: c.observed}}
		if got := diffSettled(d); got != c.want {
			t.Errorf("diffSettled(%s %s observed %d of 2) = %v, want %v", c.phase, c.reason, c.observed, got, c.want)
		}
	}
}

func TestClassifyApplyError(t *testing.T) {
	cases := []struct {
		err      error
		reason   string
		terminal bool
	}{
		{&workspace.UnsafePatchError{Path: "../x", Reason: "outside"}, diffReasonUnsafePatch, true},
		{fmt.Errorf("inspect: %w", workspace.ErrNotGitWorkTree), diffReasonInvalidTarget, true},
		{workspace.ErrBaseNotInTarget, diffReasonBaseNotInTarget, true},
		{workspace.ErrInvalidRef, diffReasonInvalidDiff, true},
		{workspace.ErrInvalidSpec, diffReasonInvalidDiff, true},
		{errors.New("disk full"), diffReasonApplyError, false},
		{context.DeadlineExceeded, diffReasonApplyError, false},
	}
	for _, c := range cases {
		reason, terminal := classifyApplyError(c.err)
		if reason != c.reason || terminal != c.terminal {
			t.Errorf("classifyApplyError(%v) = %s, %v; want %s, %v", c.err, reason, terminal, c.reason, c.terminal)
		}
	}
}

func TestConflictMessage(t *testing.T) {
	many := make([]string, 12)
	for i := range many {
		many[i] = fmt.Sprintf("f%d", i)
	}
	cases := []struct {
		files []string
		why   string
		want  string
	}{
		{[]string{"a.txt"}, "", "does not apply to /r; conflicting files: a.txt"},
		{[]string{"a.txt", "b c.txt"}, "local changes overlap", "does not apply to /r; conflicting files: a.txt, b c.txt (local changes overlap)"},
		{nil, "branch exists", "does not apply to /r (branch exists)"},
		{many, "", "does not apply to /r; conflicting files: f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 and 2 more"},
	}
	for _, c := range cases {
		if got := conflictMessage("/r", c.files, c.why); got != c.want {
			t.Errorf("conflictMessage(%v, %q) = %q, want %q", c.files, c.why, got, c.want)
		}
	}
}

func TestInRepository(t *testing.T) {
	cases := []struct {
		folder, top string
		want        bool
	}{
		{"/r", "/r", true},
		{"/r/sub/dir", "/r", true},
		{"/r2", "/r", false},
		{"/", "/r", false},
		{"/other/r", "/r", false},
		{"/r/../x", "/r", false},
	}
	for _, c := range cases {
		if got := inRepository(filepath.Clean(c.folder), c.top); got != c.want {
			t.Errorf("inRepository(%s, %s) = %v, want %v", c.folder, c.top, got, c.want)
		}
	}
}

func TestWorkspaceDirOf(t *testing.T) {
	paths := config.Paths{WorkspaceDir: "/home/u/.claude-parallel/data/workspaces"}
	id := "task-0123456789ab"
	cases := []struct{ recorded, want string }{
		{"", paths.WorkspaceDir + "/" + id},
		{"/elsewhere/workspaces/" + id, "/elsewhere/workspaces/" + id},
		{"/home/u", paths.WorkspaceDir + "/" + id},        // not named after the task: never trusted
		{"relative/" + id, paths.WorkspaceDir + "/" + id}, // not absolute
	}
	for _, c := range cases {
		task := &models.Task{ID: id, Status: models.TaskStatus{WorkspacePath: c.recorded}}
		if got := workspaceDirOf(paths, task); got != c.want {
			t.Errorf("workspaceDirOf(recorded %q) = %q, want %q", c.recorded, got, c.want)
		}
	}
}

// TestDiffStatus_MessageQuotingASecretIsRedacted: a diff's status message
// and timeline quote the target and git's errors; a secret there (here in
// the target's path) is hidden before the status and its events are written.
func TestDiffStatus_MessageQuotingASecretIsRedacted(t *testing.T) {
	e := newDiffTestEnv(t)
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	secrets, err := redact.New([]redact.Value{{Name: "CP_TEST_SECRET", Value: canary}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.r.secrets = func() *redact.Redactor { return secrets }
	repo := e.newRepo(dtBaseFiles())
	d := e.newDiff(repo, dtEditLine(t, "b.txt", 4, "the agent's b four"))
	target := filepath.Join(t.TempDir(), canary)
	testutil.NewRepo(t, target, map[string]string{"other.txt": "x\n"})
	e.decide(d.ID, func(s *models.DiffSpec) {
		s.Desired, s.ApplyMode, s.TargetWorkspace = models.DiffDesiredApplied, models.ApplyModeWorktree, target
	})
	e.settle(d.ID)
	st := e.diff(d.ID).Status
	if strings.Contains(st.Message, canary) || !strings.Contains(st.Message, "[REDACTED:CP_TEST_SECRET]") {
		t.Fatalf("status message %q: want the target's secret part redacted", st.Message)
	}
	// The spec keeps the target the user named; what the controller wrote
	// (status and both timelines) does not repeat the secret in it.
	for _, obj := range [][2]string{{models.EventKindDiff, d.ID}, {models.EventKindTask, d.TaskID}} {
		events, err := e.store.ListEvents(e.ctx, obj[0], obj[1], 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			if strings.Contains(ev.Message, canary) {
				t.Errorf("%s %s event %s: %q holds the secret", obj[0], obj[1], ev.Reason, ev.Message)
			}
		}
	}
}
