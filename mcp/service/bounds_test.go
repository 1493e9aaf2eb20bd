package service

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSelectLines_LongLinesAndByteBound(t *testing.T) {
	long := strings.Repeat("x", 3*maxLogLineBytes)
	in := "a\n" + long + "\nb\n"
	sel, err := selectLines(strings.NewReader(in), 0, "", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if sel.total != 3 || len(sel.lines[1]) > maxLogLineBytes+len("…") || sel.lines[2] != "b" {
		t.Fatalf("%d lines, second %d bytes", sel.total, len(sel.lines[1]))
	}
	sel, _ = selectLines(strings.NewReader(in), 0, "", 10)
	if len(sel.lines) != 1 || sel.lines[0] != "b" || !sel.truncated {
		t.Fatalf("byte bound: %+v", sel.lines)
	}
}

// jsonLen counts what encoding/json writes for a string.
func TestJSONLenMatchesEncoding(t *testing.T) {
	for _, s := range []string{"", "plain", "a\"b\\c\n\r\t", "<tag> & more", "\x00\x1f\x7f", "ü€😀", "\u2028\u2029", "bad\xff\xfeutf8", strings.Repeat("é<", 100)} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := jsonLen(s), len(b)-2; got != want {
			t.Errorf("jsonLen(%q) = %d, encoding/json writes %d", s, got, want)
		}
	}
}
