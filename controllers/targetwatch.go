package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
)

// A diff awaiting a decision carries a verdict — applies, already in the
// target, conflict — that the diff controller reaches by a dry run when the
// diff is created and after every apply to the same repository. Someone
// editing the target by hand, committing or switching branches would leave
// that verdict stale until the next apply; the target watch catches it.
//
// Every intervals.resync it takes a fingerprint of what each such diff's
// verdict depends on — the target's HEAD commit and the size, time, inode
// and mode of every file the diff touches — and asks the diff controller for
// a new dry run of each diff whose fingerprint moved. A fingerprint costs
// one git process per target repository and a stat per file; a dry run costs
// several git processes, so only the diffs whose inputs changed pay for one.
//
// The diff controller stores the fingerprint its dry run was reached on in
// the diff's status (DiffStatus.TargetFingerprint, taken just before the dry
// run), and the watch compares with that: a restarted server, or a new
// leader, re-checks only the diffs whose target moved meanwhile, not every
// diff of history awaiting a decision. In memory the watch keeps only the
// fingerprints it already asked a dry run for and that are not stored yet
// (the dry run has not happened, or could not store its verdict), so that it
// asks once per change, not on every look.
//
// A look takes one page (targetWatchPage diffs, oldest first, through the
// partial index of awaiting diffs) and the next look goes on from there,
// wrapping around at the end: a store holding a hundred thousand diffs nobody
// decided on costs each resync one page, not the whole list, and every diff is
// still looked at once per sweep.

const targetWatchName = "target-watch"

// targetWatch is one term's watch: setup (setup.go) builds one per term,
// its tests build it directly.
type targetWatch struct {
	store      *models.Store
	workspaces Workspaces
	log        *zap.Logger
	notify     func(kind, id string)
	// roots returns the allowed roots in force (nil: no check); a target
	// outside them is fingerprinted as such, never looked into.
	roots func() []string
	// seen is, for the diffs it asked a dry run for whose stored fingerprint
	// still differs, the fingerprint it asked for (empty when every stored
	// fingerprint matches).
	seen map[string]string
	// page is how many diffs a look fingerprints (targetWatchPage when 0);
	// after is where the next look goes on, nil at the start of a sweep;
	// sweep collects the entries of seen met in the sweep under way, which
	// replace seen when it ends (forgetting the diffs decided or re-checked
	// meanwhile).
	page  int
	after *models.Cursor
	sweep map[string]string
	// fingerprinted counts the diffs fingerprinted and folders opened so
	// far: the work of the looks, for the tests that bound it.
	fingerprinted, opened int
}

// targetWatchPage bounds the diffs one look fingerprints.
const targetWatchPage = 200

// targetWatchIdleFactor bounds how far the watch stretches its interval
// while it finds nothing: a target edited by hand under an undecided diff is
// noticed within this many resync intervals (2 minutes by default) when
// nothing else happens, at once after any write; an apply checks the target
// itself whatever the watch saw.
const targetWatchIdleFactor = 4

// lookIdle is one look; idle when it ended a sweep in which no target had
// moved (a look in the middle of a sweep is never idle: the sweep goes on
// at the configured pace).
func (w *targetWatch) lookIdle(ctx context.Context) (idle bool, err error) {
	n, err := w.look(ctx)
	if err != nil {
		return false, err
	}
	if n > 0 {
		w.log.Debug("targets changed under diffs awaiting a decision", zap.Int("diffs", n))
	}
	return n == 0 && w.after == nil, nil
}

// look fingerprints the next page of the diffs awaiting a decision and
// notifies those whose fingerprint changed since the last look at them (or
// that it had not seen). It returns how many it notified.
func (w *targetWatch) look(ctx context.Context) (int, error) {
	page := w.page
	if page <= 0 {
		page = targetWatchPage
	}
	diffs, err := awaitingPage(ctx, w.store, w.after, page)
	if err != nil {
		return 0, err
	}
	heads := map[string]targetHead{} // by target folder, one git process each
	defer func() {
		for _, h := range heads {
			h.close()
		}
	}()
	var roots workspace.Roots
	if w.roots != nil {
		roots = append(workspace.Roots{}, w.roots()...)
	}
	if w.sweep == nil {
		w.sweep = map[string]string{}
	}
	notified := 0
	for _, a := range diffs {
		if a.target == "" {
			continue // the task is gone; retention rejects the diff
		}
		h, ok := heads[a.target]
		if !ok {
			h = readTargetHead(ctx, w.workspaces, a.target, roots)
			heads[a.target] = h
			w.opened++
		}
		if ctx.Err() != nil {
			return notified, ctx.Err()
		}
		fp := diffFingerprint(h, a.diff)
		w.fingerprinted++
		if fp == a.diff.Status.TargetFingerprint {
			continue // the stored verdict was reached on the target as it is
		}
		w.sweep[a.diff.ID] = fp
		if w.seen[a.diff.ID] != fp {
			if w.seen == nil {
				w.seen = map[string]string{}
			}
			w.seen[a.diff.ID] = fp
			w.notify(KindDiff, a.diff.ID)
			notified++
		}
	}
	if len(diffs) < page {
		// The sweep has reached the end: the next look starts over, and
		// the diffs decided since the last sweep are forgotten.
		w.seen, w.sweep, w.after = w.sweep, nil, nil
		return notified, nil
	}
	last := diffs[len(diffs)-1].diff
	w.after = &models.Cursor{Time: last.CreatedAt, ID: last.ID}
	return notified, nil
}

// stampTargetFingerprint records in the diff's status the fingerprint of its
// target as it is now, before the pass's dry run judges it: a change that
// lands during the dry run moves the fingerprint from this one, so the watch
// asks again rather than missing it. An apply that met a conflict is stamped
// after its check instead, so an apply never waits for a fingerprint: only a
// change in the moment between the two goes unnoticed until the next one. A
// diff whose task is gone has no target to fingerprint (the watch skips it
// too).
func (r *diffReconciler) stampTargetFingerprint(ctx context.Context, sc *diffScope) {
	target := r.targetOf(sc)
	if target == "" {
		return
	}
	h := readTargetHead(ctx, r.workspaces, target, r.allowedRoots())
	defer h.close()
	if ctx.Err() != nil {
		return
	}
	sc.diff.Status.TargetFingerprint = diffFingerprint(h, sc.diff)
}

// awaitingPage is one page of the diffs awaiting a decision, oldest first
// after after, with their targets, in two queries.
func awaitingPage(ctx context.Context, store *models.Store, after *models.Cursor, limit int) ([]awaitingDiff, error) {
	return awaitingWithTargets(ctx, store, models.DiffFilter{Awaiting: true, Order: models.DiffsOldestFirst,
		Paged: true, After: after, Limit: limit})
}

// eachAwaitingPage calls fn with every diff awaiting a decision (patches
// left out) with its target, a page of targetWatchPage at a time, oldest
// first, two queries a page: memory stays one page however many diffs
// history left undecided.
func eachAwaitingPage(ctx context.Context, store *models.Store, fn func([]awaitingDiff)) error {
	var after *models.Cursor
	for ctx.Err() == nil {
		diffs, err := awaitingPage(ctx, store, after, targetWatchPage)
		if err != nil {
			return err
		}
		fn(diffs)
		if len(diffs) < targetWatchPage {
			return nil
		}
		last := diffs[len(diffs)-1].diff
		after = &models.Cursor{Time: last.CreatedAt, ID: last.ID}
	}
	return ctx.Err()
}

// targetHead is what one git process says of a target folder, and the
// folder opened once and checked against the allowed roots, through which
// its files are looked at.
type targetHead struct {
	top, head string
	err       string // why the folder is not a usable work tree, "" if it is
	folder    *workspace.WorkFolder
}

func readTargetHead(ctx context.Context, ws Workspaces, folder string, roots workspace.Roots) targetHead {
	wf, err := ws.OpenWorkFolder(ctx, folder, roots)
	if err != nil {
		// The dry run reports the same failure in its own words; what
		// matters here is that the fingerprint moves when it comes or goes.
		return targetHead{err: errorKind(err)}
	}
	return targetHead{top: wf.Top(), head: wf.Head(), folder: wf}
}

func (h targetHead) close() {
	if h.folder != nil {
		h.folder.Close()
	}
}

// errorKind names an error by the sentinel it wraps, so the fingerprint of a
// broken target does not change with every wording of the failure.
func errorKind(err error) string {
	switch {
	case errors.Is(err, workspace.ErrOutsideAllowedRoots):
		return "outside the allowed roots"
	case errors.Is(err, workspace.ErrNotGitWorkTree):
		return "not a work tree"
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case errors.Is(err, fs.ErrPermission):
		return "permission"
	default:
		return "error"
	}
}

// diffFingerprint hashes the target's HEAD and the state on disk of every
// path the diff touches, old paths of renames included.
func diffFingerprint(h targetHead, d *models.Diff) string {
	sum := sha256.New()
	fmt.Fprintf(sum, "head %q %q %q\n", h.top, h.head, h.err)
	if h.top != "" {
		var paths []string
		for _, f := range d.Files {
			paths = append(paths, f.Path)
			if f.OldPath != "" {
				paths = append(paths, f.OldPath)
			}
		}
		slices.Sort(paths)
		for _, p := range slices.Compact(paths) {
			fmt.Fprintf(sum, "%q %s\n", p, fileState(h.folder, p))
		}
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// fileState describes rel below the folder's top as lstat sees it, through
// the folder's checked handle: enough to notice a write, a replacement or a
// removal without reading the file. A path that leaves the top (a name with
// ..) is not looked at.
func fileState(folder *workspace.WorkFolder, rel string) string {
	if !filepath.IsLocal(filepath.FromSlash(rel)) || strings.ContainsRune(rel, 0) {
		return "outside"
	}
	fi, err := folder.Lstat(rel)
	if err != nil {
		return "absent: " + errorKind(err)
	}
	state := fmt.Sprintf("%o %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		state += fmt.Sprintf(" %d %d.%d", st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return state
}
