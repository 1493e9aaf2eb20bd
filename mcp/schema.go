package mcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
)

// Output schemas are generated from the result types, and the generator
// writes a field that may be nil (a pointer, a slice, a map) as
// `"type": ["null", X]`. Type arrays and unions are what the MCP Inspector's
// --strict check calls unportable (some clients and model providers accept
// only one type per property), so every schema a client sees uses plain
// types: a field that may be nil is an optional field of type X instead,
// and a result leaves it out rather than sending null (dropNulls).

// portableTool rewrites tool's output schema to plain types with optional
// fields.
func portableTool(tool mcp.Tool) mcp.Tool {
	if len(tool.OutputSchema.Properties) == 0 && tool.OutputSchema.Defs == nil {
		return tool
	}
	b, err := json.Marshal(tool.OutputSchema)
	if err != nil {
		return tool
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		return tool
	}
	plainTypes(schema)
	b, err = json.Marshal(schema)
	if err != nil {
		return tool
	}
	var out mcp.ToolOutputSchema
	if err := json.Unmarshal(b, &out); err != nil {
		return tool
	}
	// Properties stay sorted by name, as the library emits them.
	out.PropertyOrder = nil
	tool.OutputSchema = out
	return tool
}

// rawOutputSchema gives tool its output schema as JSON, encoded once: the
// library's output check encodes a structured schema again on every call
// (a tenth of a one-task work_status's time). The JSON a client lists is
// the same.
func rawOutputSchema(tool mcp.Tool) mcp.Tool {
	if tool.OutputSchema.Type == "" {
		return tool
	}
	b, err := json.Marshal(tool.OutputSchema)
	if err != nil {
		return tool
	}
	tool.RawOutputSchema, tool.OutputSchema = b, mcp.ToolOutputSchema{}
	return tool
}

// plainTypes walks a JSON schema in place: a property typed ["null", X]
// becomes type X and is no longer required.
func plainTypes(node any) {
	switch n := node.(type) {
	case []any:
		for _, v := range n {
			plainTypes(v)
		}
	case map[string]any:
		props, _ := n["properties"].(map[string]any)
		for name, p := range props {
			ps, ok := p.(map[string]any)
			if !ok {
				continue
			}
			if t, nullable := withoutNull(ps["type"]); nullable {
				ps["type"] = t
				n["required"] = removeName(n["required"], name)
			}
		}
		if t, nullable := withoutNull(n["type"]); nullable {
			n["type"] = t
		}
		if req, ok := n["required"].([]any); ok && len(req) == 0 {
			delete(n, "required")
		}
		for _, v := range n {
			plainTypes(v)
		}
	}
}

// withoutNull returns the one non-null type of a ["null", X] type array.
func withoutNull(t any) (any, bool) {
	arr, ok := t.([]any)
	if !ok || !slices.Contains(arr, any("null")) {
		return t, false
	}
	var rest []any
	for _, v := range arr {
		if v != "null" {
			rest = append(rest, v)
		}
	}
	if len(rest) == 1 {
		return rest[0], true
	}
	return rest, true
}

func removeName(required any, name string) any {
	req, ok := required.([]any)
	if !ok {
		// No list (every property optional): none to write, and never a
		// null, which clients refuse.
		return []any{}
	}
	return slices.DeleteFunc(slices.Clone(req), func(v any) bool { return v == name })
}

// dropNulls returns v (a tool's structured result) as its JSON without null
// object members, so it matches the plain-typed output schema: a nil field
// is left out, which is what "optional" means there. JSON that cannot hold
// a null value goes out as it is, unparsed: the usual case, as views leave
// their empty fields out.
func dropNulls(v any) any {
	raw, ok := asJSON(v)
	if !ok {
		return v
	}
	if !mayHoldNull(raw) {
		return raw
	}
	generic, err := decodeJSON(raw)
	if err != nil {
		return v
	}
	out, err := json.Marshal(pruneNulls(generic))
	if err != nil {
		return v
	}
	return json.RawMessage(out)
}

// mayHoldNull reports whether compact JSON (json.Marshal's) may hold a null
// value: one follows a colon, a comma or an opening bracket. A string such
// as "/dev/null" in a patch matches none of them; one that does only costs
// the parse.
func mayHoldNull(raw []byte) bool {
	return bytes.Contains(raw, []byte(":null")) || bytes.Contains(raw, []byte(",null")) || bytes.Contains(raw, []byte("[null"))
}

// asJSON is a structured result as JSON: as it is when reply encoded it
// already, else marshalled; false for nil or a value that cannot be encoded.
func asJSON(v any) (json.RawMessage, bool) {
	if v == nil {
		return nil, false
	}
	if raw, ok := v.(json.RawMessage); ok {
		return raw, true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	return b, true
}

// decodeJSON decodes a structured result generically, numbers kept as
// json.Number so large integers keep their value.
func decodeJSON(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("decode structured result: %w", err)
	}
	return generic, nil
}

func pruneNulls(v any) any {
	switch n := v.(type) {
	case map[string]any:
		for k, val := range n {
			if val == nil {
				delete(n, k)
				continue
			}
			n[k] = pruneNulls(val)
		}
	case []any:
		for i, val := range n {
			n[i] = pruneNulls(val)
		}
	}
	return v
}
