package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// One constructor per tool: each returns the tool's definition (names,
// descriptions, input and output schemas, hints) and its handler with the
// front end injected. Handlers decode the raw arguments themselves, so a
// wrong type or a missing field gets the same readable error result as any
// other bad input; they never run Docker or change a repository.

// markdowner is a structured result that can render itself as text.
type markdowner interface{ Markdown() string }

// reply turns an operation's outcome into a tool result: structured content
// plus markdown on success, an error result for bad input or a store that
// cannot take the write (a full disk: the caller, or its user, can act on
// that and should read why), and a Go error (a protocol error) for any other
// infrastructure failure.
func reply(out markdowner, err error) (*mcp.CallToolResult, error) {
	if err != nil {
		if service.IsInputError(err) || errors.Is(err, models.ErrDiskFull) {
			return mcp.NewToolResultError(err.Error()), nil
		}
		return nil, err
	}
	// The text first: rendering it fills the result's suggested next calls.
	text := out.Markdown()
	// Encoded here once: the null pruning, the redaction and the output
	// schema check read these bytes, and the response embeds them.
	structured, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode %T result: %w", out, err)
	}
	return mcp.NewToolResultStructured(json.RawMessage(structured), text), nil
}

func badInput(err error) (*mcp.CallToolResult, error) { return reply(nil, err) }

// handler is the handler of a tool whose arguments decode reads and whose
// operation is op: bad arguments get an error result, op's outcome a reply.
func handler[R any, V markdowner](decode func(raw any) (R, error), op func(context.Context, R) (V, error)) server.ToolHandlerFunc {
	return progressHandler(decode, func(ctx context.Context, r R, _ service.ProgressFunc) (V, error) { return op(ctx, r) })
}

// progressHandler is handler for an operation that waits, telling the caller
// how it goes through progress notifications when the call asked for them.
func progressHandler[R any, V markdowner](decode func(raw any) (R, error),
	op func(context.Context, R, service.ProgressFunc) (V, error)) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		r, err := decode(toolArguments(req))
		if err != nil {
			return badInput(err)
		}
		return reply(op(ctx, r, progressTo(ctx, req)))
	}
}

// Annotation presets: every tool works on this machine only (closed world).
func readOnlyTool(title string) mcp.ToolOption {
	return mcp.WithToolAnnotation(mcp.ToolAnnotation{Title: title, ReadOnlyHint: mcp.ToBoolPtr(true),
		DestructiveHint: mcp.ToBoolPtr(false), IdempotentHint: mcp.ToBoolPtr(true), OpenWorldHint: mcp.ToBoolPtr(false)})
}

func writingTool(title string, destructive, idempotent bool) mcp.ToolOption {
	return mcp.WithToolAnnotation(mcp.ToolAnnotation{Title: title, ReadOnlyHint: mcp.ToBoolPtr(false),
		DestructiveHint: mcp.ToBoolPtr(destructive), IdempotentHint: mcp.ToBoolPtr(idempotent), OpenWorldHint: mcp.ToBoolPtr(false)})
}

// closedInput declares what the handlers enforce: an argument the schema
// does not name is refused.
var closedInput = mcp.WithSchemaAdditionalProperties(false)

var (
	taskIDProp = []mcp.PropertyOption{mcp.Pattern(models.TaskIDPattern)}
	diffIDProp = []mcp.PropertyOption{mcp.Pattern(models.DiffIDPattern)}
)

func with(opts []mcp.PropertyOption, more ...mcp.PropertyOption) []mcp.PropertyOption {
	return append(append([]mcp.PropertyOption{}, opts...), more...)
}

// TaskWorkerTool starts a coding-agent task in its own container.
func TaskWorkerTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("task_worker",
		closedInput,
		mcp.WithDescription(`Start a coding-agent task in its own Docker container, on its own copy of a git repository. Returns at once with the task id; the task runs in the background.

Workflow: task_worker → wait_for_tasks (or work_status) → review_changes → apply_changes, request_revision or reject_changes.
The repository itself is not touched until you apply the resulting diff. By default the task sees the work folder as it is now, uncommitted and untracked files included.
Give a parentTaskId to make the call idempotent: the same id again returns the same task.`),
		writingTool("Start a task", false, false),
		mcp.WithString("task", mcp.Required(), mcp.MaxLength(service.MaxPromptChars),
			mcp.Description("What the agent should do, in plain language (for the shell agent: a shell script).")),
		mcp.WithString("workFolder", mcp.Required(), mcp.MaxLength(service.MaxPathChars),
			mcp.Description("Absolute path of the git repository (or a folder in it) to work on; it must lie inside the configured allowed roots.")),
		mcp.WithString("parentTaskId", mcp.MaxLength(service.MaxParentIDChars),
			mcp.Description("Idempotency key chosen by the caller: a second call with the same key returns the first task instead of starting another.")),
		mcp.WithString("taskDescription", mcp.MaxLength(service.MaxDescriptionChars),
			mcp.Description("Short description shown in status lists.")),
		mcp.WithString("returnMode", mcp.Enum(service.ReturnModes...),
			mcp.Description("How much the results should say (default full).")),
		mcp.WithObject("containerConfig", mcp.Description("Resource limits for the task's container, within the agent profile's ceilings."),
			mcp.Properties(map[string]any{
				// One plain type each (portable across clients); the decoder
				// still takes the other forms claude-parallel-work callers send.
				"memory":  map[string]any{"type": "string", "description": `Memory limit: a size such as "2g" or "512m" (a number of bytes is accepted too).`},
				"cpus":    map[string]any{"type": "number", "description": `CPU limit, e.g. 1.5 (a string such as "2" is accepted too).`},
				"timeout": map[string]any{"type": "string", "description": `Run time limit: a duration such as "30m" or "1h30m" (a number of milliseconds, as in claude-parallel-work, is accepted too).`},
			}),
			mcp.AdditionalProperties(false)),
		mcp.WithString("agent", mcp.MaxLength(service.MaxAgentChars),
			mcp.Description("Agent profile to run (see system_status for the configured ones); default is the configured default agent.")),
		mcp.WithString("baseRef", mcp.MaxLength(service.MaxRefChars),
			mcp.Description("Branch, tag or commit to start from instead of the work folder as it is now.")),
		mcp.WithBoolean("includeUncommitted", mcp.DefaultBool(true),
			mcp.Description("Include uncommitted and untracked (not ignored) files of the work folder (default true).")),
		mcp.WithArray("dependsOn", mcp.MaxItems(service.MaxDependsOn), mcp.WithStringItems(taskIDProp...),
			mcp.Description("Ids of tasks that must complete before this one starts.")),
		mcp.WithString("priority", mcp.Enum(service.Priorities...),
			mcp.Description("Admission priority when more tasks wait than may run at once (default medium).")),
		mcp.WithOutputSchema[service.TaskWorkerResult](),
	)
	decode := func(raw any) (*service.TaskWorkerRequest, error) { return DecodeTaskWorker(raw, fe.Config()) }
	return tool, handler(decode, fe.StartTask)
}

// WorkStatusTool reports one task in full, or a list with counts.
func WorkStatusTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("work_status",
		closedInput,
		mcp.WithDescription(`Show a task in full (status, phase, reason, times, exit code, run number, diff id, files changed, agent progress, pending question, timeline), or without taskId the newest tasks with counts by status.

Status is one of pending, running, completed, failed, cancelled, timed_out, needs_input. A needs_input task waits for answer_worker_question.`),
		readOnlyTool("Task status"),
		mcp.WithString("taskId", with(taskIDProp, mcp.Description("Task to show in full."))...),
		mcp.WithString("status", mcp.Enum(service.TaskStates()...), mcp.Description("Only list tasks with this status.")),
		mcp.WithNumber("limit", mcp.Min(1), mcp.Max(200), mcp.DefaultNumber(20), mcp.Description("How many tasks to list (default 20).")),
		mcp.WithString("cursor", mcp.MaxLength(256), mcp.Description("nextCursor of the previous reply, for the next page of the list.")),
		mcp.WithOutputSchema[service.WorkStatusResult](),
	)
	return tool, handler(DecodeWorkStatus, fe.WorkStatus)
}

// ReviewChangesTool shows a diff, or the pending diffs.
func ReviewChangesTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("review_changes",
		closedInput,
		mcp.WithDescription(`Show the changes a task made: statistics, the per-file list and the patch. Name the diff by diffId, or by taskId for the task's newest diff; with neither, list every diff waiting for a decision.

A large patch or list is shown in parts; the reply's next names the call for the rest (offset, file or cursor).

Next: apply_changes, request_revision or reject_changes.`),
		readOnlyTool("Review changes"),
		mcp.WithString("diffId", with(diffIDProp, mcp.Description("Diff to show."))...),
		mcp.WithString("taskId", with(taskIDProp, mcp.Description("Show the newest diff of this task."))...),
		mcp.WithBoolean("showContent", mcp.DefaultBool(true), mcp.Description("Include the patch (default true).")),
		mcp.WithString("format", mcp.Enum(service.ReviewFormats...),
			mcp.Description("summary (default) or detailed; in the pending list, patches are only included when detailed.")),
		mcp.WithString("cursor", mcp.MaxLength(256), mcp.Description("nextCursor of the previous reply, for the next page of the pending list.")),
		mcp.WithString("file", mcp.MaxLength(service.MaxPathChars), mcp.Description("Show only this file's patch (a path from the file list).")),
		mcp.WithNumber("offset", mcp.Min(0), mcp.Description("Byte offset in the patch (or the file's patch) to show from: the nextOffset of the previous reply.")),
		mcp.WithOutputSchema[service.ReviewResult](),
	)
	return tool, handler(DecodeReviewChanges, fe.ReviewChanges)
}

// ApplyChangesTool applies a diff and waits for the outcome.
func ApplyChangesTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("apply_changes",
		closedInput,
		mcp.WithDescription(fmt.Sprintf(`Apply a reviewed diff to a repository, then wait (up to %s, with progress notifications) for the outcome: applied (with target and branch), conflict (with the conflicting files) or failed (with the reason). If the wait ends first the answer says the apply is still in progress; call again with the same arguments to see the outcome.

mode worktree (default) patches the target's working tree; mode branch creates the branch claude-parallel/<task id> in the target without touching its working tree. Applying twice is harmless.`, config.D(fe.ApplyWait()))),
		writingTool("Apply changes", true, true),
		mcp.WithString("diffId", with(diffIDProp, mcp.Required(), mcp.Description("Diff to apply."))...),
		mcp.WithString("targetWorkspace", mcp.MaxLength(service.MaxPathChars),
			mcp.Description("Absolute path of the repository to apply to (default: the task's work folder); it must lie inside the allowed roots.")),
		mcp.WithString("mode", mcp.Enum(service.ApplyModes...), mcp.Description("worktree (default) or branch.")),
		mcp.WithBoolean("confirm", mcp.DefaultBool(true),
			mcp.Description("false previews what would be applied without applying (default true).")),
		mcp.WithOutputSchema[service.ApplyResult](),
	)
	return tool, progressHandler(DecodeApplyChanges, func(ctx context.Context, r *service.ApplyRequest, progress service.ProgressFunc) (*service.ApplyResult, error) {
		return fe.ApplyChanges(ctx, r, fe.ApplyWait(), progress)
	})
}

// RejectChangesTool discards a diff.
func RejectChangesTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("reject_changes",
		closedInput,
		mcp.WithDescription(`Reject a diff: it will never be applied, and its task's workspace is cleaned up in time. Consider request_revision instead when the change is close to right.`),
		writingTool("Reject changes", true, true),
		mcp.WithString("diffId", with(diffIDProp, mcp.Required(), mcp.Description("Diff to reject."))...),
		mcp.WithString("reason", mcp.MaxLength(service.MaxReasonChars), mcp.Description("Why, for the record.")),
		mcp.WithOutputSchema[service.RejectResult](),
	)
	return tool, handler(DecodeRejectChanges, fe.RejectChanges)
}

// RequestRevisionTool asks the agent to revise a diff.
func RequestRevisionTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("request_revision",
		closedInput,
		mcp.WithDescription(`Ask the agent to revise a diff: its task runs again on the same workspace (continuing the agent's session where the profile supports it) with your feedback, and produces a new diff that supersedes this one. The current diff stays until then. A script agent (such as shell) runs the feedback as its next script, with additionalContext appended; preserveCorrectParts applies to conversational agents (claude).

Next: wait_for_tasks, then review_changes taskId=<task>.`),
		writingTool("Request a revision", false, false),
		mcp.WithString("diffId", with(diffIDProp, mcp.Required(), mcp.Description("Diff to revise (the task's newest)."))...),
		mcp.WithString("feedback", mcp.Required(), mcp.MaxLength(service.MaxFeedbackChars), mcp.Description("What should change.")),
		mcp.WithBoolean("preserveCorrectParts", mcp.DefaultBool(true),
			mcp.Description("Tell the agent to keep what is already right (default true).")),
		mcp.WithString("additionalContext", mcp.MaxLength(service.MaxFeedbackChars), mcp.Description("Extra guidance for the revision.")),
		mcp.WithOutputSchema[service.FollowUpResult](),
	)
	return tool, handler(DecodeRequestRevision, fe.RequestRevision)
}

// AnswerWorkerQuestionTool answers a question the agent asked.
func AnswerWorkerQuestionTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("answer_worker_question",
		closedInput,
		mcp.WithDescription(`Answer the question of a task whose status is needs_input (work_status shows the question). The agent continues in a new run with the answer.`),
		writingTool("Answer the worker", false, false),
		mcp.WithString("taskId", with(taskIDProp, mcp.Required(), mcp.Description("Task waiting for input."))...),
		mcp.WithString("answer", mcp.Required(), mcp.MaxLength(service.MaxFeedbackChars), mcp.Description("The answer.")),
		mcp.WithOutputSchema[service.FollowUpResult](),
	)
	return tool, handler(DecodeAnswerWorkerQuestion, fe.AnswerQuestion)
}

// CancelTaskTool stops a task.
func CancelTaskTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("cancel_task",
		closedInput,
		mcp.WithDescription(`Cancel a task: a waiting task never starts, a running one has its container stopped. The task ends as cancelled; a finished task is left as it is.`),
		writingTool("Cancel a task", true, true),
		mcp.WithString("taskId", with(taskIDProp, mcp.Required(), mcp.Description("Task to cancel."))...),
		mcp.WithString("reason", mcp.MaxLength(service.MaxReasonChars), mcp.Description("Why, for the record.")),
		mcp.WithOutputSchema[service.CancelResult](),
	)
	return tool, handler(DecodeCancelTask, fe.CancelTask)
}

// WaitForTasksTool waits for tasks to finish.
func WaitForTasksTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("wait_for_tasks",
		closedInput,
		mcp.WithDescription(fmt.Sprintf(`Wait until every listed task has finished (or needs input), or until timeoutSeconds pass (default %d, at most %d), sending progress notifications on the way. Takes at most %d task ids per call (more are refused: wait for larger batches in several calls). Returns each task's status and diff id; if the time runs out, call again to keep waiting.`,
			service.DefaultWaitSeconds, service.MaxWaitSeconds, service.MaxWaitTasks)),
		readOnlyTool("Wait for tasks"),
		mcp.WithArray("taskIds", mcp.Required(), mcp.MinItems(1), mcp.MaxItems(service.MaxWaitTasks), mcp.WithStringItems(taskIDProp...),
			mcp.Description(fmt.Sprintf("Tasks to wait for: 1 to %d ids.", service.MaxWaitTasks))),
		mcp.WithNumber("timeoutSeconds", mcp.Min(0), mcp.Max(service.MaxWaitSeconds), mcp.DefaultNumber(service.DefaultWaitSeconds),
			mcp.Description("Longest wait in seconds; 0 answers at once.")),
		mcp.WithOutputSchema[service.WaitResult](),
	)
	return tool, progressHandler(DecodeWaitForTasks, fe.WaitForTasks)
}

// SystemStatusTool reports the health of the installation.
func SystemStatusTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("system_status",
		closedInput,
		mcp.WithDescription(`Report whether the Docker engine answers (and its version), which process runs the controllers, tasks by status, diffs waiting for review, containers managed and adopted, reconcile figures, the configured agents and allowed roots, and where data and logs are kept.`),
		readOnlyTool("System status"),
		mcp.WithOutputSchema[service.SystemStatusResult](),
	)
	return tool, func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if err := DecodeSystemStatus(toolArguments(req)); err != nil {
			return badInput(err)
		}
		return reply(fe.SystemStatus(ctx))
	}
}

// ViewContainerLogsTool shows a task run's output.
func ViewContainerLogsTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("view_container_logs",
		closedInput,
		mcp.WithDescription(`Show the output of a task's container: by task id (its newest run), by container name or by Docker container id. Works while the task runs and after the container is gone. Shows the newest lines; the reply's next names the calls for older (beforeLine) or newer (fromLine) ones.`),
		readOnlyTool("View task output"),
		mcp.WithString("identifier", mcp.Required(), mcp.MaxLength(service.MaxIdentifierChars),
			mcp.Description(`Task id ("task-…"), container name ("claude-parallel-task-…-r1") or container id.`)),
		mcp.WithNumber("tail", mcp.Min(0), mcp.Max(service.MaxTailLines), mcp.DefaultNumber(service.DefaultTailLines),
			mcp.Description(fmt.Sprintf("Show at most N lines (default %d; 0: as many as fit in the reply).", service.DefaultTailLines))),
		mcp.WithString("filter", mcp.MaxLength(service.MaxFilterChars), mcp.Description("Show only lines containing this text.")),
		mcp.WithNumber("beforeLine", mcp.Min(1), mcp.Description("Show the lines before this line number (older output); lines are numbered from 1, counting only lines that match filter.")),
		mcp.WithNumber("fromLine", mcp.Min(1), mcp.Description("Show the lines from this line number on (newer output).")),
		mcp.WithOutputSchema[service.LogsResult](),
	)
	return tool, handler(DecodeViewContainerLogs, fe.ViewLogs)
}

// ListContainerLogsTool lists the recorded run logs.
func ListContainerLogsTool(fe *service.Frontend) (mcp.Tool, server.ToolHandlerFunc) {
	tool := mcp.NewTool("list_container_logs",
		closedInput,
		mcp.WithDescription(`List the output files of task runs with their size and whether the run is complete.`),
		readOnlyTool("List task outputs"),
		mcp.WithNumber("limit", mcp.Min(1), mcp.Max(500), mcp.DefaultNumber(20), mcp.Description("How many to list (default 20).")),
		mcp.WithString("sortBy", mcp.Enum(service.LogSortOrders...), mcp.Description("newest (default), oldest or size.")),
		mcp.WithOutputSchema[service.ListLogsResult](),
	)
	return tool, handler(DecodeListContainerLogs, fe.ListLogs)
}

// toolConstructors lists every tool in the order clients see them.
var toolConstructors = []func(*service.Frontend) (mcp.Tool, server.ToolHandlerFunc){
	TaskWorkerTool,
	WorkStatusTool,
	WaitForTasksTool,
	ReviewChangesTool,
	ApplyChangesTool,
	RejectChangesTool,
	RequestRevisionTool,
	AnswerWorkerQuestionTool,
	CancelTaskTool,
	SystemStatusTool,
	ViewContainerLogsTool,
	ListContainerLogsTool,
}
