package mcp

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// TestToolSchemas_Portable walks every tool's input and output schema, as a
// client receives it, and fails on a type array (such as ["null", "array"])
// or an anyOf/oneOf union: the MCP Inspector's --strict check reports those
// as unportable, and some clients and model providers refuse them.
func TestToolSchemas_Portable(t *testing.T) {
	tools := Tools(service.Deps{Config: service.StaticConfig(config.Default())})
	if len(tools) != 12 {
		t.Fatalf("%d tools", len(tools))
	}
	for _, tool := range tools {
		var m map[string]any
		if err := json.Unmarshal(canonicalJSON(t, tool), &m); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"inputSchema", "outputSchema"} {
			schema, ok := m[key].(map[string]any)
			if !ok {
				t.Errorf("%s: no %s", tool.Name, key)
				continue
			}
			for _, problem := range unportable(schema, tool.Name+"."+key) {
				t.Error(problem)
			}
		}
	}
}

// TestUnportable_FindsTypeArraysAndUnions keeps the walker honest.
func TestUnportable_FindsTypeArraysAndUnions(t *testing.T) {
	schema := map[string]any{"type": "object", "properties": map[string]any{
		"a": map[string]any{"type": []any{"null", "string"}},
		"b": map[string]any{"anyOf": []any{map[string]any{"type": "string"}}},
		"c": map[string]any{"type": "array", "items": map[string]any{"oneOf": []any{}}},
		"d": map[string]any{"type": "object", "properties": map[string]any{"e": map[string]any{"type": []any{"number", "string"}}}},
		"f": map[string]any{"type": "string"},
	}}
	if got := unportable(schema, "s"); len(got) != 4 {
		t.Fatalf("found %d problems, want 4: %v", len(got), got)
	}
}

// TestDropNulls_MatchesPlainSchema: a result whose nil fields were null is
// sent without them, so it validates against the plain-typed schema.
func TestDropNulls_MatchesPlainSchema(t *testing.T) {
	type inner struct {
		List []string `json:"list"`
		N    int64    `json:"n"`
	}
	v := struct {
		Files []string `json:"files"`
		Ptr   *inner   `json:"ptr"`
		In    inner    `json:"in"`
	}{In: inner{N: 1<<53 + 1}}
	b, _ := json.Marshal(dropNulls(v))
	if got, want := string(b), `{"in":{"n":9007199254740993}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestDropNulls_EncodedResults: a result reply already encoded keeps its
// bytes when it holds no null value ("/dev/null" in a patch is a string), and
// loses its null members when it does, strings untouched.
func TestDropNulls_EncodedResults(t *testing.T) {
	clean := json.RawMessage(`{"patch":"--- /dev/null\n+++ b/x","n":12345678901234567890}`)
	got, ok := dropNulls(clean).(json.RawMessage)
	if !ok || &got[0] != &clean[0] {
		t.Fatalf("null-free JSON re-encoded: %T %s", dropNulls(clean), got)
	}
	if got := dropNulls(nil); got != nil {
		t.Fatalf("dropNulls(nil) = %#v, want nil (a typed nil would be sent as null)", got)
	}
	unencodable := make(chan int)
	if got := dropNulls(unencodable); got != any(unencodable) {
		t.Fatalf("a value JSON cannot encode came back as %#v", got)
	}
	for in, want := range map[string]string{
		`{"a":null,"s":"x:null","b":[1,null]}`: `{"b":[1,null],"s":"x:null"}`,
		`{"list":[{"p":null}],"n":1}`:          `{"list":[{}],"n":1}`,
	} {
		b, err := json.Marshal(dropNulls(json.RawMessage(in)))
		if err != nil || string(b) != want {
			t.Errorf("dropNulls(%s) = %s (%v), want %s", in, b, err, want)
		}
	}
}

func unportable(node any, path string) []string {
	var out []string
	switch n := node.(type) {
	case map[string]any:
		if _, isArray := n["type"].([]any); isArray {
			out = append(out, fmt.Sprintf("%s: type array %v", path, n["type"]))
		}
		// Claude Code refuses a whole tool whose schema has a "required"
		// that is not an array (null, say).
		if req, ok := n["required"]; ok && n["properties"] != nil {
			if _, isArray := req.([]any); !isArray {
				out = append(out, fmt.Sprintf("%s: required is %v, not an array", path, req))
			}
		}
		for _, union := range []string{"anyOf", "oneOf"} {
			if _, ok := n[union]; ok {
				out = append(out, fmt.Sprintf("%s: %s union", path, union))
			}
		}
		for k, v := range n {
			out = append(out, unportable(v, path+"."+k)...)
		}
	case []any:
		for i, v := range n {
			out = append(out, unportable(v, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}
