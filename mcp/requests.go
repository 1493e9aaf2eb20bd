package mcp

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
)

// The Decode functions turn one call's arguments (the decoded JSON object)
// into a typed request, checking everything that needs neither the file
// system nor the store: presence, types, lengths, enums, id shapes, ref
// syntax and resource limits against the configuration. Frontend operations
// then check paths, git and existence. Tools and CLI share both steps.

// Argument names of every tool, in schema order.
var (
	taskWorkerArgs      = []string{"task", "workFolder", "parentTaskId", "taskDescription", "returnMode", "containerConfig", "agent", "baseRef", "includeUncommitted", "dependsOn", "priority"}
	workStatusArgs      = []string{"taskId", "status", "limit", "cursor"}
	reviewChangesArgs   = []string{"diffId", "taskId", "showContent", "format", "cursor", "file", "offset"}
	applyChangesArgs    = []string{"diffId", "targetWorkspace", "mode", "confirm"}
	rejectChangesArgs   = []string{"diffId", "reason"}
	requestRevisionArgs = []string{"diffId", "feedback", "preserveCorrectParts", "additionalContext"}
	answerQuestionArgs  = []string{"taskId", "answer"}
	cancelTaskArgs      = []string{"taskId", "reason"}
	waitForTasksArgs    = []string{"taskIds", "timeoutSeconds"}
	viewLogsArgs        = []string{"identifier", "tail", "filter", "beforeLine", "fromLine"}
	listLogsArgs        = []string{"limit", "sortBy"}
	containerConfigArgs = []string{"memory", "cpus", "timeout"}
)

// Enumerations of tool arguments.
var (
	returnModes   = []string{"full", "summary"}
	priorities    = []string{string(models.PriorityHigh), string(models.PriorityMedium), string(models.PriorityLow)}
	reviewFormats = []string{"summary", "detailed"}
	applyModes    = []string{string(models.ApplyModeWorktree), string(models.ApplyModeBranch)}
	logSortOrders = []string{"newest", "oldest", "size"}
)

func taskStates() []string {
	var out []string
	for _, s := range models.TaskStates() {
		out = append(out, string(s))
	}
	return out
}

// TaskWorkerRequest is a decoded task_worker call.
type TaskWorkerRequest struct {
	Prompt             string
	WorkFolder         string // as given; StartTask resolves it
	ParentTaskID       string
	Description        string
	ReturnMode         string
	Agent              string // resolved to the default profile when not given
	BaseRef            string
	IncludeUncommitted bool
	DependsOn          []string
	Priority           models.Priority
	MemoryBytes        int64
	NanoCPUs           int64
	Timeout            time.Duration
}

// DecodeTaskWorker decodes task_worker's arguments.
func DecodeTaskWorker(raw any, cfg *config.Config) (*TaskWorkerRequest, error) {
	a := newArgs(raw, taskWorkerArgs...)
	r := &TaskWorkerRequest{
		Prompt: a.str("task", textRule{required: true, maxChars: MaxPromptChars, multiline: true,
			accepted: "the work to do, as text for the agent"}),
		WorkFolder: a.str("workFolder", textRule{required: true, maxChars: MaxPathChars,
			accepted: "the absolute path of a git repository inside an allowed root"}),
		ParentTaskID: a.str("parentTaskId", textRule{maxChars: MaxParentIDChars,
			accepted: "an idempotency key of printable characters (the same key returns the same task)"}),
		Description: a.str("taskDescription", textRule{maxChars: MaxDescriptionChars, multiline: true,
			accepted: "a short description"}),
		ReturnMode:         a.enum("returnMode", "full", returnModes...),
		Agent:              a.str("agent", textRule{maxChars: MaxAgentChars, accepted: "a profile name: " + profileList(cfg)}),
		BaseRef:            a.str("baseRef", textRule{maxChars: MaxRefChars, accepted: acceptedRef}),
		IncludeUncommitted: a.boolean("includeUncommitted", true),
		Priority:           models.Priority(a.enum("priority", string(models.PriorityMedium), priorities...)),
	}
	if r.BaseRef != "" {
		a.add(checkRefName("baseRef", r.BaseRef))
	}
	r.DependsOn = decodeTaskIDList(a, "dependsOn", false, MaxDependsOn)

	profile, ok := decodeAgent(a, r, cfg)
	if cc, present := a.object("containerConfig", "an object with optional memory, cpus and timeout"); present && ok {
		decodeContainerConfig(a, cc, r, profile, cfg)
	}
	if err := a.err(); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeAgent resolves the agent profile; an unknown name is an error that
// lists the configured ones.
func decodeAgent(a *args, r *TaskWorkerRequest, cfg *config.Config) (config.Profile, bool) {
	if a.failed("agent") {
		return config.Profile{}, false
	}
	name := r.Agent
	if name == "" {
		name = cfg.DefaultAgent
	}
	p, ok := cfg.Profiles[name]
	if !ok {
		a.fail("agent", fmt.Sprintf("%s is not a configured agent profile", quote(name)), "one of "+profileList(cfg))
		return config.Profile{}, false
	}
	r.Agent = name
	return p, true
}

func profileList(cfg *config.Config) string {
	names := cfg.ProfileNames()
	if len(names) == 0 {
		return "none are configured"
	}
	return fmt.Sprintf("%q", names)
}

// decodeContainerConfig reads the resource requests; each must stay within
// the chosen profile's ceilings and the configured maximum timeout.
func decodeContainerConfig(a *args, cc map[string]any, r *TaskWorkerRequest, p config.Profile, cfg *config.Config) {
	for k := range cc {
		if !slices.Contains(containerConfigArgs, k) {
			a.fail("containerConfig."+k, "is not a container setting", "memory, cpus and timeout")
		}
	}
	var err *InputError
	if v, ok := cc["memory"]; ok && v != nil {
		r.MemoryBytes, err = parseMemory("containerConfig.memory", v, p.Ceilings.MemoryBytes)
		a.add(err)
	}
	if v, ok := cc["cpus"]; ok && v != nil {
		r.NanoCPUs, err = parseCPUs("containerConfig.cpus", v, p.Ceilings.NanoCPUs)
		a.add(err)
	}
	if v, ok := cc["timeout"]; ok && v != nil {
		r.Timeout, err = parseTimeout("containerConfig.timeout", v, cfg.MaxTaskTimeout.Duration)
		a.add(err)
	}
}

// decodeTaskIDList reads an array of task ids, dropping repeats.
func decodeTaskIDList(a *args, name string, required bool, max int) []string {
	ids := a.strList(name, required, max, fmt.Sprintf("an array of at most %d task ids", max))
	var out []string
	for i, id := range ids {
		if err := checkTaskID(fmt.Sprintf("%s[%d]", name, i), id); err != nil {
			a.add(err)
			continue
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// WorkStatusRequest is a decoded work_status call.
type WorkStatusRequest struct {
	TaskID string
	Status models.TaskState
	Limit  int
	After  *models.Cursor // the nextCursor of a previous page
}

// DecodeWorkStatus decodes work_status's arguments.
func DecodeWorkStatus(raw any) (*WorkStatusRequest, error) {
	a := newArgs(raw, workStatusArgs...)
	r := &WorkStatusRequest{
		TaskID: decodeID(a, "taskId", false, checkTaskID),
		Status: models.TaskState(a.enum("status", "", taskStates()...)),
		Limit:  int(a.integer("limit", 20, 1, 200)),
		After:  decodeCursor(a),
	}
	return r, a.err()
}

// decodeCursor reads the cursor argument, nil for the first page.
func decodeCursor(a *args) *models.Cursor {
	const accepted = "the nextCursor of a previous reply, as it was"
	s := a.str("cursor", textRule{maxChars: 256, accepted: accepted})
	if s == "" {
		return nil
	}
	c, err := models.ParseCursor(s)
	if err != nil {
		a.fail("cursor", "is not a cursor from a previous page", accepted)
		return nil
	}
	return &c
}

// decodeID reads an id argument and checks its shape.
func decodeID(a *args, name string, required bool, check func(arg, id string) *InputError) string {
	accepted := acceptedTaskID
	if name == "diffId" {
		accepted = acceptedDiffID
	}
	id := a.str(name, textRule{required: required, maxChars: 64, accepted: accepted})
	if id == "" {
		if a.has(name) && !a.failed(name) && !required {
			a.fail(name, "is empty", accepted)
		}
		return ""
	}
	if err := check(name, id); err != nil {
		a.add(err)
		return ""
	}
	return id
}

// ReviewRequest is a decoded review_changes call.
type ReviewRequest struct {
	DiffID      string
	TaskID      string
	ShowContent bool
	Detailed    bool
	After       *models.Cursor // the nextCursor of a previous page of the pending list
	File        string         // show only this file's patch
	Offset      int            // byte offset into the patch (or the file's patch) where the shown part starts
}

// DecodeReviewChanges decodes review_changes's arguments.
func DecodeReviewChanges(raw any) (*ReviewRequest, error) {
	a := newArgs(raw, reviewChangesArgs...)
	r := &ReviewRequest{
		DiffID:      decodeID(a, "diffId", false, checkDiffID),
		TaskID:      decodeID(a, "taskId", false, checkTaskID),
		ShowContent: a.boolean("showContent", true),
		Detailed:    a.enum("format", "summary", reviewFormats...) == "detailed",
		After:       decodeCursor(a),
		File:        a.str("file", textRule{maxChars: MaxPathChars, accepted: "the path of a file of the diff, as the file list shows it"}),
		Offset:      int(a.integer("offset", 0, 0, 1_000_000_000)),
	}
	if r.DiffID == "" && r.TaskID == "" && (r.File != "" || r.Offset > 0) {
		a.fail("file", "file and offset read one diff's patch", "diffId or taskId together with file or offset")
	}
	return r, a.err()
}

// ApplyRequest is a decoded apply_changes call.
type ApplyRequest struct {
	DiffID          string
	TargetWorkspace string // as given; "" = the task's work folder
	Mode            models.ApplyMode
	Confirm         bool
}

// DecodeApplyChanges decodes apply_changes's arguments.
func DecodeApplyChanges(raw any) (*ApplyRequest, error) {
	a := newArgs(raw, applyChangesArgs...)
	r := &ApplyRequest{
		DiffID: decodeID(a, "diffId", true, checkDiffID),
		TargetWorkspace: a.str("targetWorkspace", textRule{maxChars: MaxPathChars,
			accepted: "the absolute path of a git repository inside an allowed root"}),
		Mode:    models.ApplyMode(a.enum("mode", string(models.ApplyModeWorktree), applyModes...)),
		Confirm: a.boolean("confirm", true),
	}
	return r, a.err()
}

// RejectRequest is a decoded reject_changes call.
type RejectRequest struct {
	DiffID string
	Reason string
}

// DecodeRejectChanges decodes reject_changes's arguments.
func DecodeRejectChanges(raw any) (*RejectRequest, error) {
	a := newArgs(raw, rejectChangesArgs...)
	r := &RejectRequest{
		DiffID: decodeID(a, "diffId", true, checkDiffID),
		Reason: a.str("reason", textRule{maxChars: MaxReasonChars, multiline: true, accepted: "a short reason"}),
	}
	return r, a.err()
}

// RevisionRequest is a decoded request_revision call.
type RevisionRequest struct {
	DiffID               string
	Feedback             string
	PreserveCorrectParts bool
	AdditionalContext    string
}

// DecodeRequestRevision decodes request_revision's arguments.
func DecodeRequestRevision(raw any) (*RevisionRequest, error) {
	a := newArgs(raw, requestRevisionArgs...)
	r := &RevisionRequest{
		DiffID: decodeID(a, "diffId", true, checkDiffID),
		Feedback: a.str("feedback", textRule{required: true, maxChars: MaxFeedbackChars, multiline: true,
			accepted: "what should change, as text for the agent"}),
		PreserveCorrectParts: a.boolean("preserveCorrectParts", true),
		AdditionalContext: a.str("additionalContext", textRule{maxChars: MaxFeedbackChars, multiline: true,
			accepted: "extra guidance as text"}),
	}
	return r, a.err()
}

// AnswerRequest is a decoded answer_worker_question call.
type AnswerRequest struct {
	TaskID string
	Answer string
}

// DecodeAnswerWorkerQuestion decodes answer_worker_question's arguments.
func DecodeAnswerWorkerQuestion(raw any) (*AnswerRequest, error) {
	a := newArgs(raw, answerQuestionArgs...)
	r := &AnswerRequest{
		TaskID: decodeID(a, "taskId", true, checkTaskID),
		Answer: a.str("answer", textRule{required: true, maxChars: MaxFeedbackChars, multiline: true,
			accepted: "the answer to the worker's question, as text"}),
	}
	return r, a.err()
}

// CancelRequest is a decoded cancel_task call.
type CancelRequest struct {
	TaskID string
	Reason string
}

// DecodeCancelTask decodes cancel_task's arguments.
func DecodeCancelTask(raw any) (*CancelRequest, error) {
	a := newArgs(raw, cancelTaskArgs...)
	r := &CancelRequest{
		TaskID: decodeID(a, "taskId", true, checkTaskID),
		Reason: a.str("reason", textRule{maxChars: MaxReasonChars, multiline: true, accepted: "a short reason"}),
	}
	return r, a.err()
}

// WaitRequest is a decoded wait_for_tasks call.
type WaitRequest struct {
	TaskIDs []string
	Timeout time.Duration
}

// Bounds of wait_for_tasks.timeoutSeconds.
const (
	DefaultWaitSeconds = 60
	MaxWaitSeconds     = 1800
)

// DecodeWaitForTasks decodes wait_for_tasks's arguments.
func DecodeWaitForTasks(raw any) (*WaitRequest, error) {
	a := newArgs(raw, waitForTasksArgs...)
	r := &WaitRequest{
		TaskIDs: decodeTaskIDList(a, "taskIds", true, MaxWaitTasks),
		Timeout: time.Duration(a.integer("timeoutSeconds", DefaultWaitSeconds, 0, MaxWaitSeconds)) * time.Second,
	}
	return r, a.err()
}

// DecodeSystemStatus checks that system_status got no arguments.
func DecodeSystemStatus(raw any) error {
	return newArgs(raw).err()
}

// LogsRequest is a decoded view_container_logs call.
type LogsRequest struct {
	Identifier string
	Tail       int // 0: every line (bounded by the reply size)
	Filter     string
	BeforeLine int // show the lines before this line number (newest that fit); 0: up to the end
	FromLine   int // show the lines from this line number on (oldest that fit); 0: not used
	// MaxChars bounds the lines shown (JSON-escaped); 0 is the tool's
	// bound. The CLI, which prints no JSON for a model, sets a larger one.
	MaxChars int
}

// MaxCLILogChars is the bound of the lines the CLI prints at once.
const MaxCLILogChars = 256 << 10

// A Docker container id, one shape an identifier may take besides a task
// id and a container name (models.ParseContainerName).
var dockerIDPattern = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

const acceptedIdentifier = `a task id ("task-0123456789ab"), a container name ("claude-parallel-task-0123456789ab-r1") or a Docker container id (12 to 64 hex digits)`

// MaxTailLines bounds view_container_logs.tail; DefaultTailLines is what a
// call without tail shows (the reply is bounded in characters as well).
const (
	MaxTailLines     = 10_000
	DefaultTailLines = 200
)

// DecodeViewContainerLogs decodes view_container_logs's arguments.
func DecodeViewContainerLogs(raw any) (*LogsRequest, error) {
	a := newArgs(raw, viewLogsArgs...)
	r := &LogsRequest{
		Identifier: a.str("identifier", textRule{required: true, maxChars: MaxIdentifierChars, accepted: acceptedIdentifier}),
		Tail:       int(a.integer("tail", DefaultTailLines, 0, MaxTailLines)),
		Filter:     a.str("filter", textRule{maxChars: MaxFilterChars, accepted: "text to look for in each line"}),
		BeforeLine: int(a.integer("beforeLine", 0, 0, 1_000_000_000)),
		FromLine:   int(a.integer("fromLine", 0, 0, 1_000_000_000)),
	}
	if r.BeforeLine > 0 && r.FromLine > 0 {
		a.fail("fromLine", "beforeLine and fromLine read in opposite directions", "one of beforeLine and fromLine")
	}
	if id := r.Identifier; id != "" && !models.IsTaskID(id) && !isContainerName(id) && !dockerIDPattern.MatchString(id) {
		a.fail("identifier", fmt.Sprintf("%s is neither a task id, a container name nor a container id", quote(id)), acceptedIdentifier)
	}
	return r, a.err()
}

// ListLogsRequest is a decoded list_container_logs call.
type ListLogsRequest struct {
	Limit  int
	SortBy string
}

// DecodeListContainerLogs decodes list_container_logs's arguments.
func DecodeListContainerLogs(raw any) (*ListLogsRequest, error) {
	a := newArgs(raw, listLogsArgs...)
	r := &ListLogsRequest{
		Limit:  int(a.integer("limit", 20, 1, 500)),
		SortBy: a.enum("sortBy", "newest", logSortOrders...),
	}
	return r, a.err()
}

func isContainerName(s string) bool {
	_, _, ok := models.ParseContainerName(s)
	return ok
}
