package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/dashboard"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// TestDashboard_RedactsWhatIsStoredAndReadsLogsBelowTheirFolder: the
// dashboard renders what the service returns itself, so it redacts as the
// MCP middleware does — a key the agent wrote into a file is in the stored
// patch, and a log written by an older version holds one — and it follows a
// run's log through a handle on the task log folder, never a symlink planted
// in its place.
func TestDashboard_RedactsWhatIsStoredAndReadsLogsBelowTheirFolder(t *testing.T) {
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Setenv("ANTHROPIC_API_KEY", canary) // passed by the claude profile
	home := t.TempDir()
	cfg := config.Default()
	cfg.Home, cfg.DBPath, cfg.Log.Dir = home, filepath.Join(home, "data", config.DBFileName), filepath.Join(home, "logs")
	cfg.AllowedRoots = []string{home}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := models.Open(ctx, cfg.DBPath, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	task, _, err := store.CreateTask(ctx, &models.Task{ID: models.NewTaskID(),
		Spec: models.TaskSpec{Prompt: "print the key", WorkFolder: home, Agent: "shell"}})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := store.CreateDiff(ctx, &models.Diff{TaskID: task.ID, RunNumber: 1, BaseCommit: "abc", ResultCommit: "def",
		FilesChanged: 1, Additions: 1, Files: []models.DiffFile{{Path: ".env", Status: models.FileAdded, Additions: 1}},
		Patch: []byte("diff --git a/.env b/.env\nnew file mode 100644\n--- /dev/null\n+++ b/.env\n@@ -0,0 +1 @@\n+KEY=" + canary + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfg.Paths().TaskLogDir, task.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "run-1.log")
	if err := os.WriteFile(logPath, []byte("2024-05-01T10:00:01.000000000Z key "+canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.UpsertExecutionLog(ctx, &models.ExecutionLog{TaskID: task.ID, Run: 1, Path: logPath, Complete: true,
		Progress: models.RunProgress{LastMessage: "printing " + canary}}); err != nil {
		t.Fatal(err)
	}
	exit := 0
	task.Status.Phase, task.Status.RunNumber, task.Status.ExitCode = models.TaskPhaseSucceeded, 1, &exit
	task.Status.ObservedGeneration, task.Status.DiffID = task.Generation, d.ID
	if err := store.UpdateTaskStatus(ctx, task); err != nil {
		t.Fatal(err)
	}

	fe := service.NewFrontend(service.Deps{Config: service.StaticConfig(cfg), Store: store})
	mux := http.NewServeMux()
	if err := dashboard.Routes(mux, dashboard.Options{Frontend: fe, Store: store, Config: service.StaticConfig(cfg)}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	pages := map[string]string{}
	for _, p := range []string{"/", "/ui/tasks", "/tasks/" + task.ID, "/ui/tasks/" + task.ID, "/diffs/" + d.ID,
		"/diffs/" + d.ID + "?view=side", "/tasks/" + task.ID + "/log/events"} {
		pages[p] = get(p)
	}
	for p, body := range pages {
		if strings.Contains(body, canary) {
			t.Errorf("GET %s shows the secret", p)
		}
	}
	for _, p := range []string{"/diffs/" + d.ID, "/tasks/" + task.ID + "/log/events"} {
		if !strings.Contains(pages[p], "[REDACTED:ANTHROPIC_API_KEY]") {
			t.Errorf("GET %s lacks the placeholder where the secret was:\n%.1500s", p, pages[p])
		}
	}

	// The run's log file replaced by a link to a file outside the log folder.
	outside := filepath.Join(t.TempDir(), "outside.log")
	if err := os.WriteFile(outside, []byte("2024-05-01T10:00:01.000000000Z outside-canary\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, logPath); err != nil {
		t.Fatal(err)
	}
	if body := get("/tasks/" + task.ID + "/log/events"); strings.Contains(body, "outside-canary") {
		t.Errorf("the log stream followed a planted symlink:\n%s", body)
	}
}
