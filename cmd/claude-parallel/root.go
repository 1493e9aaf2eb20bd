package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/claude-parallel/claude-parallel/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// run executes the command line args and returns the process exit code.
// Errors go to stderr; commands other than serve print their output to
// stdout (serve keeps stdout for the MCP protocol).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "claude-parallel: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'claude-parallel --help' for usage.")
		return exitUsage
	}
	return exitError
}

// usageError marks a command line that could not be understood, as opposed
// to a command that ran and failed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// withUsageError makes a cobra argument check report a usageError.
func withUsageError(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// globalOptions are the persistent flags every command shares.
type globalOptions struct {
	configPath string
	home       string
	dbPath     string
	logLevel   string
}

// loadConfig loads the effective configuration: file, environment, flags.
func (o *globalOptions) loadConfig() (*config.Config, error) {
	return config.Load(o.loadOptions())
}

func (o *globalOptions) loadOptions() config.LoadOptions {
	return config.LoadOptions{
		ConfigPath: o.configPath,
		Home:       o.home,
		DBPath:     o.dbPath,
		LogLevel:   o.logLevel,
	}
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	opts := &globalOptions{}
	root := groupCommand(&cobra.Command{
		Use:   "claude-parallel",
		Short: "Run coding-agent tasks in parallel Docker containers, served over MCP",
		Long: `claude-parallel is an MCP server that runs many coding-agent tasks at once,
each in its own Docker container on its own copy of a git repository, and lets
the calling agent review the resulting diff and apply or reject it.`,
	})
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SilenceErrors = true // run prints errors once, with the exit code it chose
	root.SilenceUsage = true  // a failing command is not a usage mistake
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&opts.configPath, "config", "", "config file (default $"+config.EnvConfig+", then <home>/config.yaml)")
	pf.StringVar(&opts.home, "home", "", "installation directory (default $"+config.EnvHome+" or ~/.claude-parallel)")
	pf.StringVar(&opts.dbPath, "db", "", "SQLite database (default $"+config.EnvDBPath+" or <home>/data/claude-parallel.db)")
	pf.StringVar(&opts.logLevel, "log-level", "", "debug, info, warn or error (default $"+config.EnvLogLevel+" or info)")

	root.AddCommand(
		newVersionCommand(),
		newConfigCommand(opts),
		newDoctorCommand(opts),
		newServeCommand(opts),
		newTaskCommand(opts),
		newDiffCommand(opts),
		newStatusCommand(opts),
		newBackupCommand(opts),
		newRestoreCommand(opts),
	)
	return root
}

// groupCommand completes a command that only holds subcommands: alone it
// prints its help; followed by an unknown word it is a usage error (cobra
// would otherwise print the help and exit 0 for a typo).
func groupCommand(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.SuggestionsMinimumDistance = 2
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usageError{errors.New(msg)}
	}
	return cmd
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  withUsageError(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "claude-parallel %s\n", version)
			fmt.Fprintf(out, "commit: %s\n", buildCommit())
			fmt.Fprintf(out, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// buildCommit is the ldflags commit, or the VCS revision Go recorded when
// the binary was built without ldflags (go install, go run).
func buildCommit() string {
	if commit != "unknown" && commit != "" {
		return commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return commit
}

func newConfigCommand(opts *globalOptions) *cobra.Command {
	cmd := groupCommand(&cobra.Command{
		Use:   "config",
		Short: "Show or check the configuration",
	})
	cmd.AddCommand(
		&cobra.Command{
			Use:   "print",
			Short: "Print the effective configuration as YAML (secrets redacted)",
			Args:  withUsageError(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := opts.loadConfig()
				if err != nil {
					return err
				}
				return cfg.WriteYAML(cmd.OutOrStdout())
			},
		},
		&cobra.Command{
			Use:   "validate [FILE]",
			Short: "Check a config file (default: the one the server would read) with the environment and flags applied",
			Args:  withUsageError(cobra.MaximumNArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				lo := opts.loadOptions()
				if len(args) == 1 {
					lo.ConfigPath = args[0]
				}
				cfg, err := config.Load(lo)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "configuration is valid (%s)\n", describeSource(cfg))
				return nil
			},
		},
	)
	return cmd
}

func describeSource(cfg *config.Config) string {
	if cfg.File == "" {
		return "no config file; built-in defaults"
	}
	return "file " + cfg.File
}
