package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// TestToolSnapshots pins every tool's definition (description, input and
// output schema, hints) to testdata/toolsnaps/<tool>.snap, so a change to
// what clients see shows up as a test diff. UPDATE_TOOLSNAPS=true rewrites
// the snapshots; review the diff before committing it.
func TestToolSnapshots(t *testing.T) {
	tools := Tools(service.Deps{Config: service.StaticConfig(config.Default())})
	if len(tools) != 12 {
		t.Fatalf("%d tools", len(tools))
	}
	update := os.Getenv("UPDATE_TOOLSNAPS") == "true"
	seen := map[string]bool{}
	for _, tool := range tools {
		t.Run(tool.Name, func(t *testing.T) {
			got := canonicalJSON(t, tool)
			path := filepath.Join("testdata", "toolsnaps", tool.Name+".snap")
			seen[filepath.Base(path)] = true
			if update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("no snapshot for %s (run with UPDATE_TOOLSNAPS=true to create it): %v", tool.Name, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("tool %s changed; if intended, run UPDATE_TOOLSNAPS=true go test ./mcp/ and review:\n%s",
					tool.Name, lineDiff(string(want), string(got)))
			}
		})
	}
	entries, _ := os.ReadDir(filepath.Join("testdata", "toolsnaps"))
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("snapshot %s has no tool (delete it)", e.Name())
		}
	}
}

// Every tool declares both an input and an output schema of type object.
func TestToolSchemas_Complete(t *testing.T) {
	for _, tool := range Tools(service.Deps{Config: service.StaticConfig(config.Default())}) {
		var m map[string]any
		if err := json.Unmarshal(canonicalJSON(t, tool), &m); err != nil {
			t.Fatal(err)
		}
		in, _ := m["inputSchema"].(map[string]any)
		out, _ := m["outputSchema"].(map[string]any)
		if in["type"] != "object" || out["type"] != "object" {
			t.Errorf("%s: input %v output %v", tool.Name, in["type"], out["type"])
		}
		if m["description"] == "" || m["annotations"] == nil {
			t.Errorf("%s: no description or annotations", tool.Name)
		}
	}
}

// canonicalJSON marshals v with sorted keys and indentation.
func canonicalJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(generic, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// lineDiff shows the lines only in want (-) and only in got (+), in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	// Longest common subsequence, small inputs only.
	lcs := make([][]int, len(w)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(g)+1)
	}
	for i := len(w) - 1; i >= 0; i-- {
		for j := len(g) - 1; j >= 0; j-- {
			if w[i] == g[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			i, j = i+1, j+1
		case j < len(g) && (i == len(w) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&b, "+ %s\n", g[j])
			j++
		default:
			fmt.Fprintf(&b, "- %s\n", w[i])
			i++
		}
	}
	return b.String()
}
