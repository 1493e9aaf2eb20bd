package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// InputError is one bad argument. Its sentence names the argument (as the
// tool's schema spells it), says what is wrong and what is accepted, so a
// model can correct its call from the message alone.
type InputError struct {
	Arg      string // "workFolder", "containerConfig.memory", "dependsOn[2]"
	Problem  string // what is wrong, e.g. `"x" is a relative path`
	Accepted string // what would be accepted; may be empty
}

func (e *InputError) Error() string {
	s := e.Arg + ": " + e.Problem
	if e.Accepted != "" {
		s += "; accepted: " + e.Accepted
	}
	return s
}

// InputErrors is every bad argument of one call, reported together so a
// caller can fix them all at once.
type InputErrors []*InputError

func (es InputErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *InputError.
func (es InputErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// IsInputError reports whether err is (or wraps) a bad-argument error, which
// a tool answers with an error result rather than a protocol error.
func IsInputError(err error) bool { return asInputError(err) != nil }

// asInputError returns the *InputError err is or wraps (for instance a check
// that refused inside a spec update's transaction), or nil.
func asInputError(err error) *InputError {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie
	}
	return nil
}

// maxReportedProblems bounds how many problems one reply lists; a call with
// hundreds of bad entries gets the first few, enough to start fixing.
const maxReportedProblems = 10

// args reads one tool call's arguments from the decoded JSON object,
// collecting every problem instead of stopping at the first. Getters return
// the zero value for a missing or bad argument; callers check errs() once.
type args struct {
	raw   map[string]any
	probs InputErrors
}

// newArgs checks that raw is a JSON object (nil counts as empty) whose keys
// are all among known, so a misspelt optional argument is reported instead
// of silently ignored.
func newArgs(raw any, known ...string) *args {
	a := &args{}
	switch v := raw.(type) {
	case nil:
		a.raw = map[string]any{}
	case map[string]any:
		a.raw = v
	default:
		a.fail("arguments", fmt.Sprintf("must be a JSON object, got %s", jsonType(v)), "an object with the tool's named arguments")
		a.raw = map[string]any{}
		return a
	}
	var unknown []string
	for k := range a.raw {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		accepted := "no arguments"
		if len(known) > 0 {
			accepted = strings.Join(known, ", ")
		}
		a.fail(quote(k), "is not an argument of this tool", accepted)
	}
	return a
}

func (a *args) fail(arg, problem, accepted string) {
	if len(a.probs) < maxReportedProblems {
		a.probs = append(a.probs, &InputError{Arg: arg, Problem: problem, Accepted: accepted})
	}
}

func (a *args) add(err *InputError) {
	if err != nil && len(a.probs) < maxReportedProblems {
		a.probs = append(a.probs, err)
	}
}

// failed reports whether name already has a problem, so dependent checks
// (a base ref needs a valid work folder) are skipped instead of piling up.
func (a *args) failed(name string) bool {
	for _, p := range a.probs {
		if p.Arg == name || strings.HasPrefix(p.Arg, name+".") || strings.HasPrefix(p.Arg, name+"[") {
			return true
		}
	}
	return false
}

// err returns the collected problems, or nil.
func (a *args) err() error {
	if len(a.probs) == 0 {
		return nil
	}
	return a.probs
}

func (a *args) has(name string) bool {
	v, ok := a.raw[name]
	return ok && v != nil
}

// textRule bounds a string argument.
type textRule struct {
	required  bool
	maxChars  int
	multiline bool   // newlines and tabs allowed (prompts, feedback)
	accepted  string // what a valid value looks like, for messages
}

// str reads a string argument. A JSON null counts as absent.
func (a *args) str(name string, rule textRule) string {
	v, ok := a.raw[name]
	if !ok || v == nil {
		if rule.required {
			a.fail(name, "is required but missing", rule.accepted)
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		a.fail(name, "must be a string, got "+jsonType(v), rule.accepted)
		return ""
	}
	if err := checkText(name, s, rule); err != nil {
		a.add(err)
		return ""
	}
	return s
}

// checkText applies a textRule to a string value.
func checkText(name, s string, rule textRule) *InputError {
	accepted := rule.accepted
	if strings.TrimSpace(s) == "" {
		if rule.required {
			return &InputError{Arg: name, Problem: "is empty", Accepted: accepted}
		}
		return nil
	}
	if !utf8.ValidString(s) {
		return &InputError{Arg: name, Problem: "is not valid UTF-8 text", Accepted: accepted}
	}
	if n := utf8.RuneCountInString(s); rule.maxChars > 0 && n > rule.maxChars {
		return &InputError{Arg: name,
			Problem:  fmt.Sprintf("is %d characters long, more than the limit of %d", n, rule.maxChars),
			Accepted: fmt.Sprintf("at most %d characters", rule.maxChars)}
	}
	for _, r := range s {
		if r == 0 {
			// A NUL can never reach a container's argv or a file name.
			return &InputError{Arg: name, Problem: "contains a NUL character", Accepted: accepted}
		}
		if rule.multiline && (r == '\n' || r == '\t' || r == '\r') {
			continue
		}
		if unicode.IsControl(r) {
			return &InputError{Arg: name, Problem: fmt.Sprintf("contains the control character %U", r), Accepted: accepted}
		}
	}
	return nil
}

// boolean reads a boolean argument with a default.
func (a *args) boolean(name string, def bool) bool {
	v, ok := a.raw[name]
	if !ok || v == nil {
		return def
	}
	b, ok := v.(bool)
	if !ok {
		a.fail(name, "must be a boolean, got "+jsonType(v), "true or false")
		return def
	}
	return b
}

// integer reads a whole number within [min, max] with a default.
func (a *args) integer(name string, def, min, max int64) int64 {
	v, ok := a.raw[name]
	if !ok || v == nil {
		return def
	}
	accepted := fmt.Sprintf("a whole number from %d to %d", min, max)
	f, ok := number(v)
	if !ok {
		a.fail(name, "must be a number, got "+jsonType(v), accepted)
		return def
	}
	if f != math.Trunc(f) || math.IsInf(f, 0) || math.IsNaN(f) {
		a.fail(name, fmt.Sprintf("must be a whole number, got %s", formatNumber(f)), accepted)
		return def
	}
	if f < float64(min) || f > float64(max) {
		a.fail(name, fmt.Sprintf("is %s, out of range", formatNumber(f)), accepted)
		return def
	}
	return int64(f)
}

// enum reads a string that must be one of allowed, with a default.
func (a *args) enum(name, def string, allowed ...string) string {
	accepted := "one of " + strings.Join(allowed, ", ")
	s := a.str(name, textRule{maxChars: 64, accepted: accepted})
	if s == "" {
		if a.has(name) && !a.failed(name) {
			a.fail(name, "is empty", accepted)
		}
		return def
	}
	if !slices.Contains(allowed, s) {
		a.fail(name, fmt.Sprintf("%s is not a known value", quote(s)), accepted)
		return def
	}
	return s
}

// strList reads an array of strings with at most maxItems entries.
func (a *args) strList(name string, required bool, maxItems int, accepted string) []string {
	v, ok := a.raw[name]
	if !ok || v == nil {
		if required {
			a.fail(name, "is required but missing", accepted)
		}
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		a.fail(name, "must be an array of strings, got "+jsonType(v), accepted)
		return nil
	}
	if required && len(list) == 0 {
		a.fail(name, "is an empty array", accepted)
		return nil
	}
	if len(list) > maxItems {
		a.fail(name, fmt.Sprintf("has %d entries, more than the limit of %d", len(list), maxItems), accepted)
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			a.fail(fmt.Sprintf("%s[%d]", name, i), "must be a string, got "+jsonType(e), accepted)
			continue
		}
		out = append(out, s)
	}
	return out
}

// object reads a nested JSON object.
func (a *args) object(name string, accepted string) (map[string]any, bool) {
	v, ok := a.raw[name]
	if !ok || v == nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		a.fail(name, "must be an object, got "+jsonType(v), accepted)
		return nil, false
	}
	return m, true
}

// number converts the numeric forms a decoded argument can take: json.Number
// (wire decoding keeps precision), float64 (encoding/json's default) and the
// Go integers the CLI puts in its argument maps.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return f, true // ±Inf or 0: callers report it out of range
		}
		return f, err == nil
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	}
	return 0, false
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// jsonType names the JSON type of a decoded value, for messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, float32, int, int64, int32:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// quote shows a caller's value in a message: quoted, control characters
// escaped, and cut to a readable length.
func quote(s string) string {
	const max = 200
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return strconv.Quote(string(r[:max])) + "…"
	}
	return strconv.Quote(s)
}
