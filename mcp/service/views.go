package service

import (
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

// Views are the structured content of tool replies and the CLI's --json
// output. Their JSON schemas are the tools' output schemas, so a field added
// here shows up in the schema snapshots.
//
// Clients such as Claude Code hand the model the structured content rather
// than the text, so the JSON is written for a model to read (see
// present.go): every field is left out when it is empty, zero or false; an
// object's own id is "id" and a reference to another object is named by its
// kind ("task", "diff"); other names are one or two plain words, the tool's
// argument name where there is one; times are RFC 3339 in whole seconds
// (UTC); a phase the status already implies is left out; and "next" lists
// the calls that usually follow.

// TaskView is one task in full.
type TaskView struct {
	TaskID          string         `json:"id" jsonschema:"task id"`
	Status          string         `json:"status" jsonschema:"pending, running, completed, failed, cancelled, timed_out or needs_input"`
	Phase           string         `json:"phase,omitempty" jsonschema:"controller phase, when the status does not imply it: Preparing or Collecting (running), Succeeded (completed or needs_input), ..."`
	Finished        bool           `json:"finished,omitempty" jsonschema:"the task has stopped and no further run is pending"`
	Reason          string         `json:"reason,omitempty" jsonschema:"machine-readable reason of the phase"`
	Message         string         `json:"message,omitempty" jsonschema:"what happened, for people"`
	Description     string         `json:"description,omitempty"`
	Prompt          string         `json:"prompt,omitempty" jsonschema:"the task text (cut), when it is not the description"`
	WorkFolder      string         `json:"workFolder,omitempty"`
	Agent           string         `json:"agent,omitempty" jsonschema:"agent profile"`
	Priority        string         `json:"priority,omitempty"`
	BaseRef         string         `json:"baseRef,omitempty"`
	BaseCommit      string         `json:"baseCommit,omitempty"`
	DependsOn       []string       `json:"dependsOn,omitempty"`
	ParentTaskID    string         `json:"parentTaskId,omitempty"`
	RunNumber       int            `json:"run,omitempty" jsonschema:"current or last run (absent before the first starts)"`
	DesiredRuns     int            `json:"runsRequested,omitempty" jsonschema:"runs asked for, when more than run: a revision or an answer is waiting to run"`
	CancelRequested bool           `json:"cancelRequested,omitempty"`
	ContainerName   string         `json:"container,omitempty" jsonschema:"container of the run, when not named claude-parallel-<id>-r<run>"`
	ExitCode        *int           `json:"exitCode,omitempty"`
	StartTime       time.Time      `json:"accepted,omitzero" jsonschema:"when the task was accepted"`
	RunStartedAt    *time.Time     `json:"started,omitempty" jsonschema:"when the run started"`
	EndTime         *time.Time     `json:"ended,omitempty"`
	LastOutputAt    *time.Time     `json:"lastOutput,omitempty"`
	DiffID          string         `json:"diff,omitempty" jsonschema:"diff of the newest run, if it changed anything"`
	FilesChanged    *int           `json:"filesChanged,omitempty"`
	Progress        *AgentProgress `json:"progress,omitempty" jsonschema:"progress of a claude agent run"`
	PendingQuestion string         `json:"question,omitempty" jsonschema:"question the agent asked; answer it with answer_worker_question"`
	Events          []EventView    `json:"events,omitempty" jsonschema:"recent timeline of the task"`
	// Next is what follows for the task; work_status's reply carries it.
	Next []NextCall `json:"-"`
}

// AgentProgress is what a claude run reported so far.
type AgentProgress struct {
	SessionID   string  `json:"session,omitempty"`
	NumTurns    int     `json:"turns,omitempty"`
	CostUSD     float64 `json:"costUsd,omitempty"`
	LastMessage string  `json:"lastMessage,omitempty"`
	ResultText  string  `json:"result,omitempty" jsonschema:"the agent's final answer"`
}

// EventView is one line of an object's timeline.
type EventView struct {
	Time    time.Time `json:"time,omitzero"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
}

// TaskSummary is one task in a list.
type TaskSummary struct {
	TaskID      string    `json:"id"`
	Status      string    `json:"status"`
	Phase       string    `json:"phase,omitempty" jsonschema:"when the status does not imply it"`
	Description string    `json:"description,omitempty"`
	WorkFolder  string    `json:"workFolder,omitempty" jsonschema:"absent when the list's workFolder says it for every task"`
	Agent       string    `json:"agent,omitempty" jsonschema:"absent when the list's agent says it for every task"`
	RunNumber   int       `json:"run,omitempty"`
	DiffID      string    `json:"diff,omitempty"`
	StartTime   time.Time `json:"accepted,omitzero"`
	Reason      string    `json:"reason,omitempty"`
}

// TaskWorkerResult is task_worker's reply.
type TaskWorkerResult struct {
	TaskID     string     `json:"id"`
	Status     string     `json:"status"`
	Phase      string     `json:"phase,omitempty" jsonschema:"when the status does not imply it"`
	Created    bool       `json:"created,omitempty" jsonschema:"absent when parentTaskId matched an existing task, which is returned instead"`
	WorkFolder string     `json:"workFolder,omitempty" jsonschema:"the resolved work folder"`
	Agent      string     `json:"agent,omitempty"`
	Message    string     `json:"message,omitempty"`
	Next       []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// WorkStatusResult is work_status's reply: one task, or a list with counts.
type WorkStatusResult struct {
	Task   *TaskView        `json:"task,omitempty" jsonschema:"the task asked for by taskId"`
	Tasks  []TaskSummary    `json:"tasks,omitempty" jsonschema:"the newest tasks, when no taskId was given"`
	Counts map[string]int64 `json:"counts,omitempty" jsonschema:"number of tasks by status over the whole store (statuses with none left out)"`
	Total  int64            `json:"total,omitempty"`
	// WorkFolder and Agent are said once when every task listed shares them.
	WorkFolder string `json:"workFolder,omitempty" jsonschema:"the work folder of every task listed"`
	Agent      string `json:"agent,omitempty" jsonschema:"the agent of every task listed"`
	// Filter is the status the list was asked for.
	Filter string `json:"filter,omitempty" jsonschema:"the status filter of the list"`
	// NextCursor continues the list; it stays valid however many tasks are
	// added meanwhile (they are newer, so they come before it).
	NextCursor string     `json:"nextCursor,omitempty" jsonschema:"pass as cursor for the next page; absent on the last page"`
	Next       []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// DiffFileView is one file of a diff.
type DiffFileView struct {
	Path      string `json:"path"`
	OldPath   string `json:"from,omitempty" jsonschema:"the old path of a renamed or copied file"`
	Status    string `json:"change,omitempty" jsonschema:"added, modified, deleted, renamed, copied, mode_changed or type_changed"`
	Additions int    `json:"added,omitempty" jsonschema:"lines added"`
	Deletions int    `json:"removed,omitempty" jsonschema:"lines removed"`
	Binary    bool   `json:"binary,omitempty"`
}

// DiffView is one diff.
type DiffView struct {
	DiffID          string         `json:"id"`
	TaskID          string         `json:"task,omitempty"`
	RunNumber       int            `json:"run,omitempty"`
	Status          string         `json:"status" jsonschema:"pending, applying, applied, rejected, conflict, failed or superseded"`
	Phase           string         `json:"phase,omitempty" jsonschema:"when the status does not imply it"`
	Desired         string         `json:"decision,omitempty" jsonschema:"decision in force: pending (also after an apply met a conflict), applied or rejected"`
	WorkFolder      string         `json:"workFolder,omitempty" jsonschema:"the task's work folder"`
	TaskDescription string         `json:"description,omitempty" jsonschema:"what the task was asked"`
	FilesChanged    int            `json:"filesChanged,omitempty"`
	Additions       int            `json:"added,omitempty" jsonschema:"lines added"`
	Deletions       int            `json:"removed,omitempty" jsonschema:"lines removed"`
	Files           []DiffFileView `json:"files,omitempty"`
	BaseCommit      string         `json:"base,omitempty" jsonschema:"base commit (format detailed)"`
	ResultCommit    string         `json:"result,omitempty" jsonschema:"result commit (format detailed)"`
	PatchSize       int64          `json:"patchBytes,omitempty"`
	PatchSHA256     string         `json:"patchSha256,omitempty" jsonschema:"format detailed"`
	Patch           string         `json:"patch,omitempty" jsonschema:"the patch (git diff --binary), when showContent"`
	PatchTruncated  bool           `json:"patchCut,omitempty" jsonschema:"the patch was cut; next names the call for the rest"`
	PatchURI        string         `json:"patchUri,omitempty" jsonschema:"MCP resource holding the whole patch, when it was cut"`
	PatchFile       string         `json:"file,omitempty" jsonschema:"the file whose patch is shown, when file was given"`
	PatchOffset     int            `json:"offset,omitempty" jsonschema:"byte offset of the shown part in the patch (of file)"`
	NextOffset      int            `json:"nextOffset,omitempty" jsonschema:"pass as offset (with the same diffId and file) for the rest of the patch; absent when nothing follows"`
	CreatedAt       time.Time      `json:"created,omitzero"`
	TargetWorkspace string         `json:"target,omitempty" jsonschema:"the repository an apply was asked for"`
	ApplyMode       string         `json:"mode,omitempty"`
	AppliedTo       string         `json:"appliedTo,omitempty"`
	AppliedAt       *time.Time     `json:"appliedAt,omitempty"`
	Branch          string         `json:"branch,omitempty"`
	Reason          string         `json:"reason,omitempty"`
	Message         string         `json:"message,omitempty"`
	ConflictFiles   []string       `json:"conflictFiles,omitempty"`
	RejectReason    string         `json:"rejectReason,omitempty"`
	Events          []EventView    `json:"events,omitempty" jsonschema:"timeline of the diff (format detailed)"`
}

// ReviewResult is review_changes's reply: one diff, or the pending ones.
type ReviewResult struct {
	Diff    *DiffView  `json:"diff,omitempty" jsonschema:"the diff asked for"`
	Pending []DiffView `json:"pending,omitempty" jsonschema:"diffs waiting for a decision, when no id was given"`
	Count   int        `json:"count,omitempty" jsonschema:"diffs in this reply"`
	// NextCursor continues the pending list, oldest first.
	NextCursor string `json:"nextCursor,omitempty" jsonschema:"pass as cursor for the next page of pending diffs; absent on the last page"`
	// Detailed is format detailed: the reply keeps the commits and the
	// patch's checksum, which a summary leaves out.
	Detailed bool `json:"-"`
	// PatchHidden: the one diff's patch was not asked for (showContent
	// false), so what follows starts with the call that shows it.
	PatchHidden bool       `json:"-"`
	Next        []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls, including the one for what this reply left out"`
}

// Apply outcomes.
const (
	OutcomeApplied    = "applied"
	OutcomeConflict   = "conflict"
	OutcomeFailed     = "failed"
	OutcomeInProgress = "in_progress"
	OutcomePreview    = "preview"
)

// ApplyResult is apply_changes's reply.
type ApplyResult struct {
	DiffID        string     `json:"diff"`
	TaskID        string     `json:"task,omitempty"`
	Outcome       string     `json:"outcome" jsonschema:"applied, conflict, failed, in_progress (still applying when the wait ended) or preview (confirm was false)"`
	Status        string     `json:"status,omitempty" jsonschema:"the diff's status, when the outcome does not say it"`
	Phase         string     `json:"phase,omitempty" jsonschema:"when the status does not imply it"`
	Target        string     `json:"target,omitempty" jsonschema:"the repository the diff goes to"`
	Mode          string     `json:"mode,omitempty"`
	Branch        string     `json:"branch,omitempty" jsonschema:"branch created in branch mode"`
	ConflictFiles []string   `json:"conflictFiles,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	Message       string     `json:"message,omitempty"`
	Files         []string   `json:"files,omitempty" jsonschema:"files the diff changes"`
	Next          []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// RejectResult is reject_changes's reply.
type RejectResult struct {
	DiffID  string     `json:"diff"`
	Status  string     `json:"status"`
	Phase   string     `json:"phase,omitempty" jsonschema:"when the status does not imply it"`
	Reason  string     `json:"reason,omitempty"`
	Message string     `json:"message,omitempty"`
	Next    []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// FollowUpResult is the reply of request_revision and answer_worker_question.
type FollowUpResult struct {
	TaskID  string     `json:"task"`
	DiffID  string     `json:"diff,omitempty" jsonschema:"the diff being revised"`
	Run     int        `json:"run" jsonschema:"number of the run that will carry the follow-up"`
	Status  string     `json:"status"`
	Message string     `json:"message,omitempty"`
	Next    []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// CancelResult is cancel_task's reply.
type CancelResult struct {
	TaskID          string     `json:"task"`
	Status          string     `json:"status"`
	Phase           string     `json:"phase,omitempty" jsonschema:"when the status does not imply it"`
	CancelRequested bool       `json:"cancelRequested,omitempty" jsonschema:"absent when the task had already finished"`
	Message         string     `json:"message,omitempty"`
	Next            []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// TaskWaitView is one task in wait_for_tasks's reply.
type TaskWaitView struct {
	TaskID   string `json:"id"`
	Status   string `json:"status"`
	Phase    string `json:"phase,omitempty" jsonschema:"when the status does not imply it"`
	Finished bool   `json:"finished,omitempty"`
	DiffID   string `json:"diff,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	Question string `json:"question,omitempty" jsonschema:"question the agent asked (status needs_input)"`
}

// WaitResult is wait_for_tasks's reply.
type WaitResult struct {
	AllFinished   bool           `json:"allFinished,omitempty"`
	TimedOut      bool           `json:"timedOut,omitempty" jsonschema:"the wait ended before every task finished; call again to keep waiting"`
	WaitedSeconds float64        `json:"waitedSeconds,omitempty"`
	Tasks         []TaskWaitView `json:"tasks"`
	Next          []NextCall     `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// SystemStatusResult is system_status's reply.
type SystemStatusResult struct {
	Version        string           `json:"version,omitempty"`
	Docker         DockerStatus     `json:"docker"`
	Leader         LeaderStatus     `json:"leader,omitzero"`
	Tasks          map[string]int64 `json:"tasks,omitempty" jsonschema:"tasks by status (statuses with none left out)"`
	Diffs          map[string]int64 `json:"diffs,omitempty" jsonschema:"diffs by status (statuses with none left out)"`
	PendingDiffs   int64            `json:"awaitingDecision,omitempty" jsonschema:"diffs in state pending or conflict"`
	Containers     ContainerCounts  `json:"containers,omitzero"`
	ThisProcess    ProcessStatus    `json:"thisProcess,omitzero" jsonschema:"the controllers of the process answering"`
	Paths          PathsView        `json:"paths"`
	InstallationID string           `json:"installationId,omitempty"`
	MaxParallel    int              `json:"maxParallel,omitempty"`
	Profiles       []string         `json:"agents,omitempty" jsonschema:"the configured agent profiles"`
	DefaultAgent   string           `json:"defaultAgent,omitempty"`
	AllowedRoots   []string         `json:"allowedRoots,omitempty"`
	Next           []NextCall       `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// DockerStatus is what the engine answered.
type DockerStatus struct {
	Reachable  bool   `json:"reachable,omitempty"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"api,omitempty"`
	Error      string `json:"error,omitempty"`
}

// LeaderStatus is the holder of the controllers' lease.
type LeaderStatus struct {
	Holder    string     `json:"holder,omitempty" jsonschema:"the process running the controllers"`
	Active    bool       `json:"active,omitempty" jsonschema:"absent when nobody holds the lease: no controller is running"`
	RenewedAt *time.Time `json:"renewed,omitempty"`
	// Stalled is set when the lease has lapsed but its last holder is known
	// or likely to run still (a store it cannot write, such as a full disk).
	Stalled string `json:"stalled,omitempty" jsonschema:"why the last holder no longer renews the lease although it may still run"`
}

// ContainerCounts counts the containers the controllers registered.
type ContainerCounts struct {
	Managed int `json:"managed,omitempty" jsonschema:"containers in the registry"`
	Running int `json:"running,omitempty"`
	Adopted int `json:"adopted,omitempty" jsonschema:"found running with no owning task and adopted"`
}

// ProcessStatus is the RuntimeSnapshot of the answering process.
type ProcessStatus struct {
	ControllersWired bool              `json:"controllersWired,omitempty" jsonschema:"this process can run controllers"`
	IsLeader         bool              `json:"isLeader,omitempty"`
	Holder           string            `json:"holder,omitempty" jsonschema:"when it is not the leader's"`
	Controllers      []ControllerStats `json:"controllers,omitempty"`
}

// PathsView is where the installation keeps its files.
type PathsView struct {
	ConfigFile string `json:"configFile,omitempty"`
	Home       string `json:"home,omitempty"`
	Database   string `json:"database,omitempty"`
	Logs       string `json:"logs,omitempty"`
	TaskLogs   string `json:"taskLogs,omitempty"`
	Workspaces string `json:"workspaces,omitempty"`
	DockerHost string `json:"dockerHost,omitempty"`
}

// LogsResult is view_container_logs's reply.
type LogsResult struct {
	TaskID        string `json:"task"`
	Run           int    `json:"run,omitempty" jsonschema:"absent before the first run starts"`
	ContainerName string `json:"container,omitempty" jsonschema:"when not named claude-parallel-<task>-r<run>"`
	LogFile       string `json:"logFile,omitempty"`
	Exists        bool   `json:"exists,omitempty" jsonschema:"absent when the run has written no output yet"`
	Complete      bool   `json:"complete,omitempty" jsonschema:"the run ended and every line is in the file"`
	Size          int64  `json:"bytes,omitempty"`
	TotalLines    int    `json:"totalLines,omitempty"`
	MatchedLines  int    `json:"matchedLines,omitempty" jsonschema:"lines containing filter, when one was given"`
	// Filter is the filter asked for; the reply repeats it only in next
	// (a filter may hold what the caller would not see echoed, such as part
	// of a secret it looks for).
	Filter    string     `json:"-"`
	Lines     []string   `json:"lines,omitempty" jsonschema:"the lines shown, timestamps removed"`
	Truncated bool       `json:"truncated,omitempty" jsonschema:"lines were left out (tail or size bound); next names the calls for them"`
	FirstLine int        `json:"firstLine,omitempty" jsonschema:"number of the first line shown, counting lines that match filter from 1"`
	Runs      []int      `json:"runs,omitempty" jsonschema:"every run of the task that has a log, when there are several"`
	Next      []NextCall `json:"next,omitempty" jsonschema:"suggested follow-up calls, including those for the lines left out"`
}

// LogFileView is one log file in list_container_logs's reply.
type LogFileView struct {
	TaskID        string    `json:"task"`
	Run           int       `json:"run"`
	ContainerName string    `json:"container,omitempty" jsonschema:"when not named claude-parallel-<task>-r<run>"`
	Path          string    `json:"path,omitempty" jsonschema:"when not <taskLogs>/<task>/run-<run>.log"`
	Size          int64     `json:"bytes,omitempty"`
	Complete      bool      `json:"complete,omitempty"`
	UpdatedAt     time.Time `json:"updated,omitzero"`
}

// ListLogsResult is list_container_logs's reply.
type ListLogsResult struct {
	Logs  []LogFileView `json:"logs,omitempty"`
	Count int           `json:"count,omitempty"`
	Next  []NextCall    `json:"next,omitempty" jsonschema:"suggested follow-up calls"`
}

// promptExcerptChars bounds the prompt shown back in a TaskView.
const promptExcerptChars = 2000

func cut(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}

// containerName is the run's container name as the controllers give it, ""
// before the first run.
func containerName(taskID string, run int) string {
	if run < 1 {
		return ""
	}
	return models.ContainerName(taskID, run)
}

func newTaskView(t *models.Task) *TaskView {
	v := &TaskView{
		TaskID:          t.ID,
		Status:          string(t.Status.State),
		Phase:           string(t.Status.Phase),
		Finished:        t.Finished(),
		Reason:          t.Status.Reason,
		Message:         t.Status.Message,
		Description:     t.Spec.Description,
		Prompt:          cut(t.Spec.Prompt, promptExcerptChars),
		WorkFolder:      t.Spec.WorkFolder,
		Agent:           t.Spec.Agent,
		Priority:        string(t.Spec.Priority),
		BaseRef:         t.Spec.BaseRef,
		BaseCommit:      t.Status.BaseCommit,
		DependsOn:       t.Spec.DependsOn,
		ParentTaskID:    t.Spec.ParentTaskID,
		RunNumber:       t.Status.RunNumber,
		DesiredRuns:     t.Spec.DesiredRuns,
		CancelRequested: t.Spec.DesiredState == models.TaskDesiredCancel,
		ContainerName:   t.Status.ContainerName,
		ExitCode:        t.Status.ExitCode,
		StartTime:       t.StartTime,
		RunStartedAt:    t.Status.RunStartedAt,
		EndTime:         t.Status.EndTime,
		LastOutputAt:    t.Progress.LastOutputAt,
		DiffID:          t.Status.DiffID,
		PendingQuestion: t.Status.PendingQuestion,
	}
	if s := t.Progress; s.SessionID != "" || s.NumTurns > 0 || s.LastMessage != "" || s.ResultText != "" {
		v.Progress = &AgentProgress{SessionID: s.SessionID, NumTurns: s.NumTurns, CostUSD: s.CostUSD,
			LastMessage: cut(s.LastMessage, 2000), ResultText: cut(s.ResultText, 8000)}
	}
	return v
}

func newTaskSummary(t *models.Task) TaskSummary {
	return TaskSummary{
		TaskID:      t.ID,
		Status:      string(t.Status.State),
		Phase:       string(t.Status.Phase),
		Description: cut(firstNonEmpty(t.Spec.Description, t.Spec.Prompt), 120),
		WorkFolder:  t.Spec.WorkFolder,
		Agent:       t.Spec.Agent,
		RunNumber:   t.Status.RunNumber,
		DiffID:      t.Status.DiffID,
		StartTime:   t.StartTime,
		Reason:      t.Status.Reason,
	}
}

// newTaskWaitView is one task of a wait. A needs_input task counts as
// finished (models.Task.Finished: its run ended, no other is asked for);
// once answered it does not, although its status reads needs_input until the
// controller starts the next run.
func newTaskWaitView(t *models.Task) TaskWaitView {
	return TaskWaitView{
		TaskID:   t.ID,
		Status:   string(t.Status.State),
		Phase:    string(t.Status.Phase),
		Finished: t.Finished(),
		DiffID:   t.Status.DiffID,
		ExitCode: t.Status.ExitCode,
		Reason:   t.Status.Reason,
		Message:  t.Status.Message,
		Question: t.Status.PendingQuestion,
	}
}

// DiffPatchURI is the MCP resource of a diff's patch.
func DiffPatchURI(diffID string) string { return "claude-parallel://diffs/" + diffID + "/patch" }

// TaskLogsURI is the MCP resource of a task's newest log.
func TaskLogsURI(taskID string) string { return "claude-parallel://tasks/" + taskID + "/logs" }

func newDiffView(d *models.Diff, t *models.Task) DiffView {
	v := DiffView{
		DiffID:          d.ID,
		TaskID:          d.TaskID,
		RunNumber:       d.RunNumber,
		Status:          string(d.Status.State),
		Phase:           string(d.Status.Phase),
		Desired:         string(d.Decision()),
		FilesChanged:    d.FilesChanged,
		Additions:       d.Additions,
		Deletions:       d.Deletions,
		Files:           make([]DiffFileView, 0, len(d.Files)),
		BaseCommit:      d.BaseCommit,
		ResultCommit:    d.ResultCommit,
		PatchSize:       d.PatchSize,
		PatchSHA256:     d.PatchSHA256,
		PatchURI:        DiffPatchURI(d.ID),
		CreatedAt:       d.CreatedAt,
		TargetWorkspace: d.Spec.TargetWorkspace,
		ApplyMode:       string(d.Spec.ApplyMode),
		AppliedTo:       d.Status.AppliedTo,
		AppliedAt:       d.Status.AppliedAt,
		Branch:          d.Status.Branch,
		Reason:          d.Status.Reason,
		Message:         d.Status.Message,
		ConflictFiles:   d.Status.ConflictFiles,
		RejectReason:    d.Spec.RejectReason,
	}
	for _, f := range d.Files {
		v.Files = append(v.Files, DiffFileView{Path: f.Path, OldPath: f.OldPath, Status: f.Status,
			Additions: f.Additions, Deletions: f.Deletions, Binary: f.Binary})
	}
	if t != nil {
		v.WorkFolder = t.Spec.WorkFolder
		v.TaskDescription = cut(firstNonEmpty(t.Spec.Description, t.Spec.Prompt), 200)
	}
	return v
}

// setPatch puts the patch into the view, cut to max bytes on a line boundary.
func (v *DiffView) setPatch(patch []byte, max int) {
	text := strings.ToValidUTF8(string(patch), "\uFFFD")
	if len(text) > max {
		cutAt := strings.LastIndexByte(text[:max], '\n')
		if cutAt <= 0 {
			cutAt = max
		}
		text = strings.ToValidUTF8(text[:cutAt], "")
		v.PatchTruncated = true
	}
	v.Patch = text
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}
