package mcp

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// Defence in depth: a secret that is in the store or a log file anyway (an
// older version wrote it, or a key the agent put in a file reached the
// patch) never leaves in a response — tool results, structured content and
// resources, read through the go-sdk client — and a filter on the secret's
// value finds nothing.
func TestResponses_RedactWhatIsStored(t *testing.T) {
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Setenv("ANTHROPIC_API_KEY", canary) // passed by the claude profile
	e := newTestEnv(t)
	ctx := context.Background()
	a := e.startTask(nil)
	d, _, err := e.store.CreateDiff(ctx, &models.Diff{TaskID: a.TaskID, RunNumber: 1, BaseCommit: "abc", ResultCommit: "def",
		FilesChanged: 1, Additions: 1, Files: []models.DiffFile{{Path: ".env", Status: models.FileAdded, Additions: 1}},
		Patch: []byte("diff --git a/.env b/.env\nnew file mode 100644\n--- /dev/null\n+++ b/.env\n@@ -0,0 +1 @@\n+KEY=" + canary + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	task, err := e.store.GetTask(ctx, a.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	exit := 0
	task.Status.Phase, task.Status.RunNumber, task.Status.ExitCode = models.TaskPhaseSucceeded, 1, &exit
	task.Status.ObservedGeneration, task.Status.DiffID = task.Generation, d.ID
	if err := e.store.UpdateTaskStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.cfg.Paths().TaskLogDir, a.TaskID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The second line is cut for the reply right inside the secret.
	long := strings.Repeat("y", service.MaxLogLineBytes-4) + canary + " tail"
	log := "2024-05-01T10:00:01.000000000Z key " + canary + "\n2024-05-01T10:00:02.000000000Z " + long + "\n"
	path := filepath.Join(dir, "run-1.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpsertExecutionLog(ctx, &models.ExecutionLog{TaskID: a.TaskID, Run: 1, Path: path, Size: int64(len(log)), Complete: true,
		Progress: models.RunProgress{LastMessage: "printing " + canary, ResultText: "the key is " + canary}}); err != nil {
		t.Fatal(err)
	}

	cs := e.httpClientSession(t, nil)
	var replies []string
	for _, call := range []struct {
		tool string
		args map[string]any
	}{
		{"work_status", map[string]any{"taskId": a.TaskID}},
		{"work_status", map[string]any{}},
		{"view_container_logs", map[string]any{"identifier": a.TaskID}},
		{"view_container_logs", map[string]any{"identifier": a.TaskID, "filter": canary[:12]}},
		{"review_changes", map[string]any{"diffId": d.ID, "showContent": true}},
		{"review_changes", map[string]any{"format": "detailed"}},
	} {
		res := callSDK(t, cs, call.tool, call.args, nil)
		if res.IsError {
			t.Fatalf("%s: error result", call.tool)
		}
		b, _ := json.Marshal(res)
		replies = append(replies, string(b))
	}
	for _, uri := range []string{service.TaskLogsURI(a.TaskID), service.DiffPatchURI(d.ID)} {
		res, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res)
		replies = append(replies, string(b))
	}
	for i, r := range replies {
		if strings.Contains(r, canary[:12]) {
			t.Errorf("reply %d shows (part of) the secret: %.600s", i, r)
		}
	}
	all := strings.Join(replies, "\n")
	for _, want := range []string{"the key is [REDACTED:ANTHROPIC_API_KEY]", "key [REDACTED:ANTHROPIC_API_KEY]",
		"+KEY=[REDACTED:ANTHROPIC_API_KEY]", "0 of them contain the filter"} {
		if !strings.Contains(all, want) {
			t.Errorf("no reply holds %q", want)
		}
	}
}
