package config

import (
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The config file is decoded by walking yaml.v3's node tree against the
// Config struct rather than with Decoder.KnownFields(true): KnownFields
// reports "field x not found in type config.Profile" with a line number but
// not the key path, stops at the first problem, and is not applied inside
// custom unmarshalers. The walk names every offending key by its full path
// ("profiles.shell.resources.memory"), reports every problem at once, and is
// just as strict: a key that is not a field is an error.

// decodeYAML decodes data over c (keys absent from the file keep c's values)
// and records in sources the FILE:LINE of every key it set.
func decodeYAML(data []byte, file string, c *Config, sources map[string]string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parse YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file: all defaults
	}
	d := &yamlDecoder{file: file, sources: sources}
	d.value("", doc.Content[0], reflect.ValueOf(c).Elem(), "")
	if len(d.problems) > 0 {
		return d.problems
	}
	return nil
}

type yamlDecoder struct {
	file     string
	sources  map[string]string
	problems Problems
}

func (d *yamlDecoder) fail(key string, n *yaml.Node, format string, args ...any) {
	d.problems = append(d.problems, &FieldError{
		Key:    key,
		Reason: fmt.Sprintf(format, args...),
		Source: d.at(n),
	})
}

func (d *yamlDecoder) at(n *yaml.Node) string { return d.file + ":" + strconv.Itoa(n.Line) }

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// value decodes n into v; hint is the field's cfg tag.
func (d *yamlDecoder) value(key string, n *yaml.Node, v reflect.Value, hint string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			d.fail(key, n, "%v", err)
		}
		return
	}
	switch {
	case hint == "bytes":
		d.bytes(key, n, v)
		return
	case hint == "cpus":
		d.cpus(key, n, v)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.structure(key, n, v)
	case reflect.Map:
		d.mapping(key, n, v)
	case reflect.Slice:
		d.list(key, n, v)
	case reflect.String:
		if s, ok := d.scalar(key, n); ok {
			v.SetString(s)
		}
	case reflect.Int, reflect.Int64:
		d.integer(key, n, v)
	case reflect.Bool:
		d.boolean(key, n, v)
	default:
		// Only reachable if a field of an unsupported kind is added to Config.
		panic(fmt.Sprintf("config: no YAML decoding for %s (%s)", key, v.Type()))
	}
}

// structure decodes a mapping into a struct, refusing unknown and repeated
// keys. A null value (a key with everything under it commented out) leaves
// the struct as it was.
func (d *yamlDecoder) structure(key string, n *yaml.Node, v reflect.Value) {
	if !d.mappingToDecode(key, n, "keys") {
		return
	}
	fields := yamlFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.ShortTag() == "!!merge" {
			d.merge(key, vn, v)
			continue
		}
		name, childKey, ok := d.key(key, kn, seen)
		if !ok {
			continue
		}
		f, known := fields[name]
		if !known {
			d.fail(childKey, kn, "unknown key%s; keys allowed here: %s",
				suggest(name, mapKeys(fields)), strings.Join(sortedKeys(fields), ", "))
			continue
		}
		d.sources[childKey] = d.at(kn)
		d.value(childKey, vn, v.FieldByIndex(f.Index), f.Tag.Get("cfg"))
	}
}

// mappingToDecode reports whether n is a mapping (of keys or names, as
// entries says) to decode. A null is not, silently; any other node is
// refused.
func (d *yamlDecoder) mappingToDecode(key string, n *yaml.Node, entries string) bool {
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		d.fail(key, n, "must be a mapping of %s, got %s", entries, describeNode(n))
		return false
	}
	return true
}

// merge applies a YAML merge key (<<: *anchor) so profiles can share settings.
func (d *yamlDecoder) merge(key string, n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, m := range n.Content {
			d.merge(key, m, v)
		}
		return
	}
	d.structure(key, n, v)
}

// key reads a mapping key and refuses a repeat of one already seen.
func (d *yamlDecoder) key(parent string, kn *yaml.Node, seen map[string]int) (name, childKey string, ok bool) {
	if kn.Kind != yaml.ScalarNode {
		d.fail(parent, kn, "keys must be plain names, got %s", describeNode(kn))
		return "", "", false
	}
	name = kn.Value
	childKey = joinKey(parent, name)
	if line, dup := seen[name]; dup {
		d.fail(childKey, kn, "is given twice (first on line %d)", line)
		return "", "", false
	}
	seen[name] = kn.Line
	return name, childKey, true
}

// mapping decodes a mapping into a map keyed by name (profiles). An entry
// named like an existing one is decoded over it, so a file can change one
// setting of a shipped profile; a new entry starts from baseProfile.
func (d *yamlDecoder) mapping(key string, n *yaml.Node, v reflect.Value) {
	if !d.mappingToDecode(key, n, "names") {
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		name, childKey, ok := d.key(key, kn, seen)
		if !ok {
			continue
		}
		elem := reflect.New(v.Type().Elem()).Elem()
		if old := v.MapIndex(reflect.ValueOf(name)); old.IsValid() {
			elem.Set(old)
		} else if p, isProfile := elem.Addr().Interface().(*Profile); isProfile {
			*p = baseProfile()
		}
		d.sources[childKey] = d.at(kn)
		d.value(childKey, vn, elem, "")
		v.SetMapIndex(reflect.ValueOf(name), elem)
	}
}

// list decodes a sequence of strings. A null value is an empty list.
func (d *yamlDecoder) list(key string, n *yaml.Node, v reflect.Value) {
	if isNull(n) {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(key, n, "must be a list, e.g. [a, b], got %s", describeNode(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, en := range n.Content {
		ek := indexKey(key, i)
		d.sources[ek] = d.at(en)
		if s, ok := d.scalar(ek, en); ok {
			out.Index(i).SetString(s)
		}
	}
	v.Set(out)
}

func (d *yamlDecoder) scalar(key string, n *yaml.Node) (string, bool) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(key, n, "must be a single value, got %s", describeNode(n))
		return "", false
	}
	return n.Value, true
}

func (d *yamlDecoder) integer(key string, n *yaml.Node, v reflect.Value) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
		d.fail(key, n, "must be a whole number, got %s", describeNode(n))
		return
	}
	if v.OverflowInt(i) {
		d.fail(key, n, "%d is out of range", i)
		return
	}
	v.SetInt(i)
}

// boolean takes YAML 1.2's true and false only: "yes", "on" or "1" read
// as a string, and the error says so rather than guessing.
func (d *yamlDecoder) boolean(key string, n *yaml.Node, v reflect.Value) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.fail(key, n, "must be true or false, got %s", describeNode(n))
		return
	}
	v.SetBool(b)
}

func (d *yamlDecoder) bytes(key string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(key, n, "must be a size like \"512m\" or \"2g\", got %s", describeNode(n))
		return
	}
	b, err := ParseBytes(n.Value)
	if err != nil {
		d.fail(key, n, "%v", err)
		return
	}
	v.SetInt(b)
}

func (d *yamlDecoder) cpus(key string, n *yaml.Node, v reflect.Value) {
	f, err := strconv.ParseFloat(n.Value, 64)
	if n.Kind != yaml.ScalarNode || isNull(n) || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail(key, n, "must be a number of CPUs like 1 or 1.5, got %s", describeNode(n))
		return
	}
	if f > float64(math.MaxInt64)/float64(nanoPerCPU) {
		d.fail(key, n, "%s CPUs is out of range", n.Value)
		return
	}
	v.SetInt(int64(math.Round(f * float64(nanoPerCPU))))
}

// yamlFields maps YAML key names to struct fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f
	}
	return out
}

func mapKeys(m map[string]reflect.StructField) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func sortedKeys(m map[string]reflect.StructField) []string {
	out := mapKeys(m)
	slices.Sort(out)
	return out
}

// suggest returns ` (did you mean "x"?)` for a near miss of a known key.
func suggest(name string, known []string) string {
	best, bestDist := "", 3 // more than two edits apart is not a typo
	for _, k := range known {
		if dist := editDistance(name, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// WriteYAML writes the configuration as a YAML file Load reads back. Secrets
// print as "[redacted]" when set, never their value.
func (c *Config) WriteYAML(w io.Writer) error {
	root := encodeValue(reflect.ValueOf(c).Elem(), "")
	if c.File != "" {
		root.HeadComment = "effective configuration; file: " + c.File
	} else {
		root.HeadComment = "effective configuration; file: none (built-in defaults)"
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return fmt.Errorf("write config YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("write config YAML: %w", err)
	}
	return nil
}

// encodeValue is the inverse of yamlDecoder.value.
func encodeValue(v reflect.Value, hint string) *yaml.Node {
	if m, ok := v.Interface().(yaml.Marshaler); ok {
		out, err := m.MarshalYAML()
		if err != nil {
			// The marshalers in this package cannot fail.
			panic(fmt.Sprintf("config: marshal %s: %v", v.Type(), err))
		}
		return strNode(fmt.Sprint(out))
	}
	switch hint {
	case "bytes":
		return &yaml.Node{Kind: yaml.ScalarNode, Value: FormatBytes(v.Int())}
	case "cpus":
		return &yaml.Node{Kind: yaml.ScalarNode, Value: strconv.FormatFloat(formatCPUs(v.Int()), 'f', -1, 64)}
	}
	switch v.Kind() {
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			n.Content = append(n.Content, strNode(name), encodeValue(v.Field(i), f.Tag.Get("cfg")))
		}
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			n.Content = append(n.Content, strNode(k.String()), encodeValue(v.MapIndex(k), ""))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			n.Content = append(n.Content, encodeValue(v.Index(i), ""))
		}
		return n
	case reflect.String:
		return strNode(v.String())
	case reflect.Int, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}
	default:
		panic(fmt.Sprintf("config: no YAML encoding for %s", v.Type()))
	}
}

// strNode is a string scalar; the !!str tag makes the encoder quote values
// that would otherwise read back as something else ("", "true", "123").
func strNode(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
