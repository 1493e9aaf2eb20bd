package main

import (
	"github.com/spf13/cobra"
)

func newStatusCommand(opts *globalOptions) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show Docker, the controllers' lease holder, task and diff counts, and paths",
		Args:  withUsageError(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCLI(cmd, opts, jsonOut, func(c *cli) error {
				res, err := c.fe.SystemStatus(cmd.Context())
				if err != nil {
					return err
				}
				return c.print(res)
			})
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}
