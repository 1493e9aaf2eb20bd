package service

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
)

// The requests of the service are typed Go values. Every adapter builds them
// its own way (the MCP tools decode a JSON object, the CLI reads its flags,
// the dashboard its forms) and every operation checks the request it is
// given with its Check method, so a rule (a length, an id's shape, a range,
// a profile's ceiling) holds whichever adapter called. An adapter that
// decodes loosely typed input checks the same rules as it decodes, through
// the rules and Check functions below, to report a type error and a value
// error of one call together. A field's name in messages is its MCP
// argument name; adapters with other names (the CLI's flags) translate.

// Enumerations of request fields.
var (
	ReturnModes   = []string{"full", "summary"}
	Priorities    = []string{string(models.PriorityHigh), string(models.PriorityMedium), string(models.PriorityLow)}
	ReviewFormats = []string{"summary", "detailed"}
	ApplyModes    = []string{string(models.ApplyModeWorktree), string(models.ApplyModeBranch)}
	LogSortOrders = []string{"newest", "oldest", "size"}
)

// TaskStates lists the external task statuses.
func TaskStates() []string { return taskStates() }

func taskStates() []string {
	var out []string
	for _, s := range models.TaskStates() {
		out = append(out, string(s))
	}
	return out
}

// Rules of the text fields.
var (
	PromptRule = TextRule{Required: true, MaxChars: MaxPromptChars, Multiline: true,
		Accepted: "the work to do, as text for the agent"}
	WorkFolderRule = TextRule{Required: true, MaxChars: MaxPathChars,
		Accepted: "the absolute path of a git repository inside an allowed root"}
	ParentIDRule = TextRule{MaxChars: MaxParentIDChars,
		Accepted: "an idempotency key of printable characters (the same key returns the same task)"}
	DescriptionRule = TextRule{MaxChars: MaxDescriptionChars, Multiline: true, Accepted: "a short description"}
	BaseRefRule     = TextRule{MaxChars: MaxRefChars, Accepted: acceptedRef}
	TargetRule      = TextRule{MaxChars: MaxPathChars, Accepted: "the absolute path of a git repository inside an allowed root"}
	ReasonRule      = TextRule{MaxChars: MaxReasonChars, Multiline: true, Accepted: "a short reason"}
	FeedbackRule    = TextRule{Required: true, MaxChars: MaxFeedbackChars, Multiline: true,
		Accepted: "what should change, as text for the agent"}
	ContextRule = TextRule{MaxChars: MaxFeedbackChars, Multiline: true, Accepted: "extra guidance as text"}
	AnswerRule  = TextRule{Required: true, MaxChars: MaxFeedbackChars, Multiline: true,
		Accepted: "the answer to the worker's question, as text"}
	FileRule       = TextRule{MaxChars: MaxPathChars, Accepted: "the path of a file of the diff, as the file list shows it"}
	FilterRule     = TextRule{MaxChars: MaxFilterChars, Accepted: "text to look for in each line"}
	IdentifierRule = TextRule{Required: true, MaxChars: MaxIdentifierChars, Accepted: acceptedIdentifier}
	identifierRule = IdentifierRule
)

// AgentRule is the rule of the agent field, whose accepted values are the
// configured profiles.
func AgentRule(cfg *config.Config) TextRule {
	return TextRule{MaxChars: MaxAgentChars, Accepted: "a profile name: " + profileList(cfg)}
}

func profileList(cfg *config.Config) string {
	names := cfg.ProfileNames()
	if len(names) == 0 {
		return "none are configured"
	}
	return fmt.Sprintf("%q", names)
}

// Ranges of number fields.
const (
	MaxListLimit    = 200
	MaxLogListLimit = 500
	DefaultLimit    = 20
	MaxLineNumber   = 1_000_000_000
)

// Problems collects every bad field of one request, so a caller can fix
// them all at once.
type Problems struct{ list InputErrors }

// MaxReportedProblems bounds how many problems one reply lists; a call with
// hundreds of bad entries gets the first few, enough to start fixing.
const MaxReportedProblems = 10

// Add records err (nil is nothing).
func (p *Problems) Add(err *InputError) {
	if err != nil && len(p.list) < MaxReportedProblems {
		p.list = append(p.list, err)
	}
}

// Fail records a problem of field arg.
func (p *Problems) Fail(arg, problem, accepted string) {
	p.Add(&InputError{Arg: arg, Problem: problem, Accepted: accepted})
}

// Failed reports whether name already has a problem, so dependent checks
// (a base ref needs a valid work folder) are skipped instead of piling up.
func (p *Problems) Failed(name string) bool {
	for _, e := range p.list {
		if e.Arg == name || strings.HasPrefix(e.Arg, name+".") || strings.HasPrefix(e.Arg, name+"[") {
			return true
		}
	}
	return false
}

// Err returns the collected problems (an InputErrors), or nil.
func (p *Problems) Err() error {
	if len(p.list) == 0 {
		return nil
	}
	return p.list
}

// text checks a text field.
func (p *Problems) text(name, s string, rule TextRule) { p.Add(CheckText(name, s, rule)) }

// enum checks that s is one of allowed and returns it, or def when s is "".
func (p *Problems) enum(name, s, def string, allowed ...string) string {
	if s == "" {
		return def
	}
	if err := CheckEnum(name, s, allowed...); err != nil {
		p.Add(err)
		return def
	}
	return s
}

// CheckEnum checks that s is one of allowed.
func CheckEnum(name, s string, allowed ...string) *InputError {
	accepted := "one of " + strings.Join(allowed, ", ")
	if err := CheckText(name, s, TextRule{MaxChars: 64, Accepted: accepted}); err != nil {
		return err
	}
	if !slices.Contains(allowed, s) {
		return &InputError{Arg: name, Problem: fmt.Sprintf("%s is not a known value", Quote(s)), Accepted: accepted}
	}
	return nil
}

// CheckRange checks that n lies within [min, max].
func CheckRange(name string, n, min, max int64) *InputError {
	if n < min || n > max {
		return &InputError{Arg: name, Problem: fmt.Sprintf("is %d, out of range", n),
			Accepted: fmt.Sprintf("a whole number from %d to %d", min, max)}
	}
	return nil
}

// id checks an optional id field's shape.
func (p *Problems) id(name, id string, check func(arg, id string) *InputError) {
	if id != "" {
		p.Add(check(name, id))
	}
}

// requiredID checks a required id field.
func (p *Problems) requiredID(name, id, accepted string, check func(arg, id string) *InputError) {
	if id == "" {
		p.Fail(name, "is empty", accepted)
		return
	}
	p.Add(check(name, id))
}

// TaskIDList checks a list of task ids and returns it without repeats.
func (p *Problems) TaskIDList(name string, ids []string, required bool, max int) []string {
	accepted := fmt.Sprintf("an array of at most %d task ids", max)
	switch {
	case required && len(ids) == 0:
		p.Fail(name, "is an empty array", accepted)
		return nil
	case len(ids) > max:
		p.Fail(name, fmt.Sprintf("has %d entries, more than the limit of %d", len(ids), max), accepted)
		return nil
	}
	var out []string
	for i, id := range ids {
		if err := CheckTaskID(fmt.Sprintf("%s[%d]", name, i), id); err != nil {
			p.Add(err)
			continue
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// TaskWorkerRequest asks for a task (task_worker, `task start`).
type TaskWorkerRequest struct {
	Prompt             string
	WorkFolder         string // as given; StartTask resolves it
	ParentTaskID       string
	Description        string
	ReturnMode         string // "" is full
	Agent              string // "" is the default profile; Check resolves it
	BaseRef            string
	IncludeUncommitted bool
	DependsOn          []string
	Priority           models.Priority // "" is medium
	MemoryBytes        int64           // 0: the profile's default
	NanoCPUs           int64
	Timeout            time.Duration
}

// Check checks r against the rules and the configuration, fills defaults
// and resolves the agent profile.
func (r *TaskWorkerRequest) Check(cfg *config.Config) error {
	p := &Problems{}
	p.text("task", r.Prompt, PromptRule)
	p.text("workFolder", r.WorkFolder, WorkFolderRule)
	p.text("parentTaskId", r.ParentTaskID, ParentIDRule)
	p.text("taskDescription", r.Description, DescriptionRule)
	r.ReturnMode = p.enum("returnMode", r.ReturnMode, "full", ReturnModes...)
	r.Priority = models.Priority(p.enum("priority", string(r.Priority), string(models.PriorityMedium), Priorities...))
	if r.BaseRef != "" {
		p.Add(CheckRefName("baseRef", r.BaseRef))
	}
	r.DependsOn = p.TaskIDList("dependsOn", r.DependsOn, false, MaxDependsOn)
	p.text("agent", r.Agent, AgentRule(cfg))
	profile, ok := ResolveAgent(p, &r.Agent, cfg)
	if ok {
		if r.MemoryBytes != 0 {
			p.Add(CheckMemory("containerConfig.memory", r.MemoryBytes, profile.Ceilings.MemoryBytes))
		}
		if r.NanoCPUs != 0 {
			p.Add(CheckCPUs("containerConfig.cpus", r.NanoCPUs, profile.Ceilings.NanoCPUs))
		}
		if r.Timeout != 0 {
			p.Add(CheckTimeout("containerConfig.timeout", r.Timeout, cfg.MaxTaskTimeout.Duration))
		}
	}
	return p.Err()
}

// ResolveAgent resolves the agent profile named by *name ("" is the
// configured default, written back); an unknown name is a problem that lists
// the configured ones.
func ResolveAgent(p *Problems, name *string, cfg *config.Config) (config.Profile, bool) {
	if p.Failed("agent") {
		return config.Profile{}, false
	}
	n := *name
	if n == "" {
		n = cfg.DefaultAgent
	}
	prof, ok := cfg.Profiles[n]
	if !ok {
		p.Fail("agent", fmt.Sprintf("%s is not a configured agent profile", Quote(n)), "one of "+profileList(cfg))
		return config.Profile{}, false
	}
	*name = n
	return prof, true
}

// WorkStatusRequest asks for one task in full, or a page of tasks.
type WorkStatusRequest struct {
	TaskID string
	Status models.TaskState // "" is every status
	Limit  int              // 0 is DefaultLimit
	After  *models.Cursor   // the nextCursor of a previous page
}

// Check checks r and fills defaults.
func (r *WorkStatusRequest) Check() error {
	p := &Problems{}
	p.id("taskId", r.TaskID, CheckTaskID)
	r.Status = models.TaskState(p.enum("status", string(r.Status), "", taskStates()...))
	if r.Limit == 0 {
		r.Limit = DefaultLimit
	}
	p.Add(CheckRange("limit", int64(r.Limit), 1, MaxListLimit))
	return p.Err()
}

// ReviewRequest asks for one diff, or the pending ones.
type ReviewRequest struct {
	DiffID      string
	TaskID      string
	ShowContent bool
	Detailed    bool
	After       *models.Cursor // the nextCursor of a previous page of the pending list
	File        string         // show only this file's patch
	Offset      int            // byte offset into the patch (or the file's patch) where the shown part starts
}

// Check checks r.
func (r *ReviewRequest) Check() error {
	p := &Problems{}
	p.id("diffId", r.DiffID, CheckDiffID)
	p.id("taskId", r.TaskID, CheckTaskID)
	p.text("file", r.File, FileRule)
	p.Add(CheckRange("offset", int64(r.Offset), 0, MaxLineNumber))
	CheckPatchPart(p, r)
	return p.Err()
}

// CheckPatchPart refuses a file or offset without the diff they read.
func CheckPatchPart(p *Problems, r *ReviewRequest) {
	if r.DiffID == "" && r.TaskID == "" && (r.File != "" || r.Offset > 0) {
		p.Fail("file", "file and offset read one diff's patch", "diffId or taskId together with file or offset")
	}
}

// ApplyRequest asks for a diff to be applied (or previewed).
type ApplyRequest struct {
	DiffID          string
	TargetWorkspace string           // as given; "" = the task's work folder
	Mode            models.ApplyMode // "" is worktree
	Confirm         bool             // false previews
}

// Check checks r and fills defaults.
func (r *ApplyRequest) Check() error {
	p := &Problems{}
	p.requiredID("diffId", r.DiffID, AcceptedDiffID, CheckDiffID)
	p.text("targetWorkspace", r.TargetWorkspace, TargetRule)
	r.Mode = models.ApplyMode(p.enum("mode", string(r.Mode), string(models.ApplyModeWorktree), ApplyModes...))
	return p.Err()
}

// RejectRequest asks for a diff to be rejected.
type RejectRequest struct {
	DiffID string
	Reason string
}

// Check checks r.
func (r *RejectRequest) Check() error {
	p := &Problems{}
	p.requiredID("diffId", r.DiffID, AcceptedDiffID, CheckDiffID)
	p.text("reason", r.Reason, ReasonRule)
	return p.Err()
}

// RevisionRequest asks the agent to revise a diff.
type RevisionRequest struct {
	DiffID               string
	Feedback             string
	PreserveCorrectParts bool
	AdditionalContext    string
}

// Check checks r.
func (r *RevisionRequest) Check() error {
	p := &Problems{}
	p.requiredID("diffId", r.DiffID, AcceptedDiffID, CheckDiffID)
	p.text("feedback", r.Feedback, FeedbackRule)
	p.text("additionalContext", r.AdditionalContext, ContextRule)
	return p.Err()
}

// AnswerRequest answers a task's question.
type AnswerRequest struct {
	TaskID string
	Answer string
}

// Check checks r.
func (r *AnswerRequest) Check() error {
	p := &Problems{}
	p.requiredID("taskId", r.TaskID, AcceptedTaskID, CheckTaskID)
	p.text("answer", r.Answer, AnswerRule)
	return p.Err()
}

// CancelRequest asks for a task to be cancelled.
type CancelRequest struct {
	TaskID string
	Reason string
}

// Check checks r.
func (r *CancelRequest) Check() error {
	p := &Problems{}
	p.requiredID("taskId", r.TaskID, AcceptedTaskID, CheckTaskID)
	p.text("reason", r.Reason, ReasonRule)
	return p.Err()
}

// WaitRequest waits for tasks.
type WaitRequest struct {
	TaskIDs []string
	Timeout time.Duration // 0 answers at once
}

// Bounds of a wait.
const (
	DefaultWaitSeconds = 60
	MaxWaitSeconds     = 1800
)

// Check checks r and drops repeated ids. Waits longer than MaxWaitSeconds
// are an adapter's choice (the CLI's --wait has no bound), so only a
// negative timeout is refused.
func (r *WaitRequest) Check() error {
	p := &Problems{}
	r.TaskIDs = p.TaskIDList("taskIds", r.TaskIDs, true, MaxWaitTasks)
	if r.Timeout < 0 {
		p.Fail("timeoutSeconds", fmt.Sprintf("is %s, out of range", r.Timeout), "zero or more seconds")
	}
	return p.Err()
}

// LogsRequest asks for a task run's output.
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

// MaxTailLines bounds the lines of one reply; DefaultTailLines is what a
// tool call without tail shows (the reply is bounded in characters as well).
const (
	MaxTailLines     = 10_000
	DefaultTailLines = 200
)

// Check checks r.
func (r *LogsRequest) Check() error {
	p := &Problems{}
	p.text("identifier", r.Identifier, IdentifierRule)
	p.Add(CheckRange("tail", int64(r.Tail), 0, MaxTailLines))
	p.text("filter", r.Filter, FilterRule)
	p.Add(CheckRange("beforeLine", int64(r.BeforeLine), 0, MaxLineNumber))
	p.Add(CheckRange("fromLine", int64(r.FromLine), 0, MaxLineNumber))
	if r.MaxChars < 0 {
		p.Fail("maxChars", fmt.Sprintf("is %d, out of range", r.MaxChars), "zero or more characters")
	}
	CheckLogsShape(p, r)
	return p.Err()
}

// CheckLogsShape checks what ties the fields of a logs request together:
// one reading direction, and an identifier of a known shape.
func CheckLogsShape(p *Problems, r *LogsRequest) {
	if r.BeforeLine > 0 && r.FromLine > 0 {
		p.Fail("fromLine", "beforeLine and fromLine read in opposite directions", "one of beforeLine and fromLine")
	}
	if id := r.Identifier; id != "" && !p.Failed("identifier") && !models.IsTaskID(id) && !isContainerName(id) && !dockerIDPattern.MatchString(id) {
		p.Fail("identifier", fmt.Sprintf("%s is neither a task id, a container name nor a container id", Quote(id)), acceptedIdentifier)
	}
}

func isContainerName(s string) bool {
	_, _, ok := models.ParseContainerName(s)
	return ok
}

// ListLogsRequest asks for the recorded run logs.
type ListLogsRequest struct {
	Limit  int    // 0 is DefaultLimit
	SortBy string // "" is newest
}

// Check checks r and fills defaults.
func (r *ListLogsRequest) Check() error {
	p := &Problems{}
	if r.Limit == 0 {
		r.Limit = DefaultLimit
	}
	p.Add(CheckRange("limit", int64(r.Limit), 1, MaxLogListLimit))
	r.SortBy = p.enum("sortBy", r.SortBy, "newest", LogSortOrders...)
	return p.Err()
}
