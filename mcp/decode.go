package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// The Decode functions turn one call's arguments (the decoded JSON object)
// into the service's typed request. This is the MCP adapter's half of input
// checking: JSON types, presence, unknown arguments, defaults of absent
// arguments, and the service's rules applied as each argument is read (the
// rules themselves live in package service), so a wrong type and a bad value
// of one call are reported together. The service's operations then check
// the typed request again (as they do for the CLI and the dashboard) and
// check paths, git and existence.

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

// DecodeTaskWorker decodes task_worker's arguments.
func DecodeTaskWorker(raw any, cfg *config.Config) (*service.TaskWorkerRequest, error) {
	a := newArgs(raw, taskWorkerArgs...)
	r := &service.TaskWorkerRequest{
		Prompt:             a.str("task", service.PromptRule),
		WorkFolder:         a.str("workFolder", service.WorkFolderRule),
		ParentTaskID:       a.str("parentTaskId", service.ParentIDRule),
		Description:        a.str("taskDescription", service.DescriptionRule),
		ReturnMode:         a.enum("returnMode", "full", service.ReturnModes...),
		Agent:              a.str("agent", service.AgentRule(cfg)),
		BaseRef:            a.str("baseRef", service.BaseRefRule),
		IncludeUncommitted: a.boolean("includeUncommitted", true),
		Priority:           models.Priority(a.enum("priority", string(models.PriorityMedium), service.Priorities...)),
	}
	if r.BaseRef != "" {
		a.add(service.CheckRefName("baseRef", r.BaseRef))
	}
	r.DependsOn = decodeTaskIDList(a, "dependsOn", false, service.MaxDependsOn)

	profile, ok := service.ResolveAgent(a.Problems, &r.Agent, cfg)
	if cc, present := a.object("containerConfig", "an object with optional memory, cpus and timeout"); present && ok {
		decodeContainerConfig(a, cc, r, profile, cfg)
	}
	if err := a.err(); err != nil {
		return nil, err
	}
	return r, nil
}

// decodeContainerConfig reads the resource requests; each must stay within
// the chosen profile's ceilings and the configured maximum timeout.
func decodeContainerConfig(a *args, cc map[string]any, r *service.TaskWorkerRequest, p config.Profile, cfg *config.Config) {
	for k := range cc {
		if !slices.Contains(containerConfigArgs, k) {
			a.fail("containerConfig."+k, "is not a container setting", "memory, cpus and timeout")
		}
	}
	var err *service.InputError
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
	return a.TaskIDList(name, ids, false, max)
}

// DecodeWorkStatus decodes work_status's arguments.
func DecodeWorkStatus(raw any) (*service.WorkStatusRequest, error) {
	a := newArgs(raw, workStatusArgs...)
	r := &service.WorkStatusRequest{
		TaskID: decodeID(a, "taskId", false, service.CheckTaskID),
		Status: models.TaskState(a.enum("status", "", service.TaskStates()...)),
		Limit:  int(a.integer("limit", service.DefaultLimit, 1, service.MaxListLimit)),
		After:  decodeCursor(a),
	}
	return r, a.err()
}

// decodeCursor reads the cursor argument, nil for the first page.
func decodeCursor(a *args) *models.Cursor {
	const accepted = "the nextCursor of a previous reply, as it was"
	s := a.str("cursor", service.TextRule{MaxChars: 256, Accepted: accepted})
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
func decodeID(a *args, name string, required bool, check func(arg, id string) *service.InputError) string {
	accepted := service.AcceptedTaskID
	if name == "diffId" {
		accepted = service.AcceptedDiffID
	}
	id := a.str(name, service.TextRule{Required: required, MaxChars: 64, Accepted: accepted})
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

// DecodeReviewChanges decodes review_changes's arguments.
func DecodeReviewChanges(raw any) (*service.ReviewRequest, error) {
	a := newArgs(raw, reviewChangesArgs...)
	r := &service.ReviewRequest{
		DiffID:      decodeID(a, "diffId", false, service.CheckDiffID),
		TaskID:      decodeID(a, "taskId", false, service.CheckTaskID),
		ShowContent: a.boolean("showContent", true),
		Detailed:    a.enum("format", "summary", service.ReviewFormats...) == "detailed",
		After:       decodeCursor(a),
		File:        a.str("file", service.FileRule),
		Offset:      int(a.integer("offset", 0, 0, service.MaxLineNumber)),
	}
	service.CheckPatchPart(a.Problems, r)
	return r, a.err()
}

// DecodeApplyChanges decodes apply_changes's arguments.
func DecodeApplyChanges(raw any) (*service.ApplyRequest, error) {
	a := newArgs(raw, applyChangesArgs...)
	r := &service.ApplyRequest{
		DiffID:          decodeID(a, "diffId", true, service.CheckDiffID),
		TargetWorkspace: a.str("targetWorkspace", service.TargetRule),
		Mode:            models.ApplyMode(a.enum("mode", string(models.ApplyModeWorktree), service.ApplyModes...)),
		Confirm:         a.boolean("confirm", true),
	}
	return r, a.err()
}

// DecodeRejectChanges decodes reject_changes's arguments.
func DecodeRejectChanges(raw any) (*service.RejectRequest, error) {
	a := newArgs(raw, rejectChangesArgs...)
	r := &service.RejectRequest{
		DiffID: decodeID(a, "diffId", true, service.CheckDiffID),
		Reason: a.str("reason", service.ReasonRule),
	}
	return r, a.err()
}

// DecodeRequestRevision decodes request_revision's arguments.
func DecodeRequestRevision(raw any) (*service.RevisionRequest, error) {
	a := newArgs(raw, requestRevisionArgs...)
	r := &service.RevisionRequest{
		DiffID:               decodeID(a, "diffId", true, service.CheckDiffID),
		Feedback:             a.str("feedback", service.FeedbackRule),
		PreserveCorrectParts: a.boolean("preserveCorrectParts", true),
		AdditionalContext:    a.str("additionalContext", service.ContextRule),
	}
	return r, a.err()
}

// DecodeAnswerWorkerQuestion decodes answer_worker_question's arguments.
func DecodeAnswerWorkerQuestion(raw any) (*service.AnswerRequest, error) {
	a := newArgs(raw, answerQuestionArgs...)
	r := &service.AnswerRequest{
		TaskID: decodeID(a, "taskId", true, service.CheckTaskID),
		Answer: a.str("answer", service.AnswerRule),
	}
	return r, a.err()
}

// DecodeCancelTask decodes cancel_task's arguments.
func DecodeCancelTask(raw any) (*service.CancelRequest, error) {
	a := newArgs(raw, cancelTaskArgs...)
	r := &service.CancelRequest{
		TaskID: decodeID(a, "taskId", true, service.CheckTaskID),
		Reason: a.str("reason", service.ReasonRule),
	}
	return r, a.err()
}

// DecodeWaitForTasks decodes wait_for_tasks's arguments.
func DecodeWaitForTasks(raw any) (*service.WaitRequest, error) {
	a := newArgs(raw, waitForTasksArgs...)
	r := &service.WaitRequest{
		TaskIDs: decodeTaskIDList(a, "taskIds", true, service.MaxWaitTasks),
		Timeout: time.Duration(a.integer("timeoutSeconds", service.DefaultWaitSeconds, 0, service.MaxWaitSeconds)) * time.Second,
	}
	return r, a.err()
}

// DecodeSystemStatus checks that system_status got no arguments.
func DecodeSystemStatus(raw any) error {
	return newArgs(raw).err()
}

// DecodeViewContainerLogs decodes view_container_logs's arguments.
func DecodeViewContainerLogs(raw any) (*service.LogsRequest, error) {
	a := newArgs(raw, viewLogsArgs...)
	r := &service.LogsRequest{
		Identifier: a.str("identifier", service.IdentifierRule),
		Tail:       int(a.integer("tail", service.DefaultTailLines, 0, service.MaxTailLines)),
		Filter:     a.str("filter", service.FilterRule),
		BeforeLine: int(a.integer("beforeLine", 0, 0, service.MaxLineNumber)),
		FromLine:   int(a.integer("fromLine", 0, 0, service.MaxLineNumber)),
	}
	service.CheckLogsShape(a.Problems, r)
	return r, a.err()
}

// DecodeListContainerLogs decodes list_container_logs's arguments.
func DecodeListContainerLogs(raw any) (*service.ListLogsRequest, error) {
	a := newArgs(raw, listLogsArgs...)
	r := &service.ListLogsRequest{
		Limit:  int(a.integer("limit", service.DefaultLimit, 1, service.MaxLogListLimit)),
		SortBy: a.enum("sortBy", "newest", service.LogSortOrders...),
	}
	return r, a.err()
}

// args reads one tool call's arguments from the decoded JSON object,
// collecting every problem instead of stopping at the first. Getters return
// the zero value for a missing or bad argument; callers check errs() once.
type args struct {
	raw map[string]any
	*service.Problems
}

// newArgs checks that raw is a JSON object (nil counts as empty) whose keys
// are all among known, so a misspelt optional argument is reported instead
// of silently ignored.
func newArgs(raw any, known ...string) *args {
	a := &args{Problems: &service.Problems{}}
	switch v := raw.(type) {
	case nil:
		a.raw = map[string]any{}
	case map[string]any:
		a.raw = v
	default:
		a.fail("arguments", fmt.Sprintf("must be a JSON object, got %s", jsonType(v)), "an object with the tool's named arguments")
		a.raw = map[string]any{}
		return a
	}
	var unknown []string
	for k := range a.raw {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		accepted := "no arguments"
		if len(known) > 0 {
			accepted = strings.Join(known, ", ")
		}
		a.fail(service.Quote(k), "is not an argument of this tool", accepted)
	}
	return a
}

func (a *args) fail(arg, problem, accepted string) { a.Fail(arg, problem, accepted) }
func (a *args) add(err *service.InputError)        { a.Add(err) }
func (a *args) failed(name string) bool            { return a.Failed(name) }
func (a *args) err() error                         { return a.Err() }

func (a *args) has(name string) bool {
	v, ok := a.raw[name]
	return ok && v != nil
}

// str reads a string argument. A JSON null counts as absent.
func (a *args) str(name string, rule service.TextRule) string {
	v, ok := a.raw[name]
	if !ok || v == nil {
		if rule.Required {
			a.fail(name, "is required but missing", rule.Accepted)
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		a.fail(name, "must be a string, got "+jsonType(v), rule.Accepted)
		return ""
	}
	if err := service.CheckText(name, s, rule); err != nil {
		a.add(err)
		return ""
	}
	return s
}

// boolean reads a boolean argument with a default.
func (a *args) boolean(name string, def bool) bool {
	v, ok := a.raw[name]
	if !ok || v == nil {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		a.fail(name, "must be a boolean, got "+jsonType(v), "true or false")
		return def
	}
	return b
}

// integer reads a whole number within [min, max] with a default.
func (a *args) integer(name string, def, min, max int64) int64 {
	v, ok := a.raw[name]
	if !ok || v == nil {
		return def
	}
	accepted := fmt.Sprintf("a whole number from %d to %d", min, max)
	f, ok := number(v)
	if !ok {
		a.fail(name, "must be a number, got "+jsonType(v), accepted)
		return def
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		a.fail(name, fmt.Sprintf("must be a whole number, got %s", formatNumber(f)), accepted)
		return def
	}
	if f < float64(min) || f > float64(max) {
		a.fail(name, fmt.Sprintf("is %s, out of range", formatNumber(f)), accepted)
		return def
	}
	return int64(f)
}

// enum reads a string that must be one of allowed, with a default.
func (a *args) enum(name, def string, allowed ...string) string {
	accepted := "one of " + strings.Join(allowed, ", ")
	s := a.str(name, service.TextRule{MaxChars: 64, Accepted: accepted})
	if s == "" {
		if a.has(name) && !a.failed(name) {
			a.fail(name, "is empty", accepted)
		}
		return def
	}
	if err := service.CheckEnum(name, s, allowed...); err != nil {
		a.add(err)
		return def
	}
	return s
}

// strList reads an array of strings with at most maxItems entries.
func (a *args) strList(name string, required bool, maxItems int, accepted string) []string {
	v, ok := a.raw[name]
	if !ok || v == nil {
		if required {
			a.fail(name, "is required but missing", accepted)
		}
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		a.fail(name, "must be an array of strings, got "+jsonType(v), accepted)
		return nil
	}
	if required && len(list) == 0 {
		a.fail(name, "is an empty array", accepted)
		return nil
	}
	if len(list) > maxItems {
		a.fail(name, fmt.Sprintf("has %d entries, more than the limit of %d", len(list), maxItems), accepted)
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			a.fail(fmt.Sprintf("%s[%d]", name, i), "must be a string, got "+jsonType(e), accepted)
			continue
		}
		out = append(out, s)
	}
	return out
}

// object reads a nested JSON object.
func (a *args) object(name string, accepted string) (map[string]any, bool) {
	v, ok := a.raw[name]
	if !ok || v == nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		a.fail(name, "must be an object, got "+jsonType(v), accepted)
		return nil, false
	}
	return m, true
}

// number converts the numeric forms a decoded argument can take: json.Number
// (wire decoding keeps precision), float64 (encoding/json's default) and the
// Go integers the CLI puts in its argument maps.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return f, true // ±Inf or 0: callers report it out of range
		}
		return f, err == nil
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	}
	return 0, false
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// jsonType names the JSON type of a decoded value, for messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, float32, int, int64, int32:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// parseMemory reads containerConfig.memory: a size string ("2g", "512m") or
// a byte count, at least 6m and at most the profile's ceiling.
func parseMemory(arg string, v any, ceiling int64) (int64, *service.InputError) {
	accepted := service.MemoryAccepted(ceiling)
	var n int64
	switch x := v.(type) {
	case string:
		b, err := config.ParseBytes(x)
		if err != nil {
			return 0, &service.InputError{Arg: arg, Problem: fmt.Sprintf("%s is not a size", service.Quote(x)), Accepted: accepted}
		}
		n = b
	default:
		f, ok := number(v)
		if !ok {
			return 0, &service.InputError{Arg: arg, Problem: "must be a size string or a number of bytes, got " + jsonType(v), Accepted: accepted}
		}
		if f != math.Trunc(f) || f < 0 || f > float64(math.MaxInt64/2) {
			return 0, &service.InputError{Arg: arg, Problem: fmt.Sprintf("%s is not a whole number of bytes", formatNumber(f)), Accepted: accepted}
		}
		n = int64(f)
	}
	if err := service.CheckMemory(arg, n, ceiling); err != nil {
		return 0, err
	}
	return n, nil
}

// parseCPUs reads containerConfig.cpus: a number or numeric string of CPUs
// (the original took "2"), from 0.01 to the profile's ceiling.
func parseCPUs(arg string, v any, ceilingNano int64) (int64, *service.InputError) {
	accepted := service.CPUsAccepted(ceilingNano)
	f, ok := number(v)
	if s, isStr := v.(string); isStr {
		var err error
		f, err = parseFloatStrict(s)
		ok = err == nil
	}
	if !ok {
		return 0, &service.InputError{Arg: arg, Problem: "must be a number of CPUs, got " + describeValue(v), Accepted: accepted}
	}
	nano := math.Round(f * 1e9)
	if math.IsNaN(f) || nano < 0 || nano > float64(math.MaxInt64/2) {
		return 0, &service.InputError{Arg: arg, Problem: fmt.Sprintf("%s CPUs is out of range", formatNumber(f)), Accepted: accepted}
	}
	if err := service.CheckCPUs(arg, int64(nano), ceilingNano); err != nil {
		return 0, err
	}
	return int64(nano), nil
}

// parseTimeout reads containerConfig.timeout: a number of milliseconds (the
// unit of the original claude-parallel-work) or a duration string ("30m",
// "2h"), from 10s to the configured maximum.
func parseTimeout(arg string, v any, max time.Duration) (time.Duration, *service.InputError) {
	accepted := service.TimeoutAccepted(max)
	var d time.Duration
	switch x := v.(type) {
	case string:
		parsed, err := config.ParseDuration(x)
		if err != nil {
			return 0, &service.InputError{Arg: arg, Problem: fmt.Sprintf("%s is not a duration", service.Quote(x)), Accepted: accepted}
		}
		d = parsed
	default:
		ms, ok := number(v)
		if !ok {
			return 0, &service.InputError{Arg: arg, Problem: "must be a duration string or a number of milliseconds, got " + jsonType(v), Accepted: accepted}
		}
		if math.IsNaN(ms) || ms < 0 || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
			return 0, &service.InputError{Arg: arg, Problem: fmt.Sprintf("%s ms is out of range", formatNumber(ms)), Accepted: accepted}
		}
		d = time.Duration(ms * float64(time.Millisecond))
	}
	if err := service.CheckTimeout(arg, d, max); err != nil {
		return 0, err
	}
	return d, nil
}

func parseFloatStrict(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("not a finite number")
	}
	return f, nil
}

func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return service.Quote(s)
	}
	return jsonType(v)
}
