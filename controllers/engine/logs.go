package engine

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/claude-parallel/claude-parallel/models/tasklog"
)

// Logs streams the container's stdout and stderr, combined in the order Docker stored
// them, as lines prefixed with Docker's timestamp:
//
//	2026-11-27T08:15:04.123456789Z text of the line
//
// Use ParseLogLine to split a line. Only lines stamped strictly after since are
// returned (the zero time means from the beginning).
//
// Resuming after a crash: Docker stamps each line with nanosecond precision as it
// reads it, and each stream's stamps increase, but stdout and stderr are read by two
// goroutines, so a line of one stream can be stored just after a line of the other
// that carries a later stamp. Resuming strictly after the newest stored stamp could
// then skip such a line, and resuming after the last stored line's stamp could repeat
// one. LogResume closes both holes: it starts a little earlier (LogResumeOverlap) and
// drops the lines already stored.
//
// With follow the stream stays open until the container stops (then io.EOF), ctx
// ends, or the returned reader is closed. Closing the reader stops the stream.
func (e *Engine) Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error) {
	opts := container.LogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Timestamps: true,
		Follow:     follow,
	}
	if !since.IsZero() {
		// Docker's since is inclusive; one nanosecond later makes it exclusive. The
		// "seconds.nanoseconds" form keeps full precision through the API.
		next := since.Add(time.Nanosecond)
		opts.Since = fmt.Sprintf("%d.%09d", next.Unix(), next.Nanosecond())
	}
	raw, err := e.api(ctx).ContainerLogs(ctx, id, opts)
	if err != nil {
		return nil, wrap(err, "logs of container %s", shortID(id))
	}
	// Containers run without a TTY, so the stream is multiplexed in frames (one per
	// log line); demultiplex both streams into one pipe to keep their order.
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, raw)
		if err != nil {
			err = fmt.Errorf("logs of container %s: %w", shortID(id), err)
		}
		pw.CloseWithError(err) // nil → io.EOF for the reader
	}()
	return &logStream{PipeReader: pr, raw: raw}, nil
}

// logStream closes both ends so that a caller's Close ends the HTTP stream and the
// demultiplexing goroutine.
type logStream struct {
	*io.PipeReader
	raw  io.ReadCloser
	once sync.Once
}

func (s *logStream) Close() error {
	var err error
	s.once.Do(func() {
		err = s.raw.Close()
		_ = s.PipeReader.Close()
	})
	return err
}

// ParseLogLine splits a line returned by Logs into Docker's timestamp and the
// text, joining a long line Docker cut into PartialLogSize entries: the task
// log's one line rule, tasklog.ParseLine.
func ParseLogLine(line string) (ts time.Time, text string, ok bool) { return tasklog.ParseLine(line) }

// PartialLogSize is the size of the pieces Docker's log copier cuts a long
// output line into (tasklog.PartialLogSize).
const PartialLogSize = tasklog.PartialLogSize

// LogResumeOverlap is how far before the newest stored line a resumed read starts.
// Lines of stdout and stderr are out of stamp order by microseconds at most; a second
// also absorbs a small backwards step of the host clock.
const LogResumeOverlap = time.Second

// LogResume lets a log follower continue after a restart with no gap and no duplicate.
// Build it from the lines the follower had stored before it stopped — at least those
// stamped within LogResumeOverlap of the newest one (passing more is harmless) — then
// read Logs(ctx, id, r.Since(), follow) and store only the lines Keep accepts:
//
//	r := engine.NewLogResume(lastStored) // from the tail of the task's log file
//	rc, err := e.Logs(ctx, id, r.Since(), true)
//	for each line: ts, text, _ := engine.ParseLogLine(line); if r.Keep(ts, text) { store }
//
// A line is identified by its nanosecond stamp and its text; two different lines with
// both equal do not occur in practice.
type LogResume struct {
	since time.Time
	seen  map[logKey]struct{}
}

// LogLine is one stored line of a container's output.
type LogLine = tasklog.Line

type logKey struct {
	ns   int64
	text string
}

// NewLogResume prepares a resume after the given stored lines (in any order). With no
// lines it resumes from the beginning.
func NewLogResume(stored []LogLine) *LogResume {
	r := &LogResume{seen: map[logKey]struct{}{}}
	var newest time.Time
	for _, l := range stored {
		if l.Time.After(newest) {
			newest = l.Time
		}
	}
	if newest.IsZero() {
		return r
	}
	// Logs' since is exclusive: one nanosecond earlier includes the window's first instant.
	r.since = newest.Add(-LogResumeOverlap - time.Nanosecond)
	for _, l := range stored {
		if l.Time.After(r.since) {
			r.seen[logKey{l.Time.UnixNano(), l.Text}] = struct{}{}
		}
	}
	return r
}

// Since is the time to pass to Logs.
func (r *LogResume) Since() time.Time { return r.since }

// Keep reports whether a line read after resuming is new (not stored before).
func (r *LogResume) Keep(ts time.Time, text string) bool {
	if len(r.seen) == 0 {
		return true
	}
	k := logKey{ts.UnixNano(), text}
	if _, dup := r.seen[k]; dup {
		delete(r.seen, k) // each stored line is met at most once again
		return false
	}
	return true
}
