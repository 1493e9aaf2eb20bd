package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// taskFlags maps the service's task fields to the task commands' flags.
var taskFlags = flagNames{
	"task": "--prompt", "workFolder": "--repo", "taskDescription": "--description", "agent": "--agent",
	"baseRef": "--base-ref", "parentTaskId": "--parent-id", "dependsOn": "--depends-on", "priority": "--priority",
	"includeUncommitted": "--no-uncommitted", "containerConfig.memory": "--memory", "containerConfig.cpus": "--cpus",
	"containerConfig.timeout": "--timeout", "status": "--status", "limit": "--limit", "tail": "--tail", "filter": "--filter",
	"reason": "--reason",
}

func newTaskCommand(opts *globalOptions) *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "task",
		Short: "Start, list, inspect and cancel tasks",
	})
	cmd.AddCommand(newTaskStartCommand(opts), newTaskListCommand(opts), newTaskShowCommand(opts),
		newTaskLogsCommand(opts), newTaskCancelCommand(opts))
	return cmd
}

type taskStartOptions struct {
	repo, prompt, promptFile, description, agent, baseRef, parentID, priority string
	memory, cpus, timeout                                                     string
	dependsOn                                                                 []string
	noUncommitted, wait, json                                                 bool
	waitTimeout                                                               time.Duration
}

func newTaskStartCommand(opts *globalOptions) *cobra.Command {
	o := &taskStartOptions{}
	cmd := &cobra.Command{
		Use:   "start --repo DIR --prompt TEXT",
		Short: "Start a task on a git repository (returns at once unless --wait)",
		Example: `  claude-parallel task start --repo . --agent shell --prompt 'echo hello > hello.txt' --wait
  claude-parallel task start --repo ~/src/app --prompt-file plan.md --priority high`,
		Args: withUsageError(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return taskStart(cmd, opts, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "git repository to work on (default: the current directory)")
	f.StringVar(&o.prompt, "prompt", "", "what the agent should do")
	f.StringVar(&o.promptFile, "prompt-file", "", "read the prompt from this file ('-' for stdin)")
	f.StringVar(&o.description, "description", "", "short description for lists")
	f.StringVar(&o.agent, "agent", "", "agent profile (default: the configured default agent)")
	f.StringVar(&o.baseRef, "base-ref", "", "start from this branch, tag or commit instead of the folder as it is")
	f.BoolVar(&o.noUncommitted, "no-uncommitted", false, "leave uncommitted and untracked files out")
	f.StringVar(&o.parentID, "parent-id", "", "idempotency key: the same key returns the same task")
	f.StringSliceVar(&o.dependsOn, "depends-on", nil, "task ids that must complete first (repeatable)")
	f.StringVar(&o.priority, "priority", "", "high, medium or low")
	f.StringVar(&o.memory, "memory", "", `memory limit, e.g. "1g"`)
	f.StringVar(&o.cpus, "cpus", "", `CPU limit, e.g. "1.5"`)
	f.StringVar(&o.timeout, "timeout", "", `run time limit, e.g. "30m"`)
	f.BoolVar(&o.wait, "wait", false, "wait until the task finishes (runs the controllers here if no server does)")
	f.DurationVar(&o.waitTimeout, "wait-timeout", 0, "give up waiting after this long (default: no limit)")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// request builds the service's task request from the flags. Sizes,
// numbers and durations are parsed here, as flags; their ranges (the
// profile's ceilings) are the service's to check.
func (o *taskStartOptions) request(stdin io.Reader) (*service.TaskWorkerRequest, error) {
	prompt := o.prompt
	if o.promptFile != "" {
		if prompt != "" {
			return nil, usageError{errors.New("give --prompt or --prompt-file, not both")}
		}
		b, err := readPromptFile(o.promptFile, stdin)
		if err != nil {
			return nil, err
		}
		prompt = string(b)
	}
	repo := o.repo
	if repo == "" {
		repo = "."
	}
	// People type relative paths; the service's rule (absolute only) is for
	// callers that have no working directory of their own.
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, fmt.Errorf("--repo: %w", err)
	}
	req := &service.TaskWorkerRequest{Prompt: prompt, WorkFolder: abs, IncludeUncommitted: !o.noUncommitted,
		Description: o.description, Agent: o.agent, BaseRef: o.baseRef, ParentTaskID: o.parentID,
		Priority: models.Priority(o.priority), DependsOn: o.dependsOn}
	if o.memory != "" {
		if req.MemoryBytes, err = config.ParseBytes(o.memory); err != nil {
			return nil, fmt.Errorf("--memory: %s is not a size; accepted: a size such as \"1g\" or \"512m\"", service.Quote(o.memory))
		}
	}
	if o.cpus != "" {
		cpus, err := strconv.ParseFloat(strings.TrimSpace(o.cpus), 64)
		if err != nil || math.IsNaN(cpus) || math.IsInf(cpus, 0) || cpus <= 0 || cpus > math.MaxInt64/1e9 {
			return nil, fmt.Errorf("--cpus: %s is not a number of CPUs; accepted: a number such as 1.5", service.Quote(o.cpus))
		}
		req.NanoCPUs = int64(math.Round(cpus * 1e9))
	}
	if o.timeout != "" {
		if req.Timeout, err = config.ParseDuration(o.timeout); err != nil {
			return nil, fmt.Errorf("--timeout: %s is not a duration; accepted: a duration such as \"30m\" or \"1h30m\"", service.Quote(o.timeout))
		}
	}
	return req, nil
}

func readPromptFile(path string, stdin io.Reader) ([]byte, error) {
	const max = 4 * service.MaxPromptChars // bytes; the character limit is checked after
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--prompt-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("--prompt-file: %w", err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("--prompt-file: larger than %d bytes", max)
	}
	return b, nil
}

func taskStart(cmd *cobra.Command, opts *globalOptions, o *taskStartOptions) error {
	req, err := o.request(cmd.InOrStdin())
	if err != nil {
		return err
	}
	c, err := openCLI(cmd, opts, o.json)
	if err != nil {
		return err
	}
	defer c.close()
	// Checked before --wait starts any controller; StartTask checks again.
	if err := req.Check(c.app.config()); err != nil {
		return forFlags(err, taskFlags)
	}
	ctx := cmd.Context()
	stop := func() {}
	if o.wait {
		// Before the write, so the controllers see the task from their first pass.
		if stop, err = c.ensureControllers(ctx); err != nil {
			return err
		}
	}
	defer stop()
	res, err := c.fe.StartTask(ctx, req)
	if err != nil {
		return forFlags(err, taskFlags)
	}
	if !o.wait {
		return c.print(res)
	}
	if !c.json {
		fmt.Fprintf(c.errOut, "… task %s accepted, waiting for it\n", res.TaskID)
	}
	return c.waitAndShow(ctx, res.TaskID, o.waitTimeout)
}

// waitAndShow waits for a task, then prints it in full; a task that did
// not complete makes the command fail.
func (c *cli) waitAndShow(ctx context.Context, taskID string, bound time.Duration) error {
	if bound <= 0 {
		bound = 100 * 365 * 24 * time.Hour
	}
	waited, err := c.fe.WaitForTasks(ctx, &service.WaitRequest{TaskIDs: []string{taskID}, Timeout: bound}, c.progress())
	if err != nil {
		return err
	}
	st, err := c.fe.WorkStatus(ctx, &service.WorkStatusRequest{TaskID: taskID})
	if err != nil {
		return err
	}
	if err := c.print(st); err != nil {
		return err
	}
	switch {
	case waited.TimedOut:
		return fmt.Errorf("task %s is still %s after %s", taskID, st.Task.Status, bound)
	case st.Task.Status != string(models.TaskStateCompleted) && st.Task.Status != string(models.TaskStateNeedsInput):
		return fmt.Errorf("task %s ended %s", taskID, st.Task.Status)
	}
	return nil
}

func newTaskListCommand(opts *globalOptions) *cobra.Command {
	var status string
	var limit int
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the newest tasks with counts by status",
		Args:  withUsageError(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &service.WorkStatusRequest{Status: models.TaskState(status), Limit: limit}
			return printOp(cmd, opts, jsonOut, taskFlags, (*service.Frontend).WorkStatus, req)
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only tasks with this status (pending, running, completed, failed, cancelled, timed_out, needs_input)")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many tasks")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

// withCLI opens the installation, runs fn and closes it.
func withCLI(cmd *cobra.Command, opts *globalOptions, jsonOut bool, fn func(c *cli) error) error {
	c, err := openCLI(cmd, opts, jsonOut)
	if err != nil {
		return err
	}
	defer c.close()
	return fn(c)
}

// printOp opens the installation, runs the front-end operation op on req and
// prints its result. A bad-argument error from op names the flags in names;
// with nil names op's errors are returned as they are.
func printOp[R any, V markdowner](cmd *cobra.Command, opts *globalOptions, jsonOut bool, names flagNames,
	op func(fe *service.Frontend, ctx context.Context, req R) (V, error), req R) error {
	return withCLI(cmd, opts, jsonOut, func(c *cli) error {
		res, err := op(c.fe, cmd.Context(), req)
		if err != nil {
			if names != nil {
				err = forFlags(err, names)
			}
			return err
		}
		return c.print(res)
	})
}

func newTaskShowCommand(opts *globalOptions) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "show TASK_ID",
		Short: "Show a task in full",
		Args:  withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &service.WorkStatusRequest{TaskID: args[0]}
			return printOp(cmd, opts, jsonOut, idArgs("TASK_ID"), (*service.Frontend).WorkStatus, req)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func newTaskCancelCommand(opts *globalOptions) *cobra.Command {
	var reason string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "cancel TASK_ID",
		Short: "Cancel a task (its container is stopped; a finished task is left alone)",
		Args:  withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &service.CancelRequest{TaskID: args[0], Reason: reason}
			return printOp(cmd, opts, jsonOut, mergeFlags(idArgs("TASK_ID"), taskFlags), (*service.Frontend).CancelTask, req)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func mergeFlags(ms ...flagNames) flagNames {
	out := flagNames{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

type taskLogsOptions struct {
	follow bool
	tail   int
	filter string
	json   bool
}

func newTaskLogsCommand(opts *globalOptions) *cobra.Command {
	o := &taskLogsOptions{}
	cmd := &cobra.Command{
		Use:   "logs TASK_ID|CONTAINER",
		Short: "Print a task's output (its newest run), optionally following it",
		Args:  withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &service.LogsRequest{Identifier: args[0], Tail: o.tail, Filter: o.filter, MaxChars: service.MaxCLILogChars}
			// Checked before following, which reads no request; ViewLogs checks again.
			if err := req.Check(); err != nil {
				return forFlags(err, mergeFlags(idArgs("TASK_ID"), taskFlags))
			}
			return withCLI(cmd, opts, o.json, func(c *cli) error {
				if o.follow {
					return c.followLogs(cmd.Context(), args[0], o.filter)
				}
				res, err := c.fe.ViewLogs(cmd.Context(), req)
				if err != nil {
					return forFlags(err, mergeFlags(idArgs("TASK_ID"), taskFlags))
				}
				if c.json {
					return c.print(res)
				}
				for _, l := range res.Lines {
					fmt.Fprintln(c.out, l)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing output until the task finishes")
	f.IntVar(&o.tail, "tail", 0, "only the last N lines (default all)")
	f.StringVar(&o.filter, "filter", "", "only lines containing this text")
	f.BoolVar(&o.json, "json", false, "print JSON (not with --follow)")
	return cmd
}

// followPoll is how often --follow looks for new output.
const followPoll = 300 * time.Millisecond

// followLogs prints a task's output as it is written, moving on to the next
// run's file when a revision or an answer starts one, until the task has
// finished and its last log is complete.
func (c *cli) followLogs(ctx context.Context, identifier, filter string) error {
	taskID, run, path, err := c.fe.RunLogFile(ctx, identifier)
	if err != nil {
		return forFlags(err, idArgs("TASK_ID"))
	}
	var offset int64
	var partial string
	for {
		if path != "" {
			if offset, partial, err = printNewLines(c.out, c.fe.OpenRunLog, path, offset, partial, filter); err != nil {
				return err
			}
		}
		t, err := c.app.store.GetTask(ctx, taskID)
		if err != nil {
			return fmt.Errorf("read task %s: %w", taskID, err)
		}
		done := t.Finished() && c.logComplete(ctx, taskID, run)
		if t.Status.RunNumber > run || done {
			// The file just read to its end belongs to a finished run.
			if partial != "" {
				printLine(c.out, partial, filter)
			}
			if done && t.Status.RunNumber == run {
				return nil
			}
			if _, run, path, err = c.fe.RunLogFile(ctx, taskID); err != nil {
				return err
			}
			offset, partial = 0, ""
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

func (c *cli) logComplete(ctx context.Context, taskID string, run int) bool {
	if run < 1 {
		return true
	}
	l, err := c.app.store.GetExecutionLog(ctx, taskID, run)
	if errors.Is(err, models.ErrNotFound) {
		return true // the run wrote nothing
	}
	return err == nil && l.Complete
}

// printNewLines prints the complete lines written to path since offset and
// returns the new offset and any unfinished last line. open is the front
// end's OpenRunLog, which follows no symlink planted in the log's place.
func printNewLines(w io.Writer, open func(string) (*os.File, error), path string, offset int64, partial, filter string) (int64, string, error) {
	f, err := open(path)
	if errors.Is(err, os.ErrNotExist) {
		return offset, partial, nil
	}
	if err != nil {
		return offset, partial, fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, partial, fmt.Errorf("read log: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, 8<<20))
	if err != nil {
		return offset, partial, fmt.Errorf("read log: %w", err)
	}
	offset += int64(len(b))
	text := partial + string(b)
	lines := strings.Split(text, "\n")
	for _, l := range lines[:len(lines)-1] {
		printLine(w, l, filter)
	}
	return offset, lines[len(lines)-1], nil
}

func printLine(w io.Writer, line, filter string) {
	text := service.StripTimestamp(strings.TrimRight(line, "\r"))
	if filter == "" || strings.Contains(text, filter) {
		fmt.Fprintln(w, text)
	}
}
