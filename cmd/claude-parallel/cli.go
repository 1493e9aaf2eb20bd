package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// The task, diff and status commands are the CLI's adapter over the
// application service the MCP tools use (mcp/service): each turns its flags
// into the service's typed request and calls the same operation, which
// checks the request by the same rules, so people and agents get the same
// validation and the same messages. A bad field is reported under the flag
// a person typed (forFlags), and the text printed ends with the
// claude-parallel commands to run next, not with MCP tool calls.

// cli is one CLI command's connection to the installation.
type cli struct {
	app    *app
	fe     *service.Frontend
	out    io.Writer
	errOut io.Writer
	json   bool
	flush  func() // sends what the redacting writers hold back
}

// openCLI loads the configuration and opens the store. Logs go to the log
// files only: the terminal shows the command's own output.
func openCLI(cmd *cobra.Command, opts *globalOptions, jsonOut bool) (*cli, error) {
	cfg, err := opts.loadConfig()
	if err != nil {
		return nil, err
	}
	a, err := openApp(cmd.Context(), cfg, io.Discard)
	if err != nil {
		return nil, err
	}
	// Every byte printed goes through the redactor, whatever produced it
	// (a view, a followed log file, an error): defence in depth behind the
	// controllers, which store agent output already redacted.
	red := a.redactor()
	out, errOut := red.NewWriter(cmd.OutOrStdout()), red.NewWriter(cmd.ErrOrStderr())
	return &cli{app: a, fe: service.NewFrontend(a.frontendDeps()), out: out, errOut: errOut, json: jsonOut,
		flush: func() { _ = out.Flush(); _ = errOut.Flush() }}, nil
}

func (c *cli) close() {
	c.flush()
	_ = c.app.close()
}

// markdowner is a service result: the service writes its text.
type markdowner = service.Result

// print writes a result: JSON with --json, else its readable text for
// people (forPeople): its facts and the commands to run next.
func (c *cli) print(v markdowner) error {
	if c.json {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	}
	_, err := io.WriteString(c.out, forPeople(v))
	return err
}

// progress reports a wait's progress on stderr, once per new message.
func (c *cli) progress() service.ProgressFunc {
	last := ""
	return func(_, _ float64, msg string) {
		if msg != last {
			fmt.Fprintf(c.errOut, "… %s\n", msg)
			last = msg
		}
	}
}

// ensureControllers makes sure some process runs the controllers for the
// duration of a --wait: when no process holds the lease, this one runs them
// until the returned stop is called.
func (c *cli) ensureControllers(ctx context.Context) (stop func(), err error) {
	active, err := c.app.leaderActive(ctx)
	if err != nil {
		return nil, err
	}
	if active {
		return func() {}, nil
	}
	if err := c.app.wireControllers(); err != nil {
		return nil, fmt.Errorf("no claude-parallel server is running and the controllers cannot run here: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := c.app.runControllers(runCtx)
	c.fe = service.NewFrontend(c.app.frontendDeps())
	fmt.Fprintln(c.errOut, "… no claude-parallel server is running; running the controllers in this process until the work is done")
	return func() {
		cancel()
		stopWithin(c.app.log, "controllers", done, controllersStopTimeout)
	}, nil
}

// flagNames maps the service's field names (as its errors name them) to
// the flags or arguments that carry them.
type flagNames map[string]string

// forFlags rewrites bad-argument errors to name the flags a person typed.
func forFlags(err error, names flagNames) error {
	var probs service.InputErrors
	if !errors.As(err, &probs) {
		var one *service.InputError
		if !errors.As(err, &one) {
			return err
		}
		probs = service.InputErrors{one}
	}
	lines := make([]string, 0, len(probs))
	for _, p := range probs {
		q := *p
		arg, rest, _ := strings.Cut(q.Arg, "[")
		if flag, ok := names[arg]; ok {
			q.Arg = flag
			if rest != "" {
				q.Arg += "[" + rest
			}
		} else if flag, ok := names[q.Arg]; ok {
			q.Arg = flag
		}
		lines = append(lines, q.Error())
	}
	return errors.New(strings.Join(lines, "\n"))
}

// idArg is the positional-argument name used in messages.
func idArgs(what string) flagNames {
	return flagNames{"taskId": what, "diffId": what, "identifier": what}
}
