package controllers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
)

func TestDropPartialLine(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"a\nb\n", "a\nb\n"},
		{"a\nb\npart", "a\nb\n"},
		{"only part", ""},
		{"a\n" + strings.Repeat("x", 3*tailChunk), "a\n"},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(p, []byte(c.in), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		size, err := dropPartialLine(f)
		f.Close()
		got, _ := os.ReadFile(p)
		if err != nil || string(got) != c.want || size != int64(len(c.want)) {
			t.Errorf("dropPartialLine(%.20q) = %.20q (%d), %v", c.in, got, size, err)
		}
	}
}

func TestReadTailLines_CoversTheResumeOverlap(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b strings.Builder
	// Many lines in the last second, so the first chunk does not span it.
	n := 6000
	for i := 0; i < n; i++ {
		ts := start.Add(time.Duration(i) * 400 * time.Microsecond)
		fmt.Fprintf(&b, "%s line %04d %s\n", dockerStamp(ts), i, strings.Repeat("x", 20))
	}
	content := b.String()
	lines, err := readTailLines(strings.NewReader(content), int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	newest := lines[len(lines)-1].Time
	if span := newest.Sub(lines[0].Time); span < engine.LogResumeOverlap && len(lines) < n {
		t.Fatalf("tail spans %v over %d lines, want at least %v", span, len(lines), engine.LogResumeOverlap)
	}
	if !strings.HasPrefix(lines[len(lines)-1].Text, fmt.Sprintf("line %04d", n-1)) {
		t.Fatalf("last line %q", lines[len(lines)-1].Text)
	}
}
