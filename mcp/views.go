package mcp

import (
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/models"
)

// Views are the structured content of tool replies and the CLI's --json
// output. Their JSON schemas are the tools' output schemas, so a field added
// here shows up in the schema snapshots.

// TaskView is one task in full.
type TaskView struct {
	TaskID          string         `json:"taskId" jsonschema:"task id"`
	Status          string         `json:"status" jsonschema:"external status: pending, running, completed, failed, cancelled, timed_out or needs_input"`
	Phase           string         `json:"phase" jsonschema:"controller phase: Pending, Preparing, Running, Collecting, Succeeded, Failed, Cancelled or TimedOut"`
	Finished        bool           `json:"finished" jsonschema:"true when the task has stopped and no further run is pending"`
	Reason          string         `json:"reason,omitempty" jsonschema:"machine-readable reason of the phase"`
	Message         string         `json:"message,omitempty" jsonschema:"what happened, for people"`
	Description     string         `json:"description,omitempty"`
	Prompt          string         `json:"prompt,omitempty" jsonschema:"the task text (cut to 2000 characters)"`
	WorkFolder      string         `json:"workFolder"`
	Agent           string         `json:"agent" jsonschema:"agent profile"`
	Priority        string         `json:"priority"`
	BaseRef         string         `json:"baseRef,omitempty"`
	BaseCommit      string         `json:"baseCommit,omitempty"`
	DependsOn       []string       `json:"dependsOn,omitempty"`
	ParentTaskID    string         `json:"parentTaskId,omitempty"`
	RunNumber       int            `json:"runNumber" jsonschema:"current or last run (0 before the first starts)"`
	DesiredRuns     int            `json:"desiredRuns" jsonschema:"runs asked for: 1 plus one per revision or answer"`
	CancelRequested bool           `json:"cancelRequested,omitempty"`
	ContainerName   string         `json:"containerName,omitempty"`
	ExitCode        *int           `json:"exitCode,omitempty"`
	StartTime       time.Time      `json:"startTime" jsonschema:"when the task was accepted"`
	RunStartedAt    *time.Time     `json:"runStartedAt,omitempty"`
	EndTime         *time.Time     `json:"endTime,omitempty"`
	LastOutputAt    *time.Time     `json:"lastOutputAt,omitempty"`
	DiffID          string         `json:"diffId,omitempty" jsonschema:"diff of the newest run, if it changed anything"`
	FilesChanged    *int           `json:"filesChanged,omitempty"`
	Progress        *AgentProgress `json:"progress,omitempty" jsonschema:"progress of a claude agent run"`
	PendingQuestion string         `json:"pendingQuestion,omitempty" jsonschema:"question the agent asked; answer it with answer_worker_question"`
	Events          []EventView    `json:"events,omitempty" jsonschema:"recent timeline of the task"`
}

// AgentProgress is what a claude run reported so far.
type AgentProgress struct {
	SessionID   string  `json:"sessionId,omitempty"`
	NumTurns    int     `json:"numTurns"`
	CostUSD     float64 `json:"costUsd"`
	LastMessage string  `json:"lastMessage,omitempty"`
	ResultText  string  `json:"resultText,omitempty"`
}

// EventView is one line of an object's timeline.
type EventView struct {
	Time    time.Time `json:"time"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
}

// TaskSummary is one task in a list.
type TaskSummary struct {
	TaskID      string    `json:"taskId"`
	Status      string    `json:"status"`
	Phase       string    `json:"phase"`
	Description string    `json:"description,omitempty"`
	WorkFolder  string    `json:"workFolder"`
	Agent       string    `json:"agent"`
	RunNumber   int       `json:"runNumber"`
	DiffID      string    `json:"diffId,omitempty"`
	StartTime   time.Time `json:"startTime"`
	Reason      string    `json:"reason,omitempty"`
}

// TaskWorkerResult is task_worker's reply.
type TaskWorkerResult struct {
	TaskID     string `json:"taskId"`
	Status     string `json:"status"`
	Phase      string `json:"phase"`
	Created    bool   `json:"created" jsonschema:"false when parentTaskId matched an existing task, which is returned instead"`
	WorkFolder string `json:"workFolder" jsonschema:"the resolved work folder"`
	Agent      string `json:"agent"`
	Message    string `json:"message"`
}

// WorkStatusResult is work_status's reply: one task, or a list with counts.
type WorkStatusResult struct {
	Task   *TaskView        `json:"task,omitempty" jsonschema:"the task asked for by taskId"`
	Tasks  []TaskSummary    `json:"tasks,omitempty" jsonschema:"the newest tasks, when no taskId was given"`
	Counts map[string]int64 `json:"counts" jsonschema:"number of tasks by status, over the whole store"`
	Total  int64            `json:"total"`
	// NextCursor continues the list; it stays valid however many tasks are
	// added meanwhile (they are newer, so they come before it).
	NextCursor string `json:"nextCursor,omitempty" jsonschema:"pass as cursor for the next page; absent on the last page"`
}

// DiffFileView is one file of a diff.
type DiffFileView struct {
	Path      string `json:"path"`
	OldPath   string `json:"oldPath,omitempty"`
	Status    string `json:"status" jsonschema:"added, modified, deleted, renamed, copied, mode_changed or type_changed"`
	Additions int    `json:"additions"`
	Deletions int    `json:"deletions"`
	Binary    bool   `json:"binary,omitempty"`
}

// DiffView is one diff.
type DiffView struct {
	DiffID          string         `json:"diffId"`
	TaskID          string         `json:"taskId"`
	RunNumber       int            `json:"runNumber"`
	Status          string         `json:"status" jsonschema:"pending, applying, applied, rejected, conflict, failed or superseded"`
	Phase           string         `json:"phase"`
	Desired         string         `json:"desired" jsonschema:"decision in force: pending (also after an apply met a conflict), applied or rejected"`
	WorkFolder      string         `json:"workFolder,omitempty" jsonschema:"the task's work folder"`
	TaskDescription string         `json:"taskDescription,omitempty"`
	FilesChanged    int            `json:"filesChanged"`
	Additions       int            `json:"additions"`
	Deletions       int            `json:"deletions"`
	Files           []DiffFileView `json:"files"`
	BaseCommit      string         `json:"baseCommit,omitempty"`
	ResultCommit    string         `json:"resultCommit,omitempty"`
	PatchSize       int64          `json:"patchSize"`
	PatchSHA256     string         `json:"patchSha256,omitempty"`
	Patch           string         `json:"patch,omitempty" jsonschema:"the patch (git diff --binary), when showContent"`
	PatchTruncated  bool           `json:"patchTruncated,omitempty" jsonschema:"the patch was cut; read the resource patchUri for all of it"`
	PatchURI        string         `json:"patchUri" jsonschema:"MCP resource holding the whole patch"`
	PatchFile       string         `json:"patchFile,omitempty" jsonschema:"the file whose patch is shown, when file was given"`
	PatchOffset     int            `json:"patchOffset,omitempty" jsonschema:"byte offset of the shown part in the patch (of patchFile)"`
	NextOffset      int            `json:"nextOffset,omitempty" jsonschema:"pass as offset (with the same diffId and file) for the rest of the patch; absent when nothing follows"`
	CreatedAt       time.Time      `json:"createdAt"`
	TargetWorkspace string         `json:"targetWorkspace,omitempty"`
	ApplyMode       string         `json:"applyMode,omitempty"`
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
	Count   int        `json:"count"`
	// NextCursor continues the pending list, oldest first.
	NextCursor string `json:"nextCursor,omitempty" jsonschema:"pass as cursor for the next page of pending diffs; absent on the last page"`
	Hint       string `json:"hint,omitempty" jsonschema:"what was left out of this reply and which call shows it"`
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
	DiffID        string   `json:"diffId"`
	TaskID        string   `json:"taskId"`
	Outcome       string   `json:"outcome" jsonschema:"applied, conflict, failed, in_progress (still applying when the wait ended) or preview (confirm was false)"`
	Status        string   `json:"status"`
	Phase         string   `json:"phase"`
	Target        string   `json:"target" jsonschema:"the repository the diff goes to"`
	Mode          string   `json:"mode"`
	Branch        string   `json:"branch,omitempty" jsonschema:"branch created in branch mode"`
	ConflictFiles []string `json:"conflictFiles,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	Message       string   `json:"message"`
	Files         []string `json:"files,omitempty" jsonschema:"files the diff changes"`
}

// RejectResult is reject_changes's reply.
type RejectResult struct {
	DiffID  string `json:"diffId"`
	Status  string `json:"status"`
	Phase   string `json:"phase"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

// FollowUpResult is the reply of request_revision and answer_worker_question.
type FollowUpResult struct {
	TaskID  string `json:"taskId"`
	DiffID  string `json:"diffId,omitempty" jsonschema:"the diff being revised"`
	Run     int    `json:"run" jsonschema:"number of the run that will carry the follow-up"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// CancelResult is cancel_task's reply.
type CancelResult struct {
	TaskID          string `json:"taskId"`
	Status          string `json:"status"`
	Phase           string `json:"phase"`
	CancelRequested bool   `json:"cancelRequested" jsonschema:"false when the task had already finished"`
	Message         string `json:"message"`
}

// TaskWaitView is one task in wait_for_tasks's reply.
type TaskWaitView struct {
	TaskID   string `json:"taskId"`
	Status   string `json:"status"`
	Phase    string `json:"phase"`
	Finished bool   `json:"finished"`
	DiffID   string `json:"diffId,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
}

// WaitResult is wait_for_tasks's reply.
type WaitResult struct {
	AllFinished   bool           `json:"allFinished"`
	TimedOut      bool           `json:"timedOut" jsonschema:"the wait ended before every task finished; call again to keep waiting"`
	WaitedSeconds float64        `json:"waitedSeconds"`
	Tasks         []TaskWaitView `json:"tasks"`
}

// SystemStatusResult is system_status's reply.
type SystemStatusResult struct {
	Version        string           `json:"version"`
	Docker         DockerStatus     `json:"docker"`
	Leader         LeaderStatus     `json:"leader"`
	Tasks          map[string]int64 `json:"tasks" jsonschema:"tasks by status"`
	Diffs          map[string]int64 `json:"diffs" jsonschema:"diffs by status"`
	PendingDiffs   int64            `json:"pendingDiffs" jsonschema:"diffs in state pending or conflict"`
	Containers     ContainerCounts  `json:"containers"`
	ThisProcess    ProcessStatus    `json:"thisProcess" jsonschema:"the controllers of the process answering"`
	Paths          PathsView        `json:"paths"`
	InstallationID string           `json:"installationId"`
	MaxParallel    int              `json:"maxParallel"`
	Profiles       []string         `json:"profiles"`
	DefaultAgent   string           `json:"defaultAgent"`
	AllowedRoots   []string         `json:"allowedRoots"`
}

// DockerStatus is what the engine answered.
type DockerStatus struct {
	Reachable  bool   `json:"reachable"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
	Error      string `json:"error,omitempty"`
}

// LeaderStatus is the holder of the controllers' lease.
type LeaderStatus struct {
	Holder    string     `json:"holder,omitempty" jsonschema:"the process running the controllers"`
	Active    bool       `json:"active" jsonschema:"false when nobody holds the lease: no controller is running"`
	RenewedAt *time.Time `json:"renewedAt,omitempty"`
	// Stalled is set when the lease has lapsed but its last holder is known
	// or likely to run still (a store it cannot write, such as a full disk).
	Stalled string `json:"stalled,omitempty" jsonschema:"why the last holder no longer renews the lease although it may still run"`
}

// ContainerCounts counts the containers the controllers registered.
type ContainerCounts struct {
	Managed int `json:"managed" jsonschema:"containers in the registry"`
	Running int `json:"running"`
	Adopted int `json:"adopted" jsonschema:"found running with no owning task and adopted"`
}

// ProcessStatus is the RuntimeSnapshot of the answering process.
type ProcessStatus struct {
	ControllersWired bool              `json:"controllersWired" jsonschema:"this process can run controllers"`
	IsLeader         bool              `json:"isLeader"`
	Holder           string            `json:"holder,omitempty"`
	Controllers      []ControllerStats `json:"controllers,omitempty"`
}

// PathsView is where the installation keeps its files.
type PathsView struct {
	ConfigFile string `json:"configFile,omitempty"`
	Home       string `json:"home"`
	Database   string `json:"database"`
	Logs       string `json:"logs"`
	TaskLogs   string `json:"taskLogs"`
	Workspaces string `json:"workspaces"`
	DockerHost string `json:"dockerHost,omitempty"`
}

// LogsResult is view_container_logs's reply.
type LogsResult struct {
	TaskID        string   `json:"taskId"`
	Run           int      `json:"run"`
	ContainerName string   `json:"containerName"`
	LogFile       string   `json:"logFile"`
	Exists        bool     `json:"exists" jsonschema:"false when the run has written no output yet"`
	Complete      bool     `json:"complete" jsonschema:"the run ended and every line is in the file"`
	Size          int64    `json:"size"`
	TotalLines    int      `json:"totalLines"`
	MatchedLines  int      `json:"matchedLines" jsonschema:"lines containing filter (all lines without one)"`
	Lines         []string `json:"lines" jsonschema:"the lines shown, timestamps removed"`
	Truncated     bool     `json:"truncated" jsonschema:"lines were left out (tail or size bound)"`
	FirstLine     int      `json:"firstLine,omitempty" jsonschema:"number of the first line shown, counting lines that match filter from 1"`
	Hint          string   `json:"hint,omitempty" jsonschema:"which lines were left out and which call shows them"`
	Runs          []int    `json:"runs,omitempty" jsonschema:"every run of the task that has a log"`
}

// LogFileView is one log file in list_container_logs's reply.
type LogFileView struct {
	TaskID        string    `json:"taskId"`
	Run           int       `json:"run"`
	ContainerName string    `json:"containerName"`
	Path          string    `json:"path"`
	Size          int64     `json:"size"`
	Complete      bool      `json:"complete"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// ListLogsResult is list_container_logs's reply.
type ListLogsResult struct {
	Logs  []LogFileView `json:"logs"`
	Count int           `json:"count"`
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
