package config

import (
	"strconv"
	"strings"
)

// FieldError is one problem with one configuration key.
type FieldError struct {
	// Key is the full key path as written in YAML, e.g.
	// "profiles.shell.resources.memory" or "allowed_roots[0]".
	Key string
	// Reason says what is wrong and what is accepted.
	Reason string
	// Source says where the value came from when known: "FILE:LINE",
	// "env LOG_LEVEL" or "flag --db".
	Source string
}

func (e *FieldError) Error() string {
	key := e.Key
	if key == "" {
		key = "(top level)"
	}
	s := key + ": " + e.Reason
	if e.Source != "" {
		s += " (" + e.Source + ")"
	}
	return s
}

// Problems is every problem found in one configuration, so a user can fix
// them all in one go. errors.As finds each *FieldError in it.
type Problems []*FieldError

func (p Problems) Error() string {
	if len(p) == 1 {
		return p[0].Error()
	}
	var b strings.Builder
	b.WriteString(strconv.Itoa(len(p)) + " problems:")
	for _, e := range p {
		b.WriteString("\n  " + e.Error())
	}
	return b.String()
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (p Problems) Unwrap() []error {
	out := make([]error, len(p))
	for i, e := range p {
		out[i] = e
	}
	return out
}

// annotate fills Source for problems whose key, or nearest enclosing key,
// was set by a known source.
func (p Problems) annotate(sources map[string]string) {
	for _, e := range p {
		if e.Source != "" {
			continue
		}
		for key := e.Key; key != ""; key = parentKey(key) {
			if src, ok := sources[key]; ok {
				e.Source = src
				break
			}
		}
	}
}

// parentKey strips the last path element: "a.b[2]" → "a.b", "a.b" → "a".
func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

func joinKey(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

func indexKey(parent string, i int) string { return parent + "[" + strconv.Itoa(i) + "]" }
