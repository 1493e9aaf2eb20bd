package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/config/redact"
)

// childEnv makes the test binary act as a program that only logs, so the
// parent can check what reached the real stdout and stderr file descriptors.
const childEnv = "CP_LOGGING_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// runChild runs in the re-executed test binary before the testing package
// prints anything, so every byte on its stdout would be the logger's fault.
func runChild(dir string) int {
	logger, closeLogs, err := New(config.LogConfig{Level: "info", MaxSizeMB: 1, MaxFiles: 2, Dir: dir}, os.Stderr)
	if err != nil {
		os.Stderr.WriteString(err.Error())
		return 3
	}
	logger.Debug("hidden debug line")
	logger.Info("child info", zap.Int("n", 1))
	logger.Warn("child warn")
	logger.Error("child error", zap.Error(errors.New("boom")))
	LogToolCall(logger, "task_worker", 12*time.Millisecond, []string{"prompt", "agent"}, nil)
	<-GoSafe(logger, "child-goroutine", func() { explode() })
	if err := closeLogs(); err != nil {
		os.Stderr.WriteString(err.Error())
		return 4
	}
	return 0
}

//go:noinline
func explode() { panic("kaboom") }

type line map[string]any

func readLines(t *testing.T, path string) []line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: not a JSON line: %q", path, sc.Text())
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func messages(lines []line) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l["msg"].(string))
	}
	return out
}

func TestNew_NothingOnStdout(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child failed: %v\nstderr:\n%s", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Fatalf("the logger wrote %d bytes to stdout: %q", stdout.Len(), stdout.String())
	}

	// Console output is readable text on stderr, not JSON.
	for _, want := range []string{"INFO", "child info", "ERROR", "child error", "Tool invoked", "recovered panic"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "hidden debug line") || strings.HasPrefix(stderr.String(), "{") {
		t.Errorf("stderr has debug lines or JSON:\n%s", stderr.String())
	}

	combined := readLines(t, filepath.Join(dir, CombinedFile))
	got := strings.Join(messages(combined), "|")
	if got != "child info|child warn|child error|Tool invoked|recovered panic" {
		t.Errorf("combined log messages = %s", got)
	}
	errLines := readLines(t, filepath.Join(dir, ErrorFile))
	if got := strings.Join(messages(errLines), "|"); got != "child error|recovered panic" {
		t.Errorf("error log messages = %s", got)
	}
	for _, l := range errLines {
		if l["level"] != "error" {
			t.Errorf("error log holds a %v line: %v", l["level"], l)
		}
	}
}

func newTestLogger(t *testing.T, cfg config.LogConfig) (*zap.Logger, func() error, *bytes.Buffer) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Level == "" {
		cfg.Level = "info"
	}
	if cfg.MaxSizeMB == 0 {
		cfg.MaxSizeMB, cfg.MaxFiles = 10, 5
	}
	var stderr bytes.Buffer
	logger, closeLogs, err := New(cfg, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	return logger, closeLogs, &stderr
}

func TestNew_RotatesAndKeepsMaxFiles(t *testing.T) {
	dir := t.TempDir()
	logger, closeLogs, _ := newTestLogger(t, config.LogConfig{Dir: dir, MaxSizeMB: 1, MaxFiles: 2})
	payload := strings.Repeat("x", 1000)
	// ~3.5 MB through a 1 MB limit: three rotations, one more than MaxFiles keeps.
	for i := range 3500 {
		logger.Info("filler", zap.Int("i", i), zap.String("payload", payload))
	}
	if err := closeLogs(); err != nil {
		t.Fatal(err)
	}

	backups := func() []string {
		m, err := filepath.Glob(filepath.Join(dir, "server-combined-*.log"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// lumberjack deletes surplus backups in a background goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for len(backups()) > 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := backups()
	if len(got) != 2 {
		t.Fatalf("want 2 rotated files (max_files), found %d: %v", len(got), got)
	}
	for _, p := range append(got, filepath.Join(dir, CombinedFile)) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over the 1 MB rotation size", p, st.Size())
		}
		if st.Size() == 0 {
			t.Errorf("%s is empty", p)
		}
	}
	// The newest lines are in the live file: nothing was lost at the end.
	lines := readLines(t, filepath.Join(dir, CombinedFile))
	if last := lines[len(lines)-1]; last["i"] != float64(3499) {
		t.Errorf("last line of the live file = %v", last["i"])
	}
	// Info lines never reach the error log, so it did not rotate.
	if m, _ := filepath.Glob(filepath.Join(dir, "server-error-*.log")); len(m) != 0 {
		t.Errorf("error log rotated without errors: %v", m)
	}
}

func TestLogToolCall_NamesNotValues(t *testing.T) {
	dir := t.TempDir()
	logger, closeLogs, _ := newTestLogger(t, config.LogConfig{Dir: dir})
	args := map[string]any{"prompt": "my private prompt", "workFolder": "/home/me/secret-project"}
	LogToolCall(logger, "task_worker", 1500*time.Millisecond, ArgNames(args), nil)
	LogToolCall(logger, "apply_changes", time.Millisecond, []string{"diffId"}, errors.New("store unavailable"))
	if err := closeLogs(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, CombinedFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "my private prompt") || strings.Contains(string(raw), "secret-project") {
		t.Fatal("argument values reached the log")
	}
	lines := readLines(t, filepath.Join(dir, CombinedFile))
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d", len(lines))
	}
	ok, failed := lines[0], lines[1]
	// The original's monitoring instructions grep for this message.
	if ok["msg"] != "Tool invoked" || failed["msg"] != "Tool invoked" {
		t.Errorf("messages = %q, %q; want %q", ok["msg"], failed["msg"], "Tool invoked")
	}
	if caller, _ := ok["caller"].(string); !strings.HasPrefix(caller, "logging/logging_test.go:") {
		t.Errorf("caller = %q, want the calling test", caller)
	}
	if ok["tool"] != "task_worker" || ok["outcome"] != "ok" || ok["duration"] != "1.5s" || ok["level"] != "info" {
		t.Errorf("ok call logged as %v", ok)
	}
	if names, _ := json.Marshal(ok["args"]); string(names) != `["prompt","workFolder"]` {
		t.Errorf("args = %s", names)
	}
	if failed["outcome"] != "error" || failed["error"] != "store unavailable" || failed["level"] != "error" {
		t.Errorf("failed call logged as %v", failed)
	}
	if errs := readLines(t, filepath.Join(dir, ErrorFile)); len(errs) != 1 || errs[0]["tool"] != "apply_changes" {
		t.Errorf("error log = %v", errs)
	}
}

func TestGoSafe_LogsPanicWithStack(t *testing.T) {
	dir := t.TempDir()
	logger, closeLogs, _ := newTestLogger(t, config.LogConfig{Dir: dir})
	select {
	case <-GoSafe(logger, "resync-loop", explode):
	case <-time.After(10 * time.Second):
		t.Fatal("GoSafe never finished")
	}
	if err := closeLogs(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, filepath.Join(dir, ErrorFile))
	if len(lines) != 1 {
		t.Fatalf("want 1 error line, got %v", lines)
	}
	l := lines[0]
	stack, _ := l["stack"].(string)
	if l["msg"] != "recovered panic" || l["goroutine"] != "resync-loop" || l["panic"] != "kaboom" {
		t.Errorf("panic logged as %v", l)
	}
	if !strings.Contains(stack, "logging.explode") {
		t.Errorf("stack does not show the panicking function:\n%s", stack)
	}
	if strings.Contains(stack, "logging.logPanic") {
		t.Errorf("stack starts inside the logging helpers:\n%s", stack)
	}
}

func TestRecoverError_TurnsPanicIntoError(t *testing.T) {
	logger, closeLogs, stderr := newTestLogger(t, config.LogConfig{})
	defer closeLogs()
	sentinel := errors.New("sentinel")
	run := func(v any) (err error) {
		defer RecoverError(logger, "reconcile", &err)
		panic(v)
	}
	if err := run(sentinel); !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "panic in reconcile") {
		t.Errorf("error panic became %v", err)
	}
	if err := run(42); err == nil || !strings.Contains(err.Error(), "42") {
		t.Errorf("value panic became %v", err)
	}
	if n := strings.Count(stderr.String(), "recovered panic"); n != 2 {
		t.Errorf("want 2 logged panics, got %d", n)
	}
}

func TestNew_Errors(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]config.LogConfig{
		"bad level":        {Level: "loud", MaxSizeMB: 1, MaxFiles: 1, Dir: t.TempDir()},
		"no dir":           {Level: "info", MaxSizeMB: 1, MaxFiles: 1},
		"dir is a file":    {Level: "info", MaxSizeMB: 1, MaxFiles: 1, Dir: filepath.Join(notADir, "logs")},
		"no rotation size": {Level: "info", MaxFiles: 1, Dir: t.TempDir()},
	}
	for name, cfg := range cases {
		if _, _, err := New(cfg, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestNew_LevelFiltersFiles(t *testing.T) {
	dir := t.TempDir()
	logger, closeLogs, _ := newTestLogger(t, config.LogConfig{Dir: dir, Level: "warn"})
	logger.Info("dropped")
	logger.Warn("kept")
	if err := closeLogs(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(messages(readLines(t, filepath.Join(dir, CombinedFile))), "|"); got != "kept" {
		t.Errorf("combined log at warn = %q", got)
	}
}

// Whatever logs a secret — in the message, a string field, an error, a
// structured value, a logger's With fields — the files and the console get
// the placeholder.
func TestNewRedacting_HidesSecretsInEveryOutput(t *testing.T) {
	dir := t.TempDir()
	canary := "canary-" + time.Now().Format("150405.000000000")
	r, err := redact.New([]redact.Value{{Name: "ANTHROPIC_API_KEY", Value: canary}}, redact.Builtins())
	if err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	logger, closeLogs, err := NewRedacting(config.LogConfig{Level: "debug", MaxSizeMB: 1, MaxFiles: 2, Dir: dir}, &console,
		func() *redact.Redactor { return r })
	if err != nil {
		t.Fatal(err)
	}
	shape := "sk-ant-api03-" + strings.Repeat("Zq9", 10)
	logger.With(zap.String("ctx", "with "+canary)).Info("printed "+canary, zap.String("field", canary+"!"))
	logger.Error("failed", zap.Error(errors.New("exit: "+shape)), zap.Any("obj", map[string]string{"k": canary}))
	if err := closeLogs(); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"console": console.String()}
	for _, name := range []string{CombinedFile, ErrorFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		outputs[name] = string(b)
	}
	for name, out := range outputs {
		if strings.Contains(out, canary) || strings.Contains(out, shape) {
			t.Errorf("%s shows a secret:\n%s", name, out)
		}
		if !strings.Contains(out, "[REDACTED:ANTHROPIC_KEY]") {
			t.Errorf("%s lacks the key shape's placeholder:\n%s", name, out)
		}
	}
	if n := strings.Count(outputs[CombinedFile], "[REDACTED:ANTHROPIC_API_KEY]"); n != 4 {
		t.Errorf("%s has %d placeholders of the value, want 4:\n%s", CombinedFile, n, outputs[CombinedFile])
	}
	readLines(t, filepath.Join(dir, CombinedFile)) // still one JSON object per line
}
