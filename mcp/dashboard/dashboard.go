// Package dashboard serves the web dashboard of `serve --http` at /: tasks
// live, a task's timeline and its log following live (server-sent events),
// a diff viewer (unified or side by side), the system status, and actions —
// apply to the working tree or as a branch, reject, cancel — that only
// write intents through the same typed service the MCP tools use.
//
// Pages are server-rendered templates; htmx (vendored, no build step)
// refreshes the task list and posts the actions. Reading needs no token;
// actions go through mcp.Protect: the Origin rules of /mcp, and the bearer
// token when one is configured (the page keeps it in the tab's session
// storage and htmx sends it as an Authorization header).
package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options are what the dashboard works with.
type Options struct {
	Frontend *service.Frontend
	Store    *models.Store
	Config   func() *config.Config
	Logger   *zap.Logger
	// ApplyWait bounds how long an apply action waits for its outcome
	// before answering "in progress" (default 15s).
	ApplyWait time.Duration
	// LogPoll is how often a followed log file is read again (default 250ms).
	LogPoll time.Duration
	// Stopping, when closed, ends the log streams: an HTTP server's
	// graceful shutdown waits for handlers, and a stream would otherwise
	// hold it until its drain timeout.
	Stopping <-chan struct{}
}

type dashboard struct {
	opts  Options
	pages map[string]*template.Template
	rows  *template.Template
}

// Routes adds the dashboard to mux: GET / and the pages under it, the
// action endpoints, and /static/.
func Routes(mux *http.ServeMux, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ApplyWait <= 0 {
		opts.ApplyWait = 15 * time.Second
	}
	if opts.LogPoll <= 0 {
		opts.LogPoll = 250 * time.Millisecond
	}
	d := &dashboard{opts: opts, pages: map[string]*template.Template{}}
	for _, page := range []string{"index", "task", "diff"} {
		t, err := template.New(page).ParseFS(templateFS, "templates/layout.html", "templates/result.html", "templates/"+page+".html")
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", page, err)
		}
		d.pages[page] = t
	}
	d.rows = d.pages["index"]
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return fmt.Errorf("dashboard static files: %w", err)
	}
	protect := func(h http.HandlerFunc) http.Handler {
		return mcp.Protect(h, mcp.HTTPOptions{Config: opts.Config, Logger: opts.Logger})
	}
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", d.index)
	mux.HandleFunc("GET /ui/tasks", d.taskRows)
	mux.HandleFunc("GET /ui/diffs", d.diffList)
	mux.HandleFunc("GET /tasks/{id}", d.task)
	mux.HandleFunc("GET /ui/tasks/{id}", d.taskDetails)
	mux.HandleFunc("GET /tasks/{id}/log/events", d.logEvents)
	mux.HandleFunc("GET /diffs/{id}", d.diff)
	mux.Handle("POST /tasks/{id}/cancel", protect(d.cancel))
	mux.Handle("POST /diffs/{id}/apply", protect(d.apply))
	mux.Handle("POST /diffs/{id}/reject", protect(d.reject))
	mux.Handle("POST /diffs/{id}/revise", protect(d.revise))
	mux.Handle("POST /tasks/{id}/answer", protect(d.answer))
	return nil
}

// taskRow is one line of the task list.
type taskRow struct {
	ID, Title, Phase, Reason, LastMessage, DiffID, Duration string
	Turns                                                   int
	Cost                                                    float64
}

// listLimit bounds the task list: the newest tasks, live or not.
const listLimit = 50

func (d *dashboard) rowsData(ctx context.Context) (map[string]any, error) {
	tasks, err := d.opts.Store.ListTasks(ctx, models.TaskFilter{Limit: listLimit, Order: models.TasksNewestFirst})
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := make([]taskRow, 0, len(tasks))
	for _, t := range tasks {
		title := t.Spec.Description
		if title == "" {
			title = cut(t.Spec.Prompt, 80)
		}
		rows = append(rows, taskRow{ID: t.ID, Title: title, Phase: string(t.Status.Phase), Reason: t.Status.Reason,
			LastMessage: cut(t.Progress.LastMessage, 120), DiffID: t.Status.DiffID, Turns: t.Progress.NumTurns,
			Cost: t.Progress.CostUSD, Duration: duration(t.StartTime, t.Status.EndTime, now)})
	}
	review, err := d.opts.Frontend.ReviewChanges(ctx, &service.ReviewRequest{})
	if err != nil {
		return nil, err
	}
	return map[string]any{"Tasks": rows, "Pending": review.Pending}, nil
}

func (d *dashboard) index(w http.ResponseWriter, r *http.Request) {
	data, err := d.rowsData(r.Context())
	if err != nil {
		d.fail(w, err)
		return
	}
	status, err := d.opts.Frontend.SystemStatus(r.Context())
	if err != nil {
		d.fail(w, err)
		return
	}
	data["Title"], data["Status"] = "Tasks", status
	d.render(w, "index", "layout", data)
}

func (d *dashboard) taskRows(w http.ResponseWriter, r *http.Request) {
	data, err := d.rowsData(r.Context())
	if err != nil {
		d.fail(w, err)
		return
	}
	d.render(w, "index", "task-rows", data)
}

func (d *dashboard) diffList(w http.ResponseWriter, r *http.Request) {
	data, err := d.rowsData(r.Context())
	if err != nil {
		d.fail(w, err)
		return
	}
	d.render(w, "index", "diff-list", data)
}

func (d *dashboard) task(w http.ResponseWriter, r *http.Request) { d.taskPage(w, r, "layout") }
func (d *dashboard) taskDetails(w http.ResponseWriter, r *http.Request) {
	d.taskPage(w, r, "task-details")
}

// taskPage renders a task's page, or only its details (phase, progress,
// timeline), which the page reloads every few seconds.
func (d *dashboard) taskPage(w http.ResponseWriter, r *http.Request, name string) {
	res, err := d.opts.Frontend.WorkStatus(r.Context(), &service.WorkStatusRequest{TaskID: r.PathValue("id")})
	if err != nil {
		d.fail(w, err)
		return
	}
	t := res.Task
	d.render(w, "task", name, map[string]any{"Title": "Task " + t.TaskID, "Task": t,
		"Duration": duration(t.StartTime, t.EndTime, time.Now())})
}

func (d *dashboard) diff(w http.ResponseWriter, r *http.Request) {
	res, err := d.opts.Frontend.ReviewChanges(r.Context(), &service.ReviewRequest{DiffID: r.PathValue("id"), ShowContent: true, Detailed: true})
	if err != nil {
		d.fail(w, err)
		return
	}
	side := r.URL.Query().Get("view") == "side"
	d.render(w, "diff", "layout", map[string]any{"Title": "Diff " + res.Diff.DiffID, "Diff": res.Diff,
		"Side": side, "Patches": splitPatch(res.Diff.Patch), "Truncated": res.Diff.PatchTruncated})
}

// result is the fragment an action answers with.
type result struct {
	Outcome, Message string
	Error            bool
}

func (d *dashboard) cancel(w http.ResponseWriter, r *http.Request) {
	res, err := d.opts.Frontend.CancelTask(r.Context(), &service.CancelRequest{TaskID: r.PathValue("id"), Reason: r.FormValue("reason")})
	if err != nil {
		d.actionFailed(w, err)
		return
	}
	d.render(w, "task", "result", result{Outcome: res.Status, Message: res.Message})
}

func (d *dashboard) apply(w http.ResponseWriter, r *http.Request) {
	mode := models.ApplyMode(r.FormValue("mode"))
	if mode != models.ApplyModeBranch {
		mode = models.ApplyModeWorktree
	}
	res, err := d.opts.Frontend.ApplyChanges(r.Context(), &service.ApplyRequest{DiffID: r.PathValue("id"), Mode: mode, Confirm: true},
		d.opts.ApplyWait, func(float64, float64, string) {})
	if err != nil {
		d.actionFailed(w, err)
		return
	}
	d.render(w, "diff", "result", result{Outcome: res.Outcome, Message: res.Message,
		Error: res.Outcome == service.OutcomeConflict || res.Outcome == service.OutcomeFailed})
}

func (d *dashboard) reject(w http.ResponseWriter, r *http.Request) {
	res, err := d.opts.Frontend.RejectChanges(r.Context(), &service.RejectRequest{DiffID: r.PathValue("id"), Reason: r.FormValue("reason")})
	if err != nil {
		d.actionFailed(w, err)
		return
	}
	d.render(w, "diff", "result", result{Outcome: res.Status, Message: res.Message})
}

func (d *dashboard) revise(w http.ResponseWriter, r *http.Request) {
	res, err := d.opts.Frontend.RequestRevision(r.Context(), &service.RevisionRequest{DiffID: r.PathValue("id"),
		Feedback: r.FormValue("feedback"), PreserveCorrectParts: true})
	if err != nil {
		d.actionFailed(w, err)
		return
	}
	d.render(w, "diff", "result", result{Outcome: "revision", Message: res.Message})
}

func (d *dashboard) answer(w http.ResponseWriter, r *http.Request) {
	res, err := d.opts.Frontend.AnswerQuestion(r.Context(), &service.AnswerRequest{TaskID: r.PathValue("id"), Answer: r.FormValue("answer")})
	if err != nil {
		d.actionFailed(w, err)
		return
	}
	d.render(w, "task", "result", result{Outcome: "answered", Message: res.Message})
}

// actionFailed answers an action that was refused (bad input: 200 with the
// sentence, so htmx shows it) or failed (500).
func (d *dashboard) actionFailed(w http.ResponseWriter, err error) {
	if service.IsInputError(err) {
		d.render(w, "diff", "result", result{Outcome: "refused", Message: err.Error(), Error: true})
		return
	}
	d.opts.Logger.Error("dashboard action failed", zap.Error(err))
	w.WriteHeader(http.StatusInternalServerError)
	d.render(w, "diff", "result", result{Outcome: "error", Message: "the action failed: " + err.Error(), Error: true})
}

// logEvents streams a task's newest run log as server-sent events: what is
// there, then each line as it is written, until the run's log is complete
// or the browser goes away. Lines are sent without Docker's timestamps.
func (d *dashboard) logEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	taskID, run, path, err := d.opts.Frontend.RunLogFile(ctx, r.PathValue("id"))
	if err != nil {
		d.fail(w, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	// Headers now, so the browser's EventSource opens (and a client sees
	// the stream) before the first line exists.
	fmt.Fprint(w, ": following the log\n\n")
	flusher.Flush()
	send := func(event, data string) {
		if event != "" {
			fmt.Fprintf(w, "event: %s\n", event)
		}
		fmt.Fprintf(w, "data: %s\n\n", d.opts.Frontend.Redact(data))
		flusher.Flush()
	}
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var pending string
	tick := time.NewTicker(d.opts.LogPoll)
	defer tick.Stop()
	for {
		if f == nil && path != "" {
			if f, err = d.opts.Frontend.OpenRunLog(path); err != nil {
				f = nil
			}
		}
		if f != nil {
			br := bufio.NewReader(f)
			for {
				chunk, err := br.ReadString('\n')
				pending += chunk
				if err != nil {
					break // io.EOF: wait for more
				}
				send("", strings.TrimRight(service.StripTimestamp(strings.TrimSuffix(pending, "\n")), "\r"))
				pending = ""
			}
		}
		done, err := d.logComplete(ctx, taskID, run)
		if err == nil && done {
			if pending != "" {
				send("", service.StripTimestamp(pending))
			}
			send("end", "log complete")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-d.opts.Stopping:
			return
		case <-tick.C:
		}
		if path == "" { // no run yet: look again
			_, run, path, _ = d.opts.Frontend.RunLogFile(ctx, taskID)
		}
	}
}

// logComplete reports whether the run's log will grow no more.
func (d *dashboard) logComplete(ctx context.Context, taskID string, run int) (bool, error) {
	if run < 1 {
		return false, nil
	}
	el, err := d.opts.Store.GetExecutionLog(ctx, taskID, run)
	if err != nil {
		return false, err
	}
	return el.Complete, nil
}

func (d *dashboard) render(w http.ResponseWriter, page, name string, data any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	// The page is rendered whole, then redacted: prompts, agent messages
	// and patches come from the store as written, and a secret in any of
	// them is hidden here as the MCP middleware hides it in tool results.
	var html bytes.Buffer
	if err := d.pages[page].ExecuteTemplate(&html, name, data); err != nil {
		d.opts.Logger.Error("dashboard render failed", zap.String("page", page), zap.String("template", name), zap.Error(err))
	}
	_, _ = io.WriteString(w, d.opts.Frontend.Redact(html.String()))
}

// fail answers a page whose object is missing or whose id is malformed
// with 404 and the service's sentence, anything else with 500.
func (d *dashboard) fail(w http.ResponseWriter, err error) {
	if service.IsInputError(err) || errors.Is(err, models.ErrNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	d.opts.Logger.Error("dashboard page failed", zap.Error(err))
	http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
}

func duration(start time.Time, end *time.Time, now time.Time) string {
	if start.IsZero() {
		return ""
	}
	stop := now
	if end != nil && !end.IsZero() {
		stop = *end
	}
	return stop.Sub(start).Round(time.Second).String()
}

func cut(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
