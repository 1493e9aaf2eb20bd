// Command claude-parallel is an MCP server that runs coding-agent tasks in
// Docker containers, each on its own copy of a git repository.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time: -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
