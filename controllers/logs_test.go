package controllers

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/models/tasklog"
)

func TestDropPartialLine(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"a\nb\n", "a\nb\n"},
		{"a\nb\npart", "a\nb\n"},
		{"only part", ""},
		{"a\n" + strings.Repeat("x", 3*(64<<10)), "a\n"},
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
		size, err := tasklog.DropPartialLine(f)
		f.Close()
		got, _ := os.ReadFile(p)
		if err != nil || string(got) != c.want || size != int64(len(c.want)) {
			t.Errorf("DropPartialLine(%.20q) = %.20q (%d), %v", c.in, got, size, err)
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
	lines, err := tasklog.ReadTail(strings.NewReader(content), int64(len(content)), engine.LogResumeOverlap)
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

// What the agent prints of a secret — the value of a variable passed into
// its container, or a key of a well-known shape — is redacted before it
// reaches the run's log file and the store: whole, inside stream-json
// fields, JSON-escaped, and cut across Docker's 16 KiB entries. The
// follower restarted on the same file neither duplicates nor loses a line.
func TestLogFollower_RedactsSecretsBeforeFileAndStore(t *testing.T) {
	canary := "sk-ant-api03-canary" + strconv.FormatInt(time.Now().UnixNano(), 36)
	shape := "sk-ant-admin01-" + strings.Repeat("Qx7", 8) // a key shape no variable holds
	t.Setenv("ANTHROPIC_API_KEY", canary)
	h := newHarness(t)
	task, name := h.running("leak it", func(t *models.Task) { t.Spec.Agent = "claude" })
	split := strings.Repeat("p", engine.PartialLogSize-5) + canary[:5] + dockerStamp(time.Now()) + " " + canary[5:] + " after"
	h.fe.Emit(name,
		"plain "+canary,
		`{"type":"system","subtype":"init","session_id":"sess-1"}`,
		`{"type":"assistant","message":{"content":[{"type":"text","text":"the key is `+canary+` and `+shape+`"}]},"session_id":"sess-1"}`,
		`{"type":"assistant","message":{"content":[{"type":"text","text":"escaped \u0073k-ant-api03-`+canary[len("sk-ant-api03-"):]+`"}]},"session_id":"sess-1"}`,
		split,
	)
	h.runUntil(task.ID, 5*time.Second, func(t *models.Task) bool { return t.Progress.NumTurns == 2 })
	h.fe.Emit(name, `{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"done: `+canary+`","session_id":"sess-1"}`)
	h.fe.Exit(name, 0)
	got := h.runUntil(task.ID, 10*time.Second, finished)

	st := got.Progress // the run's row, as the task reads join it
	if st.ResultText != "done: [REDACTED:ANTHROPIC_API_KEY]" || st.LastMessage != "escaped [REDACTED:ANTHROPIC_API_KEY]" {
		t.Errorf("status texts: result %q, last message %q", st.ResultText, st.LastMessage)
	}
	log := h.logFile(task.ID, 1)
	for _, want := range []string{
		" plain [REDACTED:ANTHROPIC_API_KEY]\n",
		`"text":"the key is [REDACTED:ANTHROPIC_API_KEY] and [REDACTED:ANTHROPIC_KEY]"`,
		strings.Repeat("p", 20) + "[REDACTED:ANTHROPIC_API_KEY] after\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(log, "\n"); n != 6 {
		t.Errorf("log has %d lines, want 6", n)
	}
	// (The line that spelled the key with a JSON escape is stored as
	// printed; only the text decoded from it is redacted.)
	for _, secret := range []string{canary, shape} {
		assertNoFileHolds(t, h.cfg.Home, secret)
		if strings.Contains(fmt.Sprintf("%+v", st), secret) {
			t.Errorf("task status holds %q", secret)
		}
	}

	// A follower started again on the same file (a restart) stores nothing
	// twice: resume compares the redacted lines.
	h.s.tasks.followers.Forget(task.ID, 1)
	info, _ := h.fe.Inspect(h.ctx, name)
	f := h.s.tasks.followers.Ensure(h.s.tasks.taskFollowTarget(got, info))
	if !f.Wait(h.ctx, 5*time.Second) {
		t.Fatal("restarted follower did not finish")
	}
	if again := h.logFile(task.ID, 1); again != log {
		t.Errorf("a restarted follower changed the log:\n%s", again)
	}
}

// An error text that quotes a secret (here Docker refusing a start) reaches
// the status and the timeline redacted.
func TestTaskStatus_ErrorQuotingASecretIsRedacted(t *testing.T) {
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Setenv("ANTHROPIC_API_KEY", canary)
	h := newHarness(t)
	task := h.createTask("true", func(t *models.Task) { t.Spec.Agent = "claude" })
	h.stepTwice(task.ID)
	h.fe.StartRefusal = "exec: ANTHROPIC_API_KEY=" + canary + ": no such file"
	got := h.stepTwice(task.ID)
	if got.Status.Phase != models.TaskPhaseFailed || !strings.Contains(got.Status.Message, "ANTHROPIC_API_KEY=[REDACTED:ANTHROPIC_API_KEY]: no such file") {
		t.Fatalf("status %+v", got.Status)
	}
	assertNoFileHolds(t, h.cfg.Home, canary)
}
