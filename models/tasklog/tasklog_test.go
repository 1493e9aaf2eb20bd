package tasklog

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPathAndLineFormat(t *testing.T) {
	if got := Path("/logs/tasks", "task-0123456789ab", 3); got != "/logs/tasks/task-0123456789ab/run-3.log" {
		t.Errorf("Path = %q", got)
	}
	const stamp = "2026-11-27T08:15:04.123456789Z"
	line := FormatLine(stamp, "hello world")
	ts, text, ok := ParseLine(line)
	if !ok || text != "hello world" || !ts.Equal(time.Date(2026, 11, 27, 8, 15, 4, 123456789, time.UTC)) {
		t.Errorf("ParseLine(%q) = %v %q %v", line, ts, text, ok)
	}
	for in, want := range map[string]string{
		strings.TrimSuffix(line, "\n"): "hello world",
		stamp:                          "",
		"no stamp here":                "no stamp here",
		"2026-99-99 not a stamp":       "2026-99-99 not a stamp",
	} {
		if got := StripStamp(in); got != want {
			t.Errorf("StripStamp(%q) = %q, want %q", in, got, want)
		}
	}
}

// A crash may leave half a line: OpenAppend drops it, and the tail read back
// holds the whole lines in order.
func TestOpenAppendDropsAPartialLineAndReadTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "task-0123456789ab", "run-1.log")
	if err := os.MkdirAll(filepath.Dir(path), DirMode); err != nil {
		t.Fatal(err)
	}
	whole := FormatLine("2026-11-27T08:15:04Z", "one") + FormatLine("2026-11-27T08:15:05Z", "two")
	if err := os.WriteFile(path, []byte(whole+"2026-11-27T08:15:06Z thr"), FileMode); err != nil {
		t.Fatal(err)
	}
	f, size, err := OpenAppend(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if size != int64(len(whole)) {
		t.Fatalf("size %d, want %d", size, len(whole))
	}
	lines, err := ReadTail(f, size, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, l := range lines {
		texts = append(texts, l.Text)
	}
	if !slices.Equal(texts, []string{"one", "two"}) {
		t.Errorf("tail %q", texts)
	}
}
