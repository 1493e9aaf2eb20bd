package mcp_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestLayers_ServiceKnowsNoMCPAndAdapterHoldsNoServiceLogic: the application
// service (mcp/service) is shared by the MCP tools, the CLI and the
// dashboard, so it may not link an MCP library; and the MCP adapter (package
// mcp) only decodes, calls the service and renders, so it never reaches the
// store itself (which is where the service's logic starts).
func TestLayers_ServiceKnowsNoMCPAndAdapterHoldsNoServiceLogic(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./service").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./service: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/claude-parallel/claude-parallel/models") {
		t.Fatalf("go list -deps ./service printed no models package; the check looked at nothing:\n%s", out)
	}
	for _, pkg := range deps {
		if strings.HasPrefix(pkg, "github.com/mark3labs/mcp-go") || strings.HasPrefix(pkg, "github.com/modelcontextprotocol/") {
			t.Errorf("the service depends on the MCP library %s", pkg)
		}
	}

	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Store" {
				t.Errorf("%s: the MCP adapter reaches the store (%s.Store); that is the service's work", fset.Position(sel.Pos()), types.ExprString(sel.X))
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked %d files of package mcp; the check looked at nothing", checked)
	}
}
