package service

import (
	"errors"
	"fmt"
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
	// Kind refines the refusal for errors.Is: ErrNotFound when the request
	// names an object that does not exist; nil for any other bad input.
	Kind error
}

// Kinds of refusal. Every *InputError (and InputErrors) is ErrInvalidInput;
// one that names a missing task or diff is ErrNotFound as well, so an
// adapter can answer "not found" (the dashboard's 404) without reading text.
var (
	ErrInvalidInput = errors.New("invalid input")
	ErrNotFound     = errors.New("not found")
)

// Is matches ErrInvalidInput and the error's Kind.
func (e *InputError) Is(target error) bool {
	return target == ErrInvalidInput || (e.Kind != nil && target == e.Kind)
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

// TextRule bounds a string argument.
type TextRule struct {
	Required  bool
	MaxChars  int
	Multiline bool   // newlines and tabs allowed (prompts, feedback)
	Accepted  string // what a valid value looks like, for messages
}

// CheckText applies a TextRule to a string value.
func CheckText(name, s string, rule TextRule) *InputError {
	accepted := rule.Accepted
	if strings.TrimSpace(s) == "" {
		if rule.Required {
			return &InputError{Arg: name, Problem: "is empty", Accepted: accepted}
		}
		return nil
	}
	if !utf8.ValidString(s) {
		return &InputError{Arg: name, Problem: "is not valid UTF-8 text", Accepted: accepted}
	}
	if n := utf8.RuneCountInString(s); rule.MaxChars > 0 && n > rule.MaxChars {
		return &InputError{Arg: name,
			Problem:  fmt.Sprintf("is %d characters long, more than the limit of %d", n, rule.MaxChars),
			Accepted: fmt.Sprintf("at most %d characters", rule.MaxChars)}
	}
	for _, r := range s {
		if r == 0 {
			// A NUL can never reach a container's argv or a file name.
			return &InputError{Arg: name, Problem: "contains a NUL character", Accepted: accepted}
		}
		if rule.Multiline && (r == '\n' || r == '\t' || r == '\r') {
			continue
		}
		if unicode.IsControl(r) {
			return &InputError{Arg: name, Problem: fmt.Sprintf("contains the control character %U", r), Accepted: accepted}
		}
	}
	return nil
}

// Quote shows a caller's value in a message: quoted, control characters
// escaped, and cut to a readable length.
func Quote(s string) string {
	const max = 200
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return strconv.Quote(string(r[:max])) + "…"
	}
	return strconv.Quote(s)
}

// Cut shortens s to max characters, marking the cut with "…"; adapters
// use it to keep a caller's value short in their logs.
func Cut(s string, max int) string { return cut(s, max) }
