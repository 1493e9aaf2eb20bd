package redact

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func mustNew(t *testing.T, values []Value, patterns []Pattern) *Redactor {
	t.Helper()
	r, err := New(values, patterns)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestString_ValuesAndKnownShapes(t *testing.T) {
	env := "envsecret-" + randomHex(t, 8)
	ant := "sk-ant-api03-" + randomHex(t, 20)
	gh := "ghp_" + strings.Repeat("a1B2", 9)
	aws := "AKIA" + "ABCDEFGHIJKLMNOP"
	r := mustNew(t, []Value{{Name: "ANTHROPIC_API_KEY", Value: env}}, Builtins())
	cases := []struct{ in, want string }{
		{"key=" + env + " done", "key=[REDACTED:ANTHROPIC_API_KEY] done"},
		{ant, "[REDACTED:ANTHROPIC_KEY]"},
		{"token " + gh + ".", "token [REDACTED:GITHUB_TOKEN]."},
		{"id " + aws + " x", "id [REDACTED:AWS_ACCESS_KEY_ID] x"},
		{`{"result":"` + env + `"}`, `{"result":"[REDACTED:ANTHROPIC_API_KEY]"}`},
		// Ordinary text that looks a little like a key stays.
		{"sk-ant- is the prefix; AKIA alone; ghp_short", "sk-ant- is the prefix; AKIA alone; ghp_short"},
		{"", ""},
	}
	for _, c := range cases {
		if got := r.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := string(r.Bytes([]byte(c.in))); got != c.want {
			t.Errorf("Bytes(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A value printed inside a JSON string reads escaped; it is caught there too.
func TestString_ValueAsItReadsInJSON(t *testing.T) {
	v := `pa"ss\word<&>` + randomHex(t, 4)
	r := mustNew(t, []Value{{Name: "PW", Value: v}}, nil)
	for _, html := range []bool{false, true} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if err := enc.Encode(map[string]string{"text": "see " + v}); err != nil {
			t.Fatal(err)
		}
		got := r.String(b.String())
		if strings.Contains(got, jsonInner(v, html)) || !strings.Contains(got, "[REDACTED:PW]") {
			t.Errorf("escapeHTML=%v: %s", html, got)
		}
		var back map[string]string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("redacted JSON no longer parses: %v: %s", err, got)
		}
	}
	slashed := mustNew(t, []Value{{Name: "B64", Value: "ab/cd+ef/gh=="}}, nil)
	if got := slashed.String(`{"k":"ab\/cd+ef\/gh=="}`); got != `{"k":"[REDACTED:B64]"}` {
		t.Errorf("a value with '/' escaped as a backslash and a slash: %s", got)
	}
}

func TestNew_ShortValuesAndMultiLineValues(t *testing.T) {
	r := mustNew(t, []Value{
		{Name: "SHORT", Value: "abc1234"}, // MinLength-1
		{Name: "EMPTY", Value: ""},
		{Name: "PEM", Value: "-----BEGIN KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldY\r\nshort\n-----END KEY-----\n"},
	}, nil)
	if got := r.String("abc1234 stays"); got != "abc1234 stays" {
		t.Errorf("a value shorter than MinLength was redacted: %q", got)
	}
	got := r.String("k: QUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n-----END KEY-----")
	if got != "k: [REDACTED:PEM]\n[REDACTED:PEM]" {
		t.Errorf("multi-line value: %q", got)
	}
	if !(*Redactor)(nil).Empty() || (*Redactor)(nil).String("x") != "x" {
		t.Error("the nil Redactor must redact nothing")
	}
}

func TestString_LongestFirstAndOverlaps(t *testing.T) {
	r := mustNew(t, []Value{
		{Name: "SHORTER", Value: "abcdefgh12"},
		{Name: "LONGER", Value: "abcdefgh1234"},
		{Name: "LEFT", Value: "qrstuvwxyz"},
		{Name: "RIGHT", Value: "wxyz567890"},
		{Name: "INNER", Value: "mnop1234XY"},
		{Name: "OUTER", Value: "00mnop1234XY00"},
	}, []Pattern{{Name: "SHAPE", Regexp: `tok_[0-9]{8,}`}})
	cases := []struct{ in, want string }{
		// Two secrets start at the same place: the longer is replaced whole.
		{"<abcdefgh1234>", "<[REDACTED:LONGER]>"},
		{"<abcdefgh12>", "<[REDACTED:SHORTER]>"},
		// Overlapping secrets: neither shows in part.
		{"<qrstuvwxyz567890>", "<[REDACTED:LEFT]>"},
		// One inside another.
		{"<00mnop1234XY00>", "<[REDACTED:OUTER]>"},
		{"<mnop1234XY>", "<[REDACTED:INNER]>"},
		// A literal value beats a pattern of the same extent; a longer
		// pattern match wins over a literal inside it.
		{"tok_12345678 tok_1234567890123", "[REDACTED:SHAPE] [REDACTED:SHAPE]"},
		{"back to back: abcdefgh12abcdefgh1234", "back to back: [REDACTED:SHORTER][REDACTED:LONGER]"},
	}
	for _, c := range cases {
		if got := r.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	lit := mustNew(t, []Value{{Name: "ENV_NAME", Value: "tok_55555555"}}, []Pattern{{Name: "SHAPE", Regexp: `tok_[0-9]{8,}`}})
	if got := lit.String("tok_55555555"); got != "[REDACTED:ENV_NAME]" {
		t.Errorf("literal vs pattern of the same extent: %q", got)
	}
}

func TestCheckPattern(t *testing.T) {
	good := []string{`tok_[0-9]{8,}`, `[^"\n]{20}x`, `a[ \t]b`}
	for _, p := range good {
		if err := CheckPattern(p); err != nil {
			t.Errorf("CheckPattern(%q) = %v, want nil", p, err)
		}
	}
	bad := []string{`(`, `x*`, `a\sb`, `[^x]{8}`, `(?s)a.b`, "a\nb", `a\nb`}
	for _, p := range bad {
		if err := CheckPattern(p); err == nil {
			t.Errorf("CheckPattern(%q) = nil, want an error", p)
		}
	}
	if _, err := New(nil, []Pattern{{Name: "bad name!", Regexp: "abcdefgh"}}); err == nil {
		t.Error("a bad pattern name was accepted")
	}
	if _, err := New([]Value{{Name: "", Value: "abcdefghij"}}, nil); err == nil {
		t.Error("an empty secret name was accepted")
	}
}

// writeChunks writes in through a Writer cut at the given offsets.
func writeChunks(t *testing.T, r *Redactor, in string, cuts ...int) string {
	t.Helper()
	var out bytes.Buffer
	w := r.NewWriter(&out)
	prev := 0
	cuts = append(slices.Clone(cuts), len(in))
	slices.Sort(cuts)
	for _, c := range cuts {
		if n, err := w.Write([]byte(in[prev:c])); err != nil || n != c-prev {
			t.Fatalf("Write = %d, %v", n, err)
		}
		prev = c
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// However the stream is cut into writes, the output is what String gives for
// the whole, and no secret shows.
func TestWriter_EveryChunkBoundary(t *testing.T) {
	env := "CANARY" + randomHex(t, 6)
	r := mustNew(t, []Value{
		{Name: "ANTHROPIC_API_KEY", Value: env},
		{Name: "LEFT", Value: "qrstuvwxyz"},
		{Name: "RIGHT", Value: "wxyz567890"},
	}, Builtins())
	ant := "sk-ant-api03-" + randomHex(t, 12)
	in := "start " + env + " mid " + ant + "\nline two " + env + env + "\n{\"t\":\"" + env + "\"} qrstuvwxyz567890 end " + env
	want := r.String(in)
	for _, secret := range []string{env, ant, "qrstuvwxyz", "wxyz567890"} {
		if strings.Contains(want, secret) {
			t.Fatalf("String left %q in %q", secret, want)
		}
	}
	for i := 0; i <= len(in); i++ {
		if got := writeChunks(t, r, in, i); got != want {
			t.Fatalf("cut at %d:\n got %q\nwant %q", i, got, want)
		}
		for j := i; j <= len(in); j += 7 {
			if got := writeChunks(t, r, in, i, j); got != want {
				t.Fatalf("cut at %d and %d:\n got %q\nwant %q", i, j, got, want)
			}
		}
	}
	cuts := make([]int, 0, len(in))
	for i := 1; i < len(in); i++ {
		cuts = append(cuts, i)
	}
	if got := writeChunks(t, r, in, cuts...); got != want {
		t.Fatalf("byte by byte:\n got %q\nwant %q", got, want)
	}
}

// A line with no end longer than the Writer buffers goes out before its end
// arrives, yet a secret cut across writes anywhere in it is still caught.
func TestWriter_LongUnfinishedLine(t *testing.T) {
	env := "CANARY" + randomHex(t, 6)
	r := mustNew(t, []Value{{Name: "ANTHROPIC_API_KEY", Value: env}}, Builtins())
	ant := "sk-ant-api03-" + randomHex(t, 12)
	filler := strings.Repeat(".", maxPending-5)
	in := filler + env + strings.Repeat(",", 3000) + ant + strings.Repeat(";", maxPending) + env
	want := r.String(in)
	var out bytes.Buffer
	w := r.NewWriter(&out)
	for i := 0; i < len(in); i += 1000 {
		if _, err := w.Write([]byte(in[i:min(len(in), i+1000)])); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() == 0 {
		t.Fatal("nothing of a long unfinished line went out before its end")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != want {
		t.Fatalf("long line differs from String (len %d vs %d); secret shown: %v", len(got), len(want),
			strings.Contains(got, env) || strings.Contains(got, ant))
	}
	// Cut at every offset around the points where the buffer overflows.
	for i := maxPending - 2*len(env) - 1300; i < maxPending+50; i++ {
		if got := writeChunks(t, r, in, i, maxPending+1, i+maxPending); got != want {
			t.Fatalf("cut at %d: output differs from String; secret shown: %v", i, strings.Contains(got, env) || strings.Contains(got, ant))
		}
	}
}

func TestCached_SameInputsSameRedactor(t *testing.T) {
	v := []Value{{Name: "A", Value: "aaaaaaaaaa"}}
	r1, err := Cached(v, Builtins())
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := Cached([]Value{{Name: "A", Value: "aaaaaaaaaa"}}, Builtins())
	r3, _ := Cached([]Value{{Name: "A", Value: "bbbbbbbbbb"}}, Builtins())
	if r1 != r2 || r1 == r3 {
		t.Errorf("cache: same inputs gave %p and %p, other inputs %p", r1, r2, r3)
	}
	if r3.String("aaaaaaaaaa bbbbbbbbbb") != "aaaaaaaaaa [REDACTED:A]" {
		t.Error("a cached Redactor redacts the old value")
	}
}
