package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newServeCommand will run the MCP front end and the controllers; until they
// exist it says so instead of pretending to serve.
func newServeCommand(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the MCP server (stdio) and the reconcile loop",
		Args:  withUsageError(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			return errors.New("serve: not implemented yet")
		},
	}
}
