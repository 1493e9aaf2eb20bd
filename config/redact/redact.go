// Package redact replaces secrets in text with a placeholder naming them,
// [REDACTED:NAME], before the text is stored, logged or sent anywhere. It is
// a leaf: the controllers (agent output into log files and the store), the
// front end (responses) and the server log all use this one rule.
//
// A Redactor knows literal values (the values of the environment variables
// passed into containers, and the server's own secrets) and patterns (the
// shapes of well-known keys such as sk-ant-…, and any configured). Matching
// is leftmost first, then longest: where two secrets start at the same
// place the longer one is replaced whole (a literal value names the match
// before a pattern of the same extent does), and secrets that overlap are
// hidden together under the first one's name, so no part of either shows.
//
// No secret spans a line break: a multi-line value is redacted line by line
// (a PEM key's every line), and a pattern that could match a line break is
// refused. That lets a Writer pass complete lines through at once and hold
// back only an unfinished line.
package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
)

// MinLength is the shortest value redacted as a literal. A shorter value
// (a flag such as "1" or "true", a short user name) would turn up by chance
// all over ordinary output and mangle it, while hiding nothing that could
// not be guessed; such values are left alone.
const MinLength = 8

// patternHold bounds, for a Writer cutting a line that has no end yet, how
// long a pattern's match is assumed to be at most: the shapes of keys are
// well below it.
const patternHold = 1 << 10

// Value is a secret known by its value, e.g. the value of an environment
// variable; Name is what the placeholder says (the variable's name).
type Value struct {
	Name  string
	Value string
}

// Pattern is a secret known by its shape: an RE2 regular expression.
type Pattern struct {
	Name   string
	Regexp string
}

// Placeholder is what replaces a secret named name.
func Placeholder(name string) string { return "[REDACTED:" + name + "]" }

// nameRE is what a secret's name may be: it goes into every placeholder, so
// it must not itself be able to break JSON or a log line.
var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Builtins are the shapes of well-known keys, redacted wherever they appear
// whether or not any configuration names them. Each is specific enough not
// to match ordinary text (a fixed prefix and a long random part), and each
// starts with a literal prefix, which keeps the search fast.
func Builtins() []Pattern {
	return []Pattern{
		{Name: "ANTHROPIC_KEY", Regexp: `sk-ant-[A-Za-z0-9_\-]{16,}`},
		{Name: "OPENAI_KEY", Regexp: `sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}`},
		{Name: "GITHUB_TOKEN", Regexp: `gh[pousr]_[A-Za-z0-9]{36,}`},
		{Name: "GITHUB_TOKEN", Regexp: `github_pat_[A-Za-z0-9_]{22,}`},
		{Name: "AWS_ACCESS_KEY_ID", Regexp: `AKIA[0-9A-Z]{16}`},
		{Name: "AWS_ACCESS_KEY_ID", Regexp: `ASIA[0-9A-Z]{16}`},
		{Name: "SLACK_TOKEN", Regexp: `xox[abposr]-[A-Za-z0-9\-]{10,}`},
		{Name: "GOOGLE_API_KEY", Regexp: `AIza[0-9A-Za-z_\-]{35}`},
	}
}

// CheckName reports whether name may name a secret.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("must be letters, digits and '_' (at most 128, not starting with a digit), got %q", name)
	}
	return nil
}

// CheckPattern reports whether expr is usable as a secret's shape: valid
// RE2 syntax, never matching the empty string, never matching a line break.
func CheckPattern(expr string) error {
	re, err := regexp.Compile(expr)
	if err != nil {
		return fmt.Errorf("not a valid regular expression (RE2 syntax): %w", err)
	}
	if re.MatchString("") {
		return errors.New("matches the empty string, which would redact everywhere")
	}
	tree, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return fmt.Errorf("not a valid regular expression (RE2 syntax): %w", err)
	}
	if mayMatchNewline(tree) {
		return errors.New(`may match a line break (\s, [^…], (?s). and \n do); secrets are matched within one line: use [ \t] or add \n to a negated class, e.g. [^"\n]`)
	}
	return nil
}

// mayMatchNewline reports whether a parsed expression can consume '\n'.
func mayMatchNewline(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpAnyChar:
		return true
	case syntax.OpLiteral:
		return slices.Contains(re.Rune, '\n')
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i] <= '\n' && '\n' <= re.Rune[i+1] {
				return true
			}
		}
		return false
	}
	for _, sub := range re.Sub {
		if mayMatchNewline(sub) {
			return true
		}
	}
	return false
}

// Redactor replaces secrets. The nil *Redactor redacts nothing. It is safe
// for concurrent use.
type Redactor struct {
	literals []literal      // longest first
	patterns []namedPattern // in the order given
	hold     int            // bytes a Writer keeps back of an unfinished line
}

type literal struct {
	text []byte
	name string
}

type namedPattern struct {
	name string
	re   *regexp.Regexp
}

// New builds a Redactor for values and patterns (the Builtins are not added
// by themselves: pass them). Values shorter than MinLength are skipped; a
// value of several lines is redacted line by line. A bad name or pattern is
// an error naming it.
func New(values []Value, patterns []Pattern) (*Redactor, error) {
	r := &Redactor{}
	seen := map[string]bool{}
	maxLit := 0
	for _, v := range values {
		if err := CheckName(v.Name); err != nil {
			return nil, fmt.Errorf("secret name: %w", err)
		}
		for _, lit := range literalForms(v.Value) {
			if seen[lit] {
				continue // the first name given wins
			}
			seen[lit] = true
			r.literals = append(r.literals, literal{text: []byte(lit), name: v.Name})
			maxLit = max(maxLit, len(lit))
		}
	}
	// Longest first, so that of two literals found at the same place the
	// longer is the one kept (the sort is stable: equal lengths keep their order).
	slices.SortStableFunc(r.literals, func(a, b literal) int { return len(b.text) - len(a.text) })
	for _, p := range patterns {
		if err := CheckName(p.Name); err != nil {
			return nil, fmt.Errorf("pattern name: %w", err)
		}
		if err := CheckPattern(p.Regexp); err != nil {
			return nil, fmt.Errorf("pattern %s: %w", p.Name, err)
		}
		re := regexp.MustCompile(p.Regexp)
		re.Longest()
		r.patterns = append(r.patterns, namedPattern{name: p.Name, re: re})
	}
	r.hold = max(maxLit, patternHold)
	return r, nil
}

// literalForms are the texts under which value may appear in output: each
// of its lines (trimmed) as it is and as it reads inside a JSON string
// (stream-json output, a log field), when at least MinLength long.
func literalForms(value string) []string {
	var out []string
	for _, line := range strings.Split(value, "\n") {
		line = strings.TrimSpace(line)
		if len(line) < MinLength {
			continue
		}
		// JSON may also escape '/' (a base64 key has them) as "\/".
		forms := []string{line, jsonInner(line, false), jsonInner(line, true),
			strings.ReplaceAll(jsonInner(line, false), "/", `\/`)}
		for _, form := range forms {
			if !slices.Contains(out, form) {
				out = append(out, form)
			}
		}
	}
	return out
}

// jsonInner is s as it reads between the quotes of a JSON string.
func jsonInner(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		return s
	}
	out := bytes.TrimSpace(b.Bytes())
	return string(out[1 : len(out)-1])
}

// Empty reports whether r has nothing to redact.
func (r *Redactor) Empty() bool { return r == nil || len(r.literals)+len(r.patterns) == 0 }

// String returns s with every secret replaced by its placeholder.
func (r *Redactor) String(s string) string {
	if r.Empty() {
		return s
	}
	b := []byte(s)
	sp := r.spans(b)
	if len(sp) == 0 {
		return s
	}
	return string(replace(b, len(b), sp))
}

// Bytes is String for a byte slice; it returns p itself when nothing matched.
func (r *Redactor) Bytes(p []byte) []byte {
	if r.Empty() {
		return p
	}
	sp := r.spans(p)
	if len(sp) == 0 {
		return p
	}
	return replace(p, len(p), sp)
}

// Contains reports whether s holds a secret r knows.
func (r *Redactor) Contains(s string) bool { return r.ContainsBytes([]byte(s)) }

// ContainsBytes is Contains for a byte slice, without copying it.
func (r *Redactor) ContainsBytes(p []byte) bool { return !r.Empty() && len(r.spans(p)) > 0 }

// span is one stretch of text to hide and the name it is shown under.
type span struct {
	start, end int
	name       string
	rank       int // which secret: literals (longest first), then patterns
}

// spans finds the secrets in p: leftmost first, the longest at a place (a
// literal before a pattern of the same extent), and a secret that overlaps
// one found is hidden with it — the stretch grows to cover both — so no
// part of either shows. Each secret is searched for on its own (a byte
// search for a literal, a pattern's own expression, which Go runs fast when
// it starts with a literal prefix): one expression of them all would be
// much slower.
func (r *Redactor) spans(p []byte) []span {
	var found []span
	for i, l := range r.literals {
		for from := 0; ; {
			j := bytes.Index(p[from:], l.text)
			if j < 0 {
				break
			}
			s := from + j
			found = append(found, span{s, s + len(l.text), l.name, i})
			from = s + 1 // overlapping occurrences too
		}
	}
	for i, pt := range r.patterns {
		for _, loc := range pt.re.FindAllIndex(p, -1) {
			found = append(found, span{loc[0], loc[1], pt.name, len(r.literals) + i})
		}
	}
	if len(found) == 0 {
		return nil
	}
	slices.SortFunc(found, func(a, b span) int {
		if a.start != b.start {
			return a.start - b.start
		}
		if a.end != b.end {
			return b.end - a.end
		}
		return a.rank - b.rank
	})
	out := found[:0]
	for _, sp := range found {
		if n := len(out); n > 0 && sp.start < out[n-1].end {
			out[n-1].end = max(out[n-1].end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// replace returns p[:end] with the spans that end within it replaced.
func replace(p []byte, end int, spans []span) []byte {
	out := make([]byte, 0, end+32)
	last := 0
	for _, sp := range spans {
		if sp.end > end {
			break
		}
		out = append(out, p[last:sp.start]...)
		out = append(out, Placeholder(sp.name)...)
		last = sp.end
	}
	return append(out, p[last:end]...)
}

// maxPending is how much of a line without an end a Writer buffers before
// it passes the part that can no longer be the start of a secret on.
const maxPending = 64 << 10

// Writer redacts a stream of output written to it in chunks of any size,
// including a secret cut across two writes: complete lines go through at
// once, an unfinished line is held back until its end arrives (or, past
// 64 KiB, all but its last bytes that could still begin a secret). Flush
// or Close sends what is held back. It is safe for concurrent use.
type Writer struct {
	r   *Redactor
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

// NewWriter returns a Writer redacting with r into w.
func (r *Redactor) NewWriter(w io.Writer) *Writer { return &Writer{r: r, w: w} }

// Write takes p whole; an error is one from the underlying writer.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.r.Empty() && len(w.buf) == 0 {
		return w.w.Write(p)
	}
	w.buf = append(w.buf, p...)
	if i := bytes.LastIndexByte(w.buf, '\n'); i >= 0 {
		if err := w.emit(i + 1); err != nil {
			return len(p), err
		}
	}
	for len(w.buf) > maxPending {
		if err := w.emitUnfinished(); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// emit sends buf[:n], which ends a line, and keeps the rest.
func (w *Writer) emit(n int) error {
	// Bytes may return buf itself: write before the rest moves down.
	_, err := w.w.Write(w.r.Bytes(w.buf[:n]))
	w.drop(n)
	return err
}

// drop removes the first n bytes of buf.
func (w *Writer) drop(n int) {
	rest := copy(w.buf, w.buf[n:])
	w.buf = w.buf[:rest]
}

// emitUnfinished sends the head of a long unfinished line: everything
// before the last hold bytes, moved back to the start of any secret that
// reaches into them (it may grow with the next write).
func (w *Writer) emitUnfinished() error {
	cut := len(w.buf) - w.r.hold
	spans := w.r.spans(w.buf)
	for _, sp := range spans {
		if sp.start < cut && sp.end > cut {
			cut = sp.start
			if cut == 0 {
				// A secret as long as the buffer: send it redacted whole
				// rather than any part of it in the clear.
				cut = sp.end
			}
			break
		}
	}
	if cut <= 0 {
		cut = len(w.buf)
	}
	_, err := w.w.Write(replace(w.buf, cut, spans))
	w.drop(cut)
	return err
}

// Flush sends what is held back, redacted: call it when the stream ends.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	return w.emit(len(w.buf))
}

// Close is Flush; the underlying writer is not closed.
func (w *Writer) Close() error { return w.Flush() }

// cache keeps the Redactors built lately, so callers that rebuild one per
// request from the same secrets (the configuration in force and the
// environment) compile the expression once.
var cache struct {
	sync.Mutex
	m map[string]*Redactor
}

const maxCached = 8

// Cached is New, reusing a Redactor built before from the same values and
// patterns.
func Cached(values []Value, patterns []Pattern) (*Redactor, error) {
	var key strings.Builder
	for _, v := range values {
		fmt.Fprintf(&key, "v%d:%s=%d:%s;", len(v.Name), v.Name, len(v.Value), v.Value)
	}
	for _, p := range patterns {
		fmt.Fprintf(&key, "p%d:%s=%d:%s;", len(p.Name), p.Name, len(p.Regexp), p.Regexp)
	}
	k := key.String()
	cache.Lock()
	r, ok := cache.m[k]
	cache.Unlock()
	if ok {
		return r, nil
	}
	r, err := New(values, patterns)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	defer cache.Unlock()
	if cache.m == nil || len(cache.m) >= maxCached {
		cache.m = map[string]*Redactor{}
	}
	cache.m[k] = r
	return r, nil
}
