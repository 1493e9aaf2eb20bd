package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/mcp/service"
)

// rot13 spells a text so that a prompt can carry it without holding it; the
// shell agent turns it back with tr.
func rot13(s string) string {
	out := []byte(s)
	for i, c := range out {
		switch {
		case c >= 'a' && c <= 'z':
			out[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			out[i] = 'A' + (c-'A'+13)%26
		}
	}
	return string(out)
}

// The canary test of secrets: a random ANTHROPIC_API_KEY passed into the
// containers, and a key of the sk-ant- shape that no variable holds, are
// printed by real shell agents in Docker — whole, split across two writes a
// second apart, on stderr, cut by Docker's 16 KiB entries, and inside
// stream-json fields. Afterwards neither appears in any file under the
// installation's home (the database and its WAL, the server logs, the run
// logs, the workspaces), in any MCP tool result or resource read through the
// go-sdk client, in any CLI output, or in the server's stderr; the
// placeholder stands where each was printed.
func TestSecrets_CanaryNeverLeaves(t *testing.T) {
	fi := newFlowInstall(t)
	rnd := make([]byte, 16)
	if _, err := rand.Read(rnd); err != nil {
		t.Fatal(err)
	}
	canary := "cp-canary-" + hex.EncodeToString(rnd[:10])
	shape := "sk-ant-api03-" + hex.EncodeToString(rnd[10:]) + "ZZtopSecretTail"
	fi.writeConfig(`log:
  level: debug
profiles:
  shell:
    env: [ANTHROPIC_API_KEY]
  leaky:
    image: claude-parallel/shell:latest
    command: [sh, -c, "{{.Prompt}}"]
    env: [ANTHROPIC_API_KEY]
    output_format: stream-json
`)
	fi.env = append(fi.env, "ANTHROPIC_API_KEY="+canary, "LOG_LEVEL=debug")
	s := fi.http()

	decode := `"$(echo '` + rot13(shape) + `' | tr 'A-Za-z' 'N-ZA-Mn-za-m')"`
	textScript := `K="$ANTHROPIC_API_KEY"; S=` + decode + `
echo "whole: $K"
printf 'split: %s' "$(echo "$K" | cut -c1-9)"; sleep 1; printf '%s\n' "$(echo "$K" | cut -c10-)"
echo "stderr: $K" >&2
echo "shape: $S"
head -c 16380 /dev/zero | tr '\0' p; printf '%s long\n' "$K"
echo done > out.txt`
	jsonScript := `K="$ANTHROPIC_API_KEY"; S=` + decode + `
printf '{"type":"system","subtype":"init","session_id":"s1"}\n'
printf '{"type":"assistant","message":{"content":[{"type":"text","text":"key %s"}]},"session_id":"s1"}\n' "$K"
printf '{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"final %s and %s","session_id":"s1"}\n' "$K" "$S"
echo changed > json.txt`
	for _, script := range []string{textScript, jsonScript} {
		if strings.Contains(script, canary) || strings.Contains(script, shape) {
			t.Fatal("a prompt holds a secret itself")
		}
	}

	// Every response, whole (text content and structured content), as JSON.
	var replies []string
	call := func(tool string, args map[string]any, out any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		res, err := s.cs.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, s.stderr)
		}
		b, _ := json.Marshal(res)
		replies = append(replies, tool+": "+string(b))
		if res.IsError {
			t.Fatalf("%s: error result: %s", tool, b)
		}
		if out != nil {
			sb, _ := json.Marshal(res.StructuredContent)
			if err := json.Unmarshal(sb, out); err != nil {
				t.Fatalf("%s: %v", tool, err)
			}
		}
	}
	var text, js service.TaskWorkerResult
	call("task_worker", map[string]any{"task": textScript, "workFolder": fi.repo, "agent": "shell"}, &text)
	call("task_worker", map[string]any{"task": jsonScript, "workFolder": fi.repo, "agent": "leaky"}, &js)
	ids := []string{text.TaskID, js.TaskID}
	for deadline := time.Now().Add(3 * time.Minute); ; {
		var w service.WaitResult
		call("wait_for_tasks", map[string]any{"taskIds": ids, "timeoutSeconds": 30}, &w)
		if w.AllFinished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks not finished: %+v\n%s", w.Tasks, s.stderr)
		}
	}
	var textStatus, jsStatus service.WorkStatusResult
	call("work_status", map[string]any{"taskId": text.TaskID}, &textStatus)
	call("work_status", map[string]any{"taskId": js.TaskID}, &jsStatus)
	call("work_status", map[string]any{}, nil)
	var textLogs, jsLogs service.LogsResult
	call("view_container_logs", map[string]any{"identifier": text.TaskID}, &textLogs)
	call("view_container_logs", map[string]any{"identifier": js.TaskID}, &jsLogs)
	call("view_container_logs", map[string]any{"identifier": text.TaskID, "filter": canary[:14]}, nil)
	call("list_container_logs", map[string]any{}, nil)
	call("system_status", map[string]any{}, nil)
	call("review_changes", map[string]any{}, nil)
	if textStatus.Task == nil || jsStatus.Task == nil || textStatus.Task.Status != "completed" || jsStatus.Task.Status != "completed" {
		t.Fatalf("tasks did not complete: %s", strings.Join(replies, "\n"))
	}
	for _, st := range []*service.WorkStatusResult{&textStatus, &jsStatus} {
		if d := st.Task.DiffID; d != "" {
			call("review_changes", map[string]any{"diffId": d, "showContent": true}, nil)
		}
	}
	for _, id := range ids {
		res, err := s.cs.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: service.TaskLogsURI(id)})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(res)
		replies = append(replies, "resource: "+string(b))
	}

	// The placeholder stands where the agent printed each secret.
	logText := strings.Join(textLogs.Lines, "\n")
	for _, want := range []string{"whole: [REDACTED:ANTHROPIC_API_KEY]", "split: [REDACTED:ANTHROPIC_API_KEY]",
		"stderr: [REDACTED:ANTHROPIC_API_KEY]", "shape: [REDACTED:ANTHROPIC_KEY]"} {
		if !strings.Contains(logText, want) {
			t.Errorf("task log lacks %q:\n%.2000s", want, logText)
		}
	}
	if p := jsStatus.Task.Progress; p == nil || p.ResultText != "final [REDACTED:ANTHROPIC_API_KEY] and [REDACTED:ANTHROPIC_KEY]" ||
		p.LastMessage != "key [REDACTED:ANTHROPIC_API_KEY]" {
		t.Errorf("stream-json progress: %+v", jsStatus.Task.Progress)
	}
	if !strings.Contains(strings.Join(jsLogs.Lines, "\n"), `"text":"key [REDACTED:ANTHROPIC_API_KEY]"`) {
		t.Errorf("stream-json log: %q", jsLogs.Lines)
	}

	// The CLI, on the same installation while the server runs.
	var cliOut []string
	cli := func(args ...string) {
		t.Helper()
		cmd := exec.Command(flowBinary(t), args...)
		cmd.Env = fi.env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("claude-parallel %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		cliOut = append(cliOut, strings.Join(args, " ")+": "+out.String())
	}
	for _, id := range ids {
		cli("task", "logs", id)
		cli("task", "logs", id, "--follow")
		cli("task", "show", id)
		cli("task", "show", id, "--json")
	}
	cli("task", "list")
	cli("diff", "list")
	cli("status")
	if d := textStatus.Task.DiffID; d != "" {
		cli("diff", "show", d, "--patch")
	}
	if !strings.Contains(cliOut[0], "whole: [REDACTED:ANTHROPIC_API_KEY]") {
		t.Errorf("task logs: %.2000s", cliOut[0])
	}

	// Stop the server so its logs are complete, then search everything.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_, _ = s.cmd.Process.Wait()
	surfaces := map[string]string{"server stderr": s.stderr.String()}
	for i, r := range replies {
		surfaces["mcp reply "+string(rune('A'+i%26))+":"+r[:min(len(r), 40)]] = r
	}
	for _, o := range cliOut {
		surfaces["cli "+o[:min(len(o), 40)]] = o
	}
	files := 0
	err := filepath.WalkDir(fi.home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		surfaces[p] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sawWAL, sawDB, sawRunLog, sawServerLog bool
	for name := range surfaces {
		sawWAL = sawWAL || strings.HasSuffix(name, ".db-wal")
		sawDB = sawDB || strings.HasSuffix(name, ".db")
		sawRunLog = sawRunLog || strings.HasSuffix(name, "run-1.log")
		sawServerLog = sawServerLog || strings.HasSuffix(name, "server-combined.log")
	}
	if !sawDB || !sawRunLog || !sawServerLog {
		t.Errorf("searched %d files but not all surfaces: db %v wal %v run log %v server log %v", files, sawDB, sawWAL, sawRunLog, sawServerLog)
	}
	for name, content := range surfaces {
		for _, secret := range []string{canary, shape, canary[4:], shape[:20]} {
			if strings.Contains(content, secret) {
				t.Errorf("%s holds the secret %q", name, secret)
			}
		}
	}
	t.Logf("searched %d files under the home, %d MCP replies, %d CLI outputs and the server's stderr", files, len(replies), len(cliOut))
}
