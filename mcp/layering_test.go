package mcp_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFrontEnd_ImportsNoControllerNorDocker: the front end (mcp and every
// package under it, the dashboard and ops endpoints included) only writes
// intents and reads views; a handler that could reach Docker or a controller
// would break that rule, so it may not even link them. The check lists the
// real dependency graph with the go tool.
func TestFrontEnd_ImportsNoControllerNorDocker(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/claude-parallel/controllers") ||
			strings.HasPrefix(pkg, "github.com/docker/") ||
			strings.HasPrefix(pkg, "github.com/moby/") {
			bad = append(bad, pkg)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("the front-end packages depend on %d forbidden packages: %s", len(bad), strings.Join(bad, ", "))
	}
	if !strings.Contains(string(out), "github.com/claude-parallel/claude-parallel/models") {
		t.Fatalf("go list -deps printed no models package; the check looked at nothing:\n%s", out)
	}
}
