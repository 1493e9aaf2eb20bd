package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

var diffFlags = flagNames{"targetWorkspace": "--to", "mode": "--mode", "reason": "--reason", "diffId": "DIFF_ID"}

// defaultApplyWait bounds `diff apply --wait` unless --wait-timeout says otherwise.
const defaultApplyWait = 10 * time.Minute

func newDiffCommand(opts *globalOptions) *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "diff",
		Short: "Review, apply and reject the changes tasks made",
	})
	cmd.AddCommand(newDiffListCommand(opts), newDiffShowCommand(opts), newDiffApplyCommand(opts), newDiffRejectCommand(opts))
	return cmd
}

func newDiffListCommand(opts *globalOptions) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the diffs waiting for a decision",
		Args:  withUsageError(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printOp(cmd, opts, jsonOut, nil, (*service.Frontend).ReviewChanges, &service.ReviewRequest{})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func newDiffShowCommand(opts *globalOptions) *cobra.Command {
	var patch, jsonOut bool
	cmd := &cobra.Command{
		Use:   "show DIFF_ID",
		Short: "Show a diff: statistics, files and, with --patch, the patch",
		Args:  withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &service.ReviewRequest{DiffID: args[0], ShowContent: patch, Detailed: true}
			return printOp(cmd, opts, jsonOut, diffFlags, (*service.Frontend).ReviewChanges, req)
		},
	}
	cmd.Flags().BoolVar(&patch, "patch", false, "include the patch")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

type diffApplyOptions struct {
	to, mode    string
	wait, json  bool
	waitTimeout time.Duration
}

func newDiffApplyCommand(opts *globalOptions) *cobra.Command {
	o := &diffApplyOptions{}
	cmd := &cobra.Command{
		Use:   "apply DIFF_ID",
		Short: "Apply a diff to its task's repository (or --to another one)",
		Example: `  claude-parallel diff apply diff-0123456789ab --wait
  claude-parallel diff apply diff-0123456789ab --mode branch --to ~/src/app --wait`,
		Args: withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error { return diffApply(cmd, opts, o, args[0]) },
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "repository to apply to (default: the task's work folder)")
	f.StringVar(&o.mode, "mode", "", "worktree (default: patch the working tree) or branch (create branch claude-parallel/<task id>)")
	f.BoolVar(&o.wait, "wait", false, "wait for the outcome (runs the controllers here if no server does)")
	f.DurationVar(&o.waitTimeout, "wait-timeout", defaultApplyWait, "give up waiting after this long")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func diffApply(cmd *cobra.Command, opts *globalOptions, o *diffApplyOptions, id string) error {
	req := &service.ApplyRequest{DiffID: id, Mode: models.ApplyMode(o.mode), Confirm: true}
	if o.to != "" {
		abs, err := filepath.Abs(o.to)
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		req.TargetWorkspace = abs
	}
	if err := req.Check(); err != nil {
		return forFlags(err, diffFlags)
	}
	return withCLI(cmd, opts, o.json, func(c *cli) error {
		ctx := cmd.Context()
		wait := time.Duration(0)
		if o.wait {
			stop, err := c.ensureControllers(ctx)
			if err != nil {
				return err
			}
			defer stop()
			wait = o.waitTimeout
		}
		res, err := c.fe.ApplyChanges(ctx, req, wait, c.progress())
		if err != nil {
			return forFlags(err, diffFlags)
		}
		if !o.wait && res.Outcome == service.OutcomeInProgress {
			res.Message = "apply requested; the running server applies it (see `claude-parallel diff show " + id + "`)"
		}
		if err := c.print(res); err != nil {
			return err
		}
		switch res.Outcome {
		case service.OutcomeConflict, service.OutcomeFailed:
			return fmt.Errorf("diff %s was not applied: %s", id, res.Outcome)
		case service.OutcomeInProgress:
			if o.wait {
				return fmt.Errorf("diff %s is still %s after %s", id, res.Status, o.waitTimeout)
			}
		}
		return nil
	})
}

func newDiffRejectCommand(opts *globalOptions) *cobra.Command {
	var reason string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "reject DIFF_ID",
		Short: "Reject a diff: it will never be applied",
		Args:  withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &service.RejectRequest{DiffID: args[0], Reason: reason}
			return printOp(cmd, opts, jsonOut, diffFlags, (*service.Frontend).RejectChanges, req)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}
