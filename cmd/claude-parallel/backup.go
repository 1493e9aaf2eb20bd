package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/claude-parallel/claude-parallel/models"
)

// backupScope says what a backup holds, for the command's output and help.
const backupScope = `The backup is the SQLite database only: every task (spec, status, timeline),
every diff with its whole patch, the events, the container registry and the
index of run logs. It does not hold the per-task workspaces or the task
output files under <logs>/tasks: a diff can be reviewed and applied from the
backup alone, but a task's output and a revision's agent session need those
directories (copy them with tar or rsync if you want them).`

func newBackupCommand(opts *globalOptions) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the database to FILE while servers run",
		Long: `Write a consistent copy of the database to FILE (which must not exist) while
servers keep running: SQLite's VACUUM INTO reads one snapshot without blocking
writers. The copy is checked with integrity_check before it is renamed to FILE.

` + backupScope,
		Args: withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := opts.loadConfig()
			if err != nil {
				return err
			}
			if err := refuseOnPostgres(cfg, "backup"); err != nil {
				return err
			}
			store, err := models.Open(cmd.Context(), cfg.DBPath, models.Options{})
			if err != nil {
				return fmt.Errorf("open store: %w", err)
			}
			defer store.Close()
			info, err := store.Backup(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printBackupInfo(cmd, jsonOut, "backup written", info, "")
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func newRestoreCommand(opts *globalOptions) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the database with a backup (refused while a server leads)",
		Long: `Replace the database with the backup FILE. Nothing is replaced unless FILE
passes integrity_check and holds a schema this binary can use, and no live
server holds the leader lease: stop every server on this database first. The
database it replaces is kept beside it as <db>.pre-restore-<time>. The
restored database starts with no lease; its tasks and diffs are reconciled
by the next server (a task whose container no longer exists ends failed).

` + backupScope,
		Args: withUsageError(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := opts.loadConfig()
			if err != nil {
				return err
			}
			if err := refuseOnPostgres(cfg, "restore"); err != nil {
				return err
			}
			info, kept, err := models.Restore(cmd.Context(), args[0], cfg.DBPath, time.Now())
			if err != nil {
				return err
			}
			return printBackupInfo(cmd, jsonOut, "restored", info, kept)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func printBackupInfo(cmd *cobra.Command, jsonOut bool, what string, info models.BackupInfo, kept string) error {
	out := cmd.OutOrStdout()
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"path": info.Path, "installationId": info.InstallationID, "schemaVersion": info.SchemaVersion,
			"tasks": info.Tasks, "diffs": info.Diffs, "bytes": info.Bytes, "previousKeptAt": kept,
		})
	}
	fmt.Fprintf(out, "%s: %s (%d tasks, %d diffs, %d bytes, installation %s)\n",
		what, info.Path, info.Tasks, info.Diffs, info.Bytes, info.InstallationID)
	if kept != "" {
		fmt.Fprintf(out, "the database it replaced is kept at %s\n", kept)
	}
	fmt.Fprintln(out, "database only: workspaces and task output files are not part of a backup")
	return nil
}
