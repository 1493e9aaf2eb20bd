package service

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/tasklog"
)

// Bounds of a log reply: lines are cut, and the reply keeps the newest lines
// that fit.
const (
	maxLogLineBytes = 8 << 10
	// MaxLogResourceBytes bounds the log resource of a task.
	MaxLogResourceBytes = 1 << 20
)

// logTarget is the run whose output is read.
type logTarget struct {
	taskID string
	run    int
}

// ViewLogs reads the output of a task run, named by task id (its newest
// run), container name or Docker container id.
func (f *Frontend) ViewLogs(ctx context.Context, req *LogsRequest) (*LogsResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	target, err := f.resolveLogTarget(ctx, req.Identifier)
	if err != nil {
		return nil, err
	}
	res, err := f.readRunLines(ctx, target, lineOptions{tail: req.Tail, filter: req.Filter, before: req.BeforeLine, from: req.FromLine,
		maxCost: cmp.Or(req.MaxChars, maxContentChars), cost: func(l string) int { return jsonLen(l) + 3 }})
	if err != nil {
		return nil, err
	}
	res.Filter = req.Filter
	return res, nil
}

// resolveLogTarget maps an identifier to a task run.
func (f *Frontend) resolveLogTarget(ctx context.Context, id string) (logTarget, error) {
	if models.IsTaskID(id) {
		t, err := f.getTask(ctx, "identifier", id)
		if err != nil {
			return logTarget{}, err
		}
		return logTarget{taskID: t.ID, run: t.Status.RunNumber}, nil
	}
	if taskID, run, ok := models.ParseContainerName(id); ok {
		if _, err := f.getTask(ctx, "identifier", taskID); err != nil {
			return logTarget{}, err
		}
		return logTarget{taskID: taskID, run: run}, nil
	}
	c, err := f.d.Store.FindContainerByDockerID(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return logTarget{}, &InputError{Arg: "identifier",
			Problem:  fmt.Sprintf("no container with id %s is known (or the prefix is ambiguous)", Quote(id)),
			Accepted: "a task id, a container name, or enough of a container id to name one container"}
	}
	if err != nil {
		return logTarget{}, fmt.Errorf("look up container %s: %w", id, err)
	}
	if !models.IsTaskID(c.TaskID) || c.Run < 1 {
		return logTarget{}, &InputError{Arg: "identifier", Problem: fmt.Sprintf("container %s belongs to no task of this installation", c.Name),
			Accepted: "a container started for a task"}
	}
	return logTarget{taskID: c.TaskID, run: c.Run}, nil
}

// runLogPath is where a run's output is. The path comes from the run's
// execution log row when there is one and it lies in the task log
// directory, else from the naming rule; either way it is built from
// validated ids only.
func (f *Frontend) runLogPath(target logTarget, row *models.ExecutionLog) string {
	dir := f.cfg().Paths().TaskLogDir
	if row != nil && row.Path != "" && filepath.IsAbs(row.Path) && within(row.Path, dir) {
		return row.Path
	}
	return tasklog.Path(dir, target.taskID, target.run)
}

// runLogRow reads the execution log row of a run, nil when there is none.
func (f *Frontend) runLogRow(ctx context.Context, target logTarget) (*models.ExecutionLog, error) {
	row, err := f.d.Store.GetExecutionLog(ctx, target.taskID, target.run)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read execution log of %s run %d: %w", target.taskID, target.run, err)
	}
	return row, nil
}

// readRunLog reads one run's log: the last tail lines (all when 0) that
// contain filter, timestamps removed, newest kept within maxBytes.
func (f *Frontend) readRunLog(ctx context.Context, target logTarget, tail int, filter string, maxBytes int) (*LogsResult, error) {
	return f.readRunLines(ctx, target, lineOptions{tail: tail, filter: filter, maxCost: maxBytes})
}

// readRunLines reads the lines of one run's log that opt selects.
func (f *Frontend) readRunLines(ctx context.Context, target logTarget, opt lineOptions) (*LogsResult, error) {
	res := &LogsResult{TaskID: target.taskID, Run: target.run, ContainerName: containerName(target.taskID, target.run), Lines: []string{}}
	runs, err := f.d.Store.ListExecutionLogs(ctx, models.LogFilter{TaskID: target.taskID})
	if err != nil {
		return nil, fmt.Errorf("list logs of task %s: %w", target.taskID, err)
	}
	var row *models.ExecutionLog
	for i, l := range runs {
		res.Runs = append(res.Runs, l.Run)
		if l.Run == target.run {
			row = &runs[i]
		}
	}
	if target.run < 1 {
		return res, nil // no run started yet
	}
	path := f.runLogPath(target, row)
	res.LogFile = path
	if row != nil {
		res.Complete = row.Complete
	}
	file, err := openBelow(f.cfg().Paths().TaskLogDir, path)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	defer file.Close()
	res.Exists = true
	if fi, err := file.Stat(); err == nil {
		res.Size = fi.Size()
	}
	// Redacted before the filter and the cut of long lines, so neither a
	// filter nor a cut can reveal part of a secret.
	src, stop := redactedReader(file, f.Secrets())
	defer stop()
	sel, err := selectLineRange(src, opt)
	if err != nil {
		return nil, fmt.Errorf("read log %s: %w", path, err)
	}
	res.Lines, res.TotalLines, res.MatchedLines, res.Truncated, res.FirstLine = sel.lines, sel.total, sel.matched, sel.truncated, sel.first
	return res, nil
}

type lineSelection struct {
	lines          []string
	total, matched int
	first          int // number of lines[0] among the matched lines, from 1
	truncated      bool
}

// lineOptions select lines of a log: the last tail matching lines before
// line number before (to the end when 0), or the first tail from line
// number from, fewer when their cost (bytes plus a newline by default)
// passes maxCost. Numbers count matching lines from 1.
type lineOptions struct {
	tail         int // 0: up to MaxTailLines
	filter       string
	before, from int
	maxCost      int
	cost         func(line string) int
}

// selectLines scans r once, keeping the last keep matching lines (all when
// tail is 0, up to MaxTailLines) and then dropping the oldest until the
// rest fits maxBytes.
func selectLines(r io.Reader, tail int, filter string, maxBytes int) (lineSelection, error) {
	return selectLineRange(r, lineOptions{tail: tail, filter: filter, maxCost: maxBytes})
}

// selectLineRange scans r once and keeps the lines opt selects.
func selectLineRange(r io.Reader, opt lineOptions) (lineSelection, error) {
	keep := opt.tail
	if keep <= 0 {
		keep = MaxTailLines
	}
	cost := opt.cost
	if cost == nil {
		cost = func(l string) int { return len(l) + 1 }
	}
	sel := lineSelection{lines: []string{}}
	ring := make([]string, 0, min(keep, 1024))
	start := 0    // index of the oldest line in ring once it is full
	used := 0     // cost of the lines kept going forward
	full := false // going forward, the next line no longer fits
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if line != "" || err == nil {
			sel.total++
			text := stripTimestamp(line)
			if opt.filter == "" || strings.Contains(text, opt.filter) {
				sel.matched++
				n := sel.matched
				switch {
				case opt.from > 0:
					if n >= opt.from && !full {
						text = cutBytes(text, maxLogLineBytes)
						if len(ring) == 0 {
							text = fitLine(text, cost, opt.maxCost)
						}
						if c := cost(text); len(ring) < keep && used+c <= opt.maxCost {
							ring = append(ring, text)
							used += c
						} else {
							full = true
						}
					}
				case opt.before == 0 || n < opt.before:
					text = cutBytes(text, maxLogLineBytes)
					if len(ring) < keep {
						ring = append(ring, text)
					} else {
						ring[start] = text
						start = (start + 1) % keep
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sel, err
		}
	}
	if opt.from > 0 {
		sel.lines, sel.first = ring, opt.from
		sel.truncated = len(ring) < sel.matched
		return sel, nil
	}
	ordered := append(append([]string{}, ring[start:]...), ring[:start]...)
	size := 0
	first := len(ordered)
	for first > 0 && size+cost(ordered[first-1]) <= opt.maxCost {
		first--
		size += cost(ordered[first])
	}
	if first == len(ordered) && first > 0 {
		// Not even the newest line fits: it is shown cut, so that paging on
		// from it makes progress.
		first--
		ordered[first] = fitLine(ordered[first], cost, opt.maxCost)
	}
	sel.lines = ordered[first:]
	shownEnd := sel.matched // number of the last line considered
	if opt.before > 0 {
		shownEnd = min(opt.before-1, sel.matched)
	}
	sel.first = shownEnd - len(sel.lines) + 1
	sel.truncated = len(sel.lines) < sel.matched
	return sel, nil
}

// fitLine cuts a line until its cost is within max.
func fitLine(text string, cost func(string) int, max int) string {
	for cost(text) > max && len(text) > 0 {
		text = strings.ToValidUTF8(text[:len(text)*3/4], "")
	}
	return text
}

// readLine reads one line of any length without keeping more than a cut
// line in memory: the rest of an overlong line is discarded.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		if b.Len() < maxLogLineBytes+4 {
			b.Write(chunk[:min(len(chunk), maxLogLineBytes+4-b.Len())])
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return strings.TrimRight(b.String(), "\r\n"), err
	}
}

// stripTimestamp removes the Docker timestamp the log follower puts before
// every line ("2024-05-01T10:00:00.123456789Z text"): the task log's format,
// defined once in tasklog.
func stripTimestamp(line string) string { return tasklog.StripStamp(line) }

func cutBytes(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}

// ListLogs lists the run logs recorded in the store.
func (f *Frontend) ListLogs(ctx context.Context, req *ListLogsRequest) (*ListLogsResult, error) {
	if err := req.Check(); err != nil {
		return nil, err
	}
	order := map[string]models.LogOrder{"newest": models.LogsNewestFirst, "oldest": models.LogsOldestFirst, "size": models.LogsLargestFirst}[req.SortBy]
	rows, err := f.d.Store.ListExecutionLogs(ctx, models.LogFilter{Limit: req.Limit, Order: order})
	if err != nil {
		return nil, fmt.Errorf("list execution logs: %w", err)
	}
	res := &ListLogsResult{Logs: make([]LogFileView, 0, len(rows)), Count: len(rows)}
	for i, l := range rows {
		v := LogFileView{TaskID: l.TaskID, Run: l.Run, ContainerName: containerName(l.TaskID, l.Run),
			Path: f.runLogPath(logTarget{taskID: l.TaskID, run: l.Run}, &rows[i]), Size: l.Size, Complete: l.Complete, UpdatedAt: l.UpdatedAt}
		if !l.Complete {
			// The row's size is written at most once a second while the run
			// prints; the file says how much there is now.
			if fi, err := os.Stat(v.Path); err == nil {
				v.Size = fi.Size()
			}
		}
		res.Logs = append(res.Logs, v)
	}
	return res, nil
}

// RunLogFile names the log file of the run an identifier points at (a task
// id names its newest run), for callers that follow the file as it grows.
// run is 0 when the task has not started a run yet.
func (f *Frontend) RunLogFile(ctx context.Context, identifier string) (taskID string, run int, path string, err error) {
	if err := CheckText("identifier", identifier, identifierRule); err != nil {
		return "", 0, "", err
	}
	target, err := f.resolveLogTarget(ctx, identifier)
	if err != nil {
		return "", 0, "", err
	}
	if target.run < 1 {
		return target.taskID, 0, "", nil
	}
	row, err := f.runLogRow(ctx, target)
	if err != nil {
		return "", 0, "", err
	}
	return target.taskID, target.run, f.runLogPath(target, row), nil
}

// StripTimestamp removes the Docker timestamp that starts every line of a
// task log.
func StripTimestamp(line string) string { return stripTimestamp(line) }

// OpenRunLog opens a log file RunLogFile named, through a handle on the task
// log directory, so a symlink planted in its place is not followed: the path
// is checked where it is read, by every adapter that follows a log.
func (f *Frontend) OpenRunLog(path string) (*os.File, error) {
	return openBelow(f.cfg().Paths().TaskLogDir, path)
}
