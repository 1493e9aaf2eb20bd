// Package logfollow copies the output of task containers into their run log
// files (the format is models/tasklog's) and keeps each run's execution_logs
// row — size, newest line, completeness and the agent's progress — up to date.
// It depends on two small ports: Engine (inspect a container, read its log
// stream) and Runs (record a run's row). It writes nothing else: a task's
// status belongs to the task controller alone, which reads the run's row.
package logfollow

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/claude-parallel/claude-parallel/config/redact"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/tasklog"
)

// A log follower copies one container's output into the run's log file,
// <TaskLogDir>/<task id>/run-<n>.log, one line per output line:
//
//	<Docker RFC 3339 timestamp> <text>
//
// The file is the follower's only memory. On (re)start it drops a trailing
// partial line (the process died while writing it), reads the lines of the
// last second or so back, and resumes Docker's stream from there through
// engine.LogResume, which skips what is already stored: after a crash, a
// restart or a cut stream the file has no gap and no duplicated line. The
// path and line format are tasklog's. It keeps the run's execution_logs row
// (size, last line time, complete and, for stream-json profiles, the agent's
// progress) up to date, throttled. That row is the follower's alone: it never
// writes the task's status, so it never races the task controller.

// syncEvery bounds how much output a machine crash can lose.
const syncEvery = time.Second

// Engine is what a follower needs of the container engine.
type Engine interface {
	Inspect(ctx context.Context, idOrName string) (engine.ContainerInfo, error)
	Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error)
}

// Runs records a run's execution_logs row (models.Store.UpsertExecutionLog);
// ErrNotFound means the task is gone, which a follower ignores.
type Runs interface {
	RecordRun(ctx context.Context, row *models.ExecutionLog) error
}

// Deps are a Set's dependencies. The funcs are read on every pass, so a
// reloaded configuration applies to running followers.
type Deps struct {
	Engine        Engine
	Runs          Runs
	Redactor      func() *redact.Redactor
	ProgressEvery func() time.Duration // how often progress is written while output flows
	Log           *zap.Logger
}

// runKey names one followed container: a task run.
type runKey struct {
	taskID string
	run    int
}

// Target says what to follow and where to put it.
type Target struct {
	TaskID      string
	Run         int
	ContainerID string
	Path        string
	// TrackTask: the task row exists, so the follower keeps its
	// execution_logs row and output progress (false for an adopted container
	// whose task this store does not have).
	TrackTask  bool
	StreamJSON bool // parse Claude Code stream-json lines into the run's progress
}

// Set is the registry of log followers of one leadership term. A
// finished follower stays registered until forgotten, so the task controller
// can tell "drained" from "never started".
type Set struct {
	deps Deps

	mu     sync.Mutex
	ctx    context.Context // nil while not leading
	cancel context.CancelFunc
	wg     sync.WaitGroup
	m      map[runKey]*Follower
	// retry is closed (and replaced) by RetryNow to cut short the backoff of
	// every follower waiting to retry a failed stream.
	retry chan struct{}
}

// NewSet makes the registry; followers start once Start opens a term.
func NewSet(deps Deps) *Set {
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	return &Set{deps: deps, m: map[runKey]*Follower{}, retry: make(chan struct{})}
}

// RetryNow makes every follower waiting out a backoff try again at once. It
// is called when Docker answers again after an outage (a daemon restart), so
// output resumes within moments instead of after the followers' backoff.
func (fs *Set) RetryNow() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	close(fs.retry)
	fs.retry = make(chan struct{})
}

// retrySignal is the channel the next RetryNow closes.
func (fs *Set) retrySignal() <-chan struct{} {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.retry
}

// Start opens a term: followers may be started until stop.
func (fs *Set) Start(parent context.Context) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.ctx, fs.cancel = context.WithCancel(parent)
}

// Stop ends the term: every follower stops (its file flushed) before it returns.
func (fs *Set) Stop() {
	fs.mu.Lock()
	if fs.cancel != nil {
		fs.cancel()
	}
	fs.ctx, fs.cancel = nil, nil
	fs.mu.Unlock()
	fs.wg.Wait()
	fs.mu.Lock()
	fs.m = map[runKey]*Follower{}
	fs.mu.Unlock()
}

// Ensure returns the follower of t's task run, starting it if there is none.
// It returns nil when this process is not leading.
func (fs *Set) Ensure(t Target) *Follower {
	key := runKey{t.TaskID, t.Run}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.ctx == nil {
		return nil
	}
	// One follower per task run, whatever the caller: two writing the same
	// file would duplicate lines.
	if f, ok := fs.m[key]; ok {
		return f
	}
	f := &Follower{
		set:    fs,
		target: t,
		done:   make(chan struct{}),
		log: fs.deps.Log.With(zap.String("task", t.TaskID), zap.Int("run", t.Run),
			zap.String("container", shortID(t.ContainerID))),
	}
	fs.m[key] = f
	fs.wg.Add(1)
	ctx := fs.ctx
	go func() {
		defer fs.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				f.log.Error("log follower panicked", zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		f.run(ctx)
	}()
	return f
}

// Forget drops a finished task run's follower from the registry (a running
// one keeps running until its container's output ends).
func (fs *Set) Forget(taskID string, run int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.m, runKey{taskID, run})
}

// Active counts followers still copying output.
func (fs *Set) Active() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := 0
	for _, f := range fs.m {
		if !f.finished() {
			n++
		}
	}
	return n
}

// Follower copies one container's output to one file.
type Follower struct {
	set    *Set
	target Target
	log    *zap.Logger
	done   chan struct{} // closed when the follower has returned

	// Owned by the follower's goroutine.
	file         *os.File
	w            *bufio.Writer
	size         int64
	lastTS       time.Time // Docker stamp of the newest line stored
	dirty        bool      // lines written since the last progress write
	lastSync     time.Time
	lastProgress time.Time
	progress     claudeProgress
	progressNew  bool // progress changed since the last row write
	// secrets hides what the agent printed of its secrets before a line
	// reaches the file (and so the store, the responses); set per pass from
	// the configuration in force.
	secrets *redact.Redactor
}

// finished reports whether the follower has returned.
func (f *Follower) finished() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the follower to drain its container's output and
// reports whether it has.
func (f *Follower) Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

// run follows until the container's output has ended (the container exited
// and every line is stored, or it is gone) or ctx ends.
func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	defer f.closeFile()
	backoff := wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: math.MaxInt32, Cap: 5 * time.Second}
	fs := f.set
	for {
		// Taken before the pass, so a retryNow that comes while it fails is
		// not missed.
		retry := fs.retrySignal()
		complete, progressed, err := f.pass(ctx)
		if complete {
			f.complete(ctx)
			return
		}
		if ctx.Err() != nil {
			return
		}
		delay := 100 * time.Millisecond // the stream ended with the container still up: look again
		if err != nil {
			if progressed {
				backoff.Duration = 200 * time.Millisecond
			}
			delay = backoff.Step()
			f.log.Warn("log stream interrupted, resuming", zap.Duration("retryIn", delay), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-retry:
			backoff.Duration = 200 * time.Millisecond
		case <-time.After(delay):
		}
	}
}

// pass reads the stream once, from where the file ends. complete means the
// container's output has ended for good; progressed that lines were stored.
func (f *Follower) pass(ctx context.Context) (complete, progressed bool, err error) {
	f.secrets = f.set.deps.Redactor()
	f.progress.secrets = f.secrets
	if err := f.openFile(); err != nil {
		return false, false, err
	}
	info, err := f.set.deps.Engine.Inspect(ctx, f.target.ContainerID)
	if errors.Is(err, engine.ErrNotFound) {
		return true, false, nil
	}
	if err != nil {
		return false, false, err
	}
	tail, err := f.readTail()
	if err != nil {
		return false, false, err
	}
	resume := engine.NewLogResume(tail)
	// A finished container's log is read to its end without following, which
	// is what makes "the stream ended" mean "every line is here".
	follow := !info.Finished()
	rc, err := f.set.deps.Engine.Logs(ctx, f.target.ContainerID, resume.Since(), follow)
	if errors.Is(err, engine.ErrNotFound) {
		return true, false, nil
	}
	if err != nil {
		return false, false, err
	}
	defer rc.Close()
	n, err := f.copy(ctx, rc, resume)
	progressed = n > 0
	switch {
	case err == nil && !follow:
		return true, progressed, nil
	case err == nil:
		// Following ended: the container stopped (or the engine went away);
		// the next pass inspects it and reads the rest without following.
		return false, progressed, nil
	default:
		return false, progressed, err
	}
}

// streamItem is one read from the log stream.
type streamItem struct {
	line string
	err  error
}

// copy stores the lines of rc that resume keeps, flushing and reporting
// progress on a timer while the stream is idle. It returns nil when the
// stream ended cleanly.
func (f *Follower) copy(ctx context.Context, rc io.ReadCloser, resume *engine.LogResume) (int, error) {
	items := make(chan streamItem, 256)
	go func() {
		defer close(items)
		br := bufio.NewReaderSize(rc, 64<<10)
		for {
			line, err := br.ReadString('\n')
			if line != "" || err != nil {
				select {
				case items <- streamItem{line, err}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(f.set.deps.ProgressEvery())
	defer tick.Stop()
	stored := 0
	for {
		select {
		case <-ctx.Done():
			_ = rc.Close()
			f.flush(ctx, false)
			return stored, ctx.Err()
		case <-tick.C:
			f.flush(ctx, false)
		case it, ok := <-items:
			if !ok {
				return stored, ctx.Err()
			}
			line := it.line
			if it.err != nil && !errors.Is(it.err, io.EOF) {
				// A cut stream may end in the middle of a line: drop the
				// fragment, the next pass reads the line again whole.
				f.flush(ctx, false)
				return stored, it.err
			}
			if line != "" && f.store(line, resume) {
				stored++
			}
			if it.err != nil { // io.EOF: a final line without newline was a whole entry
				f.flush(ctx, false)
				return stored, nil
			}
		}
	}
}

// store appends one stream line to the file if resume keeps it. The line is
// redacted first: the file holds no secret, and resume compares it with
// lines stored redacted. A whole line is redacted at once (ParseLogLine
// joins what Docker cut), and a secret never spans two lines, so no secret
// escapes across a boundary of the stream.
func (f *Follower) store(line string, resume *engine.LogResume) bool {
	raw := strings.TrimSuffix(line, "\n")
	ts, text, ok := engine.ParseLogLine(raw)
	if !ok {
		f.log.Debug("log line without a timestamp skipped")
		return false
	}
	text = f.secrets.String(text)
	if !resume.Keep(ts, text) {
		return false
	}
	stamp, _, _ := strings.Cut(raw, " ")
	n, _ := f.w.WriteString(tasklog.FormatLine(stamp, text))
	f.size += int64(n)
	f.lastTS = ts
	f.dirty = true
	if f.target.StreamJSON && f.progress.Feed(text) {
		f.progressNew = true
	}
	return true
}

// flush writes buffered lines to the file, fsyncs it now and then, and
// writes progress to the store at most every progressEvery (or now, with force).
func (f *Follower) flush(ctx context.Context, force bool) {
	if f.w != nil {
		if err := f.w.Flush(); err != nil {
			f.log.Warn("write task log failed", zap.String("path", f.target.Path), zap.Error(err))
		}
	}
	now := time.Now()
	if f.file != nil && (force || now.Sub(f.lastSync) >= syncEvery) {
		_ = f.file.Sync()
		f.lastSync = now
	}
	if !f.target.TrackTask || !(f.dirty || f.progressNew) || (!force && now.Sub(f.lastProgress) < f.set.deps.ProgressEvery()) {
		return
	}
	if ctx.Err() != nil {
		// The term ended: this process may no longer lead, so it writes nothing.
		return
	}
	f.lastProgress = now
	if err := f.writeProgress(ctx, false); err != nil {
		f.log.Warn("record log progress failed", zap.Error(err))
		return
	}
	f.dirty, f.progressNew = false, false
}

// complete records that the run's output is all in the file.
func (f *Follower) complete(ctx context.Context) {
	f.flush(ctx, true)
	if !f.target.TrackTask || ctx.Err() != nil {
		return
	}
	if err := f.writeProgress(ctx, true); err != nil {
		f.log.Warn("record complete log failed", zap.Error(err))
	}
	f.log.Debug("log follower drained container output", zap.Int64("bytes", f.size))
}

// writeProgress writes the run's execution_logs row: the file's size and
// newest line, whether it is complete, and the agent's progress. The row is
// written whole and by this follower only, so no compare-and-swap is needed;
// the task controller reads it, never the other way round. The texts are
// redacted once more (as every status text is) before they are stored.
func (f *Follower) writeProgress(ctx context.Context, complete bool) error {
	t := f.target
	row := &models.ExecutionLog{TaskID: t.TaskID, Run: t.Run, Path: t.Path, Size: f.size, Complete: complete}
	if !f.lastTS.IsZero() {
		ts := f.lastTS.UTC()
		row.LastLogTime = &ts
	}
	if t.StreamJSON {
		row.Progress = f.progress.runProgress()
		redactEach(f.secrets, &row.Progress.SessionID, &row.Progress.LastMessage, &row.Progress.ResultText)
	}
	if err := f.set.deps.Runs.RecordRun(ctx, row); err != nil && !errors.Is(err, models.ErrNotFound) {
		return fmt.Errorf("record execution log: %w", err)
	}
	return nil
}

// openFile opens the log file for appending (once per follower), dropping a
// trailing partial line and, for stream-json, replaying the stored lines into
// the progress parser so a restarted follower continues the counts.
func (f *Follower) openFile() error {
	if f.file != nil {
		return nil
	}
	file, size, err := tasklog.OpenAppend(f.target.Path)
	if err != nil {
		return err
	}
	f.file, f.w, f.size = file, bufio.NewWriterSize(file, 32<<10), size
	if f.target.StreamJSON && size > 0 {
		f.replayProgress()
	}
	return nil
}

// closeFile flushes and closes the log file.
func (f *Follower) closeFile() {
	if f.file == nil {
		return
	}
	if err := f.w.Flush(); err != nil {
		f.log.Warn("write task log failed", zap.String("path", f.target.Path), zap.Error(err))
	}
	_ = f.file.Sync()
	_ = f.file.Close()
	f.file, f.w = nil, nil
}

// replayProgress feeds the lines already stored to the progress parser.
func (f *Follower) replayProgress() {
	if _, err := f.file.Seek(0, io.SeekStart); err != nil {
		return
	}
	_ = tasklog.Scan(f.file, func(text string) { f.progress.Feed(text) })
	f.progressNew = true
}

// readTail returns the stored lines of the last LogResumeOverlap (or more)
// before the end of the file, for engine.NewLogResume. Buffered lines are
// flushed first so the file is the whole truth.
func (f *Follower) readTail() ([]engine.LogLine, error) {
	if err := f.w.Flush(); err != nil {
		return nil, fmt.Errorf("flush task log: %w", err)
	}
	lines, err := tasklog.ReadTail(f.file, f.size, engine.LogResumeOverlap)
	if err != nil {
		return nil, fmt.Errorf("read task log tail: %w", err)
	}
	if n := len(lines); n > 0 {
		f.lastTS = lines[n-1].Time
	}
	return lines, nil
}

// shortID is the 12-character form people see of a container id.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// redactEach redacts each text in place.
func redactEach(r *redact.Redactor, texts ...*string) {
	for _, p := range texts {
		*p = r.String(*p)
	}
}
