package e2e

// The real Claude Code CLI as the agent of a task, in the real hardened
// container (uid 10001, all capabilities dropped, no-new-privileges, network
// none, its own HOME), from the image `make agent-image` builds without a
// registry. The model is test/fakeanthropic's scripted model, served by
// test/fakeanthropic/fakeapi inside the container's own network namespace:
// the profile's command starts it, and it runs `claude` with
// ANTHROPIC_BASE_URL pointing at it. The script travels in the prompt (and
// in each answer and revision), so Claude Code uses its own Write, Read,
// Edit and Bash tools on the workspace as a model tells it to. fakeapi logs
// every conversation it received into the agent's home, where the test
// reads it from the host.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/test/fakeanthropic"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

const (
	agentImage     = "claude-parallel/agent:latest"
	agentTestImage = "claude-parallel/agent-fakeapi:test"
	// agentRetries bounds Claude Code's retries of a failed API call in the
	// test image (its default, 10 with a backoff of up to ~35 s, turns an
	// API error into minutes).
	agentRetries = "1"
)

var agentImageBuild struct {
	once sync.Once
	err  error
}

// agentTestImageFor builds the agent image (hack/build-agent-image.sh, a
// no-op when it is up to date) and on top of it the test image: the static
// fakeapi binary and an environment that keeps Claude Code quiet offline.
// The test image carries a hash of what it is made of and is rebuilt only
// when that changes.
func agentTestImageFor(t *testing.T) string {
	t.Helper()
	flowRequireDocker(t)
	agentImageBuild.once.Do(func() { agentImageBuild.err = buildAgentTestImage() })
	if agentImageBuild.err != nil {
		testutil.SkipOrFailInCI(t, "cannot build the agent images (make agent-image): %v", agentImageBuild.err)
	}
	return agentTestImage
}

func buildAgentTestImage() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	script, err := filepath.Abs(filepath.Join("..", "..", "hack", "build-agent-image.sh"))
	if err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "bash", script).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", script, err, out)
	}
	dir, err := os.MkdirTemp("", "cp-agent-test-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "fakeapi"),
		"github.com/claude-parallel/claude-parallel/test/fakeanthropic/fakeapi")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: it needs no library from the image
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build fakeapi: %w\n%s", err, out)
	}
	baseID, err := exec.CommandContext(ctx, "docker", "image", "inspect", "-f", "{{.Id}}", agentImage).Output()
	if err != nil {
		return fmt.Errorf("inspect %s: %w", agentImage, err)
	}
	dockerfile := `FROM ` + agentImage + `
COPY fakeapi /usr/local/bin/fakeapi
ENV DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    CLAUDE_CODE_MAX_RETRIES=` + agentRetries + `
`
	bin, err := os.ReadFile(filepath.Join(dir, "fakeapi"))
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write(baseID)
	h.Write([]byte(dockerfile))
	h.Write(bin)
	hash := hex.EncodeToString(h.Sum(nil))[:32]
	have, _ := exec.CommandContext(ctx, "docker", "image", "inspect", "-f",
		`{{ index .Config.Labels "claude-parallel.image-hash" }}`, agentTestImage).Output()
	if strings.TrimSpace(string(have)) == hash {
		return nil
	}
	dockerfile += "LABEL claude-parallel.image-hash=" + hash + "\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", "build", "-q", "-t", agentTestImage, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0") // the classic builder needs no buildx
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %w\n%s", agentTestImage, err, out)
	}
	return nil
}

// agentProfiles is the YAML of the test's profiles: the shipped claude
// profile's own command and resume command, started by fakeapi, on network
// none. `realclaude-down` points Claude Code at a port nobody listens on.
func agentProfiles(t *testing.T) string {
	t.Helper()
	shipped := config.Default().Profiles["claude"]
	q := func(argv ...string) string {
		b, err := json.Marshal(argv)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	profile := func(name string, fakeapi ...string) string {
		return `  ` + name + `:
    image: ` + agentTestImage + `
    output_format: stream-json
    network: none
    env: [ANTHROPIC_API_KEY]
    resources: {memory: 2g, cpus: 2, pids: 512}
    command: ` + q(append(fakeapi, shipped.Command...)...) + `
    resume_command: ` + q(append(fakeapi, shipped.ResumeCommand...)...) + `
`
	}
	return "profiles:\n" + profile("realclaude", "fakeapi", "--") + profile("realclaude-down", "fakeapi", "-down", "--")
}

// agentInstall is an installation whose server has a canary API key.
type agentInstall struct {
	*flowInstall
	canary string
}

func newAgentInstall(t *testing.T) *agentInstall {
	t.Helper()
	agentTestImageFor(t)
	fi := newFlowInstall(t)
	fi.writeConfig(agentProfiles(t))
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	canary := "sk-ant-api03-cpcanary" + hex.EncodeToString(rnd[:])
	fi.env = append(fi.env, "ANTHROPIC_API_KEY="+canary)
	return &agentInstall{flowInstall: fi, canary: canary}
}

// agentRecord is one line of fakeapi's log.
type agentRecord struct {
	Kind      string                  `json:"kind"`
	Path      string                  `json:"path"`
	KeySHA256 string                  `json:"keySha256"`
	Messages  []fakeanthropic.Message `json:"messages"`
	Tools     int                     `json:"tools"`
	Reply     *fakeanthropic.Reply    `json:"reply"`
}

// apiLog reads fakeapi's log from the task's home, split by run: element i
// holds what the fake API received during run i+1.
func (ai *agentInstall) apiLog(t *testing.T, taskID string) [][]agentRecord {
	t.Helper()
	path := filepath.Join(ai.home, "data", "workspaces", taskID, "home", ".fakeapi", "requests.jsonl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the fake API's log: %v", err)
	}
	var runs [][]agentRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var r agentRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("fake API log line %q: %v", sc.Text(), err)
		}
		if r.Kind == "start" {
			runs = append(runs, nil)
			continue
		}
		if len(runs) == 0 {
			t.Fatalf("fake API log begins without a start: %q", sc.Text())
		}
		runs[len(runs)-1] = append(runs[len(runs)-1], r)
	}
	return runs
}

// mainTurns are the model turns of a run that offered tools (Claude Code's
// side requests, such as a title, offer none).
func mainTurns(recs []agentRecord) []agentRecord {
	var out []agentRecord
	for _, r := range recs {
		if r.Kind == "turn" && r.Tools > 0 {
			out = append(out, r)
		}
	}
	return out
}

// streamResult is the result line of a run's stream-json, read from the
// task's log file: what Claude Code itself said of the run.
type streamResult struct {
	SessionID    string  `json:"session_id"`
	NumTurns     int     `json:"num_turns"`
	TotalCostUSD float64 `json:"total_cost_usd"`
	IsError      bool    `json:"is_error"`
	Result       string  `json:"result"`
}

func (ai *agentInstall) streamResult(t *testing.T, taskID string, run int) streamResult {
	t.Helper()
	path := filepath.Join(ai.home, "logs", "tasks", taskID, fmt.Sprintf("run-%d.log", run))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("run log: %v", err)
	}
	var found *streamResult
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.Index(line, "{")
		if i < 0 {
			continue
		}
		var l struct {
			Type string `json:"type"`
			streamResult
		}
		if json.Unmarshal([]byte(line[i:]), &l) == nil && l.Type == "result" {
			r := l.streamResult
			found = &r
		}
	}
	if found == nil {
		t.Fatalf("run %d's log has no stream-json result line:\n%s", run, b)
	}
	return *found
}

// checkProgress checks that work_status shows what Claude Code's own
// stream said of the run: its session, turns and cost.
func (ai *agentInstall) checkProgress(t *testing.T, v *service.TaskView, run int) streamResult {
	t.Helper()
	want := ai.streamResult(t, v.TaskID, run)
	if want.SessionID == "" || want.NumTurns == 0 || want.TotalCostUSD <= 0 {
		t.Errorf("run %d: Claude Code's result line lacks a session, turns or cost: %+v", run, want)
	}
	if p := v.Progress; p == nil || p.SessionID != want.SessionID || p.NumTurns != want.NumTurns || p.CostUSD != want.TotalCostUSD {
		t.Errorf("run %d: work_status progress %+v, want Claude Code's session %s, %d turns, $%v", run, p, want.SessionID, want.NumTurns, want.TotalCostUSD)
	}
	return want
}

// checkNoKey looks for the canary key (and its tail, which some tools show)
// in every file under the installation's home (database, WAL, server and
// task logs, workspaces, the agent's home with Claude Code's own files and
// the fake API's log) and in the server's stderr; and checks that the key
// did reach the API, so the search means something.
func (ai *agentInstall) checkNoKey(t *testing.T, s *flowServer, taskIDs ...string) {
	t.Helper()
	sum := sha256.Sum256([]byte(ai.canary))
	keyHash := hex.EncodeToString(sum[:])
	for _, id := range taskIDs {
		for run, recs := range ai.apiLog(t, id) {
			for _, r := range recs {
				if r.Kind == "request" && r.KeySHA256 != keyHash {
					t.Errorf("task %s run %d: the API got a key with sha256 %q, want the canary's %s", id, run+1, r.KeySHA256, keyHash)
				}
			}
		}
	}
	secrets := []string{ai.canary, ai.canary[len(ai.canary)-20:]}
	files, agentFiles := 0, 0
	err := filepath.WalkDir(ai.home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		if strings.Contains(p, string(filepath.Separator)+"home"+string(filepath.Separator)+".claude") {
			agentFiles++
		}
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds the API key (%q)", p, sec)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		if strings.Contains(s.stderr.String(), sec) {
			t.Errorf("the server's stderr holds the API key")
		}
	}
	if agentFiles == 0 {
		t.Errorf("searched %d files but none of Claude Code's own under the agent's home", files)
	}
	t.Logf("the key is in none of %d files (%d of Claude Code's) under %s, nor in the server's stderr", files, agentFiles, ai.home)
}

// inspectRun is the part of docker inspect the hardening check reads.
type inspectRun struct {
	Config struct {
		User  string
		Cmd   []string
		Image string
	}
	HostConfig struct {
		NetworkMode string
		CapDrop     []string
		SecurityOpt []string
	}
	Mounts []struct{ Source, Destination string }
}

func agentInspect(t *testing.T, name string) inspectRun {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "--type", "container", name).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", name, err)
	}
	var rs []inspectRun
	if err := json.Unmarshal(out, &rs); err != nil || len(rs) != 1 {
		t.Fatalf("docker inspect %s: %v", name, err)
	}
	return rs[0]
}

// checkHardened checks the run's container is the hardened one, with the
// real claude started by fakeapi.
func checkHardened(t *testing.T, c inspectRun, wantResume string) {
	t.Helper()
	if c.HostConfig.NetworkMode != "none" || !slices.Equal(c.HostConfig.CapDrop, []string{"ALL"}) ||
		!slices.Contains(c.HostConfig.SecurityOpt, "no-new-privileges") || c.Config.User == "" || strings.HasPrefix(c.Config.User, "0") {
		t.Errorf("container not hardened: user %q, network %q, cap drop %v, security %v",
			c.Config.User, c.HostConfig.NetworkMode, c.HostConfig.CapDrop, c.HostConfig.SecurityOpt)
	}
	if sep := slices.Index(c.Config.Cmd, "--"); len(c.Config.Cmd) < 4 || c.Config.Cmd[0] != "fakeapi" || sep < 0 || sep+1 >= len(c.Config.Cmd) || c.Config.Cmd[sep+1] != "claude" {
		t.Errorf("argv %q, want fakeapi -- claude ...", c.Config.Cmd)
	}
	resume := slices.Index(c.Config.Cmd, "--resume")
	switch {
	case wantResume == "" && resume >= 0:
		t.Errorf("a first run resumes: %q", c.Config.Cmd)
	case wantResume != "" && (resume < 0 || resume+1 >= len(c.Config.Cmd) || c.Config.Cmd[resume+1] != wantResume):
		t.Errorf("argv %q, want --resume %s", c.Config.Cmd, wantResume)
	}
}

// agentAwaitRun waits with wait_for_tasks until run n of the task has
// finished and returns its work_status. Claude Code takes tens of seconds
// to start on a loaded machine, and several may start at once, so the wait
// is long; it ends as soon as the run does.
func agentAwaitRun(t *testing.T, s *flowServer, taskID string, n int) *service.TaskView {
	t.Helper()
	deadline := time.Now().Add(12 * time.Minute)
	for {
		var w service.WaitResult
		s.call(t, "wait_for_tasks", map[string]any{"taskIds": []string{taskID}, "timeoutSeconds": 30}, &w)
		if w.AllFinished {
			if v := s.asStatus(t, taskID); v.RunNumber >= n && v.Finished {
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d of task %s not finished: %+v\nserver log:\n%s", n, taskID, w.Tasks, s.stderr)
		}
		if w.AllFinished {
			time.Sleep(200 * time.Millisecond) // the follow-up's run has not started yet
		}
	}
}

// conversationHas reports whether a turn's conversation holds a text (the
// user's or the model's) or a tool result containing want.
func conversationHas(msgs []fakeanthropic.Message, want string) bool {
	for _, m := range msgs {
		for _, tx := range m.Texts {
			if strings.Contains(tx, want) {
				return true
			}
		}
		for _, r := range m.ToolResults {
			if strings.Contains(r.Text, want) {
				return true
			}
		}
	}
	return false
}

func agScript(steps ...fakeanthropic.Reply) string { return fakeanthropic.Script(steps...) }

func agWrite(path, content string) fakeanthropic.Reply {
	return fakeanthropic.Reply{Tool: "Write", Input: map[string]any{"file_path": path, "content": content}}
}
func agRead(path string) fakeanthropic.Reply {
	return fakeanthropic.Reply{Tool: "Read", Input: map[string]any{"file_path": path}}
}
func agEdit(path, old, new string) fakeanthropic.Reply {
	return fakeanthropic.Reply{Tool: "Edit", Input: map[string]any{"file_path": path, "old_string": old, "new_string": new}}
}
func agBash(cmd string) fakeanthropic.Reply {
	return fakeanthropic.Reply{Tool: "Bash", Input: map[string]any{"command": cmd, "description": "run " + cmd}}
}
func agSay(text string) fakeanthropic.Reply { return fakeanthropic.Reply{Text: text} }

// TestAgentClaude_WritesResumesAndAnswers is one task over three runs of
// the real Claude Code in the real container:
//  1. it looks around with Bash and asks a question without changing
//     anything: needs_input, with Claude Code's session, turns and cost;
//  2. the answer resumes the same session (the fake API gets run 1's
//     conversation again) and Claude Code writes, reads, edits and runs a
//     command: the files it wrote are the task's diff;
//  3. a revision resumes it once more (the API gets runs 1 and 2): it edits
//     and deletes, and the new diff holds the result against the original
//     base;
//
// and the API key is nowhere in the store, the logs or the agent's home.
func TestAgentClaude_WritesResumesAndAnswers(t *testing.T) {
	ai := newAgentInstall(t)
	s := pdServe(t, ai.flowInstall)
	head := testutil.Git(t, ai.repo, "rev-parse", "HEAD")

	const question = "Which greeting should hello.txt hold: hello or bonjour?"
	prompt := "Write a greeting file.\n" + agScript(
		agBash("ls -a /workspace && id -u"),
		agSay(question))
	var started service.TaskWorkerResult
	s.call(t, "task_worker", map[string]any{"task": prompt, "workFolder": ai.repo, "agent": "realclaude"}, &started)
	taskID := started.TaskID

	// Run 1: a question, no change.
	v := agentAwaitRun(t, s, taskID, 1)
	if v.Status != "needs_input" || v.DiffID != "" {
		t.Fatalf("run 1 ended %s (%s: %s), diff %q; want needs_input without a diff\nserver log:\n%s", v.Status, v.Reason, v.Message, v.DiffID, s.stderr)
	}
	if v.PendingQuestion != question {
		t.Errorf("pending question %q, want %q", v.PendingQuestion, question)
	}
	r1 := ai.checkProgress(t, v, 1)
	checkHardened(t, agentInspect(t, "claude-parallel-"+taskID+"-r1"), "")
	log1 := mainTurns(ai.apiLog(t, taskID)[0])
	if len(log1) != 2 {
		t.Fatalf("run 1: the model got %d turns, want 2 (Bash, then the question)", len(log1))
	}
	// What Bash printed reached the model: the workspace's file, and the
	// uid the agent ran as.
	if last := log1[1].Messages; !conversationHas(last, "README.md") || !conversationHas(last, "10001") && !conversationHas(last, fmt.Sprint(os.Getuid())) {
		t.Errorf("run 1: Bash's output did not reach the model: %+v", last[len(last)-1])
	}

	// Run 2: the answer continues the session; Claude Code writes files.
	answer := "bonjour\n" + agScript(
		agWrite("/workspace/hello.txt", "bonjour\n"),
		agRead("/workspace/hello.txt"),
		agEdit("/workspace/hello.txt", "bonjour", "bonjour, world"),
		agBash("mkdir -p notes && printf 'built by bash\\n' > notes/build.txt"),
		agSay("Wrote hello.txt and notes/build.txt."))
	var fu service.FollowUpResult
	s.call(t, "answer_worker_question", map[string]any{"taskId": taskID, "answer": answer}, &fu)
	v = agentAwaitRun(t, s, taskID, 2)
	if v.Status != "completed" || v.DiffID == "" {
		t.Fatalf("run 2: status %s (%s: %s), diff %q\nserver log:\n%s", v.Status, v.Reason, v.Message, v.DiffID, s.stderr)
	}
	r2 := ai.checkProgress(t, v, 2)
	if r2.SessionID != r1.SessionID {
		t.Errorf("run 2 ran session %s, want run 1's %s", r2.SessionID, r1.SessionID)
	}
	checkHardened(t, agentInspect(t, "claude-parallel-"+taskID+"-r2"), r1.SessionID)
	log2 := mainTurns(ai.apiLog(t, taskID)[1])
	if len(log2) != 5 {
		t.Errorf("run 2: the model got %d turns, want 5", len(log2))
	}
	if len(log2) > 0 {
		first := log2[0].Messages
		for _, want := range []string{"Write a greeting file.", "README.md", question} {
			if !conversationHas(first, want) {
				t.Errorf("run 2's first request lacks run 1's %q: the session was not resumed", want)
			}
		}
	}
	var review service.ReviewResult
	s.call(t, "review_changes", map[string]any{"diffId": v.DiffID, "format": "detailed"}, &review)
	d2 := review.Diff
	if got := asFiles(d2); !slices.Equal(got, []string{"hello.txt:added", "notes/build.txt:added"}) || d2.BaseCommit != head ||
		!strings.Contains(d2.Patch, "+bonjour, world\n") || !strings.Contains(d2.Patch, "+built by bash\n") {
		t.Fatalf("run 2's diff: files %q, base %s (want %s), patch:\n%s", got, d2.BaseCommit, head, d2.Patch)
	}

	// Run 3: a revision continues the session again.
	feedback := "Say hello to the whole world and drop the notes.\n" + agScript(
		agRead("/workspace/hello.txt"),
		agEdit("/workspace/hello.txt", "bonjour, world", "bonjour, le monde"),
		agBash("rm -r notes"),
		agSay("Revised."))
	s.call(t, "request_revision", map[string]any{"diffId": d2.DiffID, "feedback": feedback}, &fu)
	v = agentAwaitRun(t, s, taskID, 3)
	if v.Status != "completed" || v.DiffID == "" || v.DiffID == d2.DiffID {
		t.Fatalf("run 3: status %s (%s: %s), diff %q (run 2's %s)\nserver log:\n%s", v.Status, v.Reason, v.Message, v.DiffID, d2.DiffID, s.stderr)
	}
	r3 := ai.checkProgress(t, v, 3)
	if r3.SessionID != r1.SessionID {
		t.Errorf("run 3 ran session %s, want %s", r3.SessionID, r1.SessionID)
	}
	checkHardened(t, agentInspect(t, "claude-parallel-"+taskID+"-r3"), r1.SessionID)
	if log3 := mainTurns(ai.apiLog(t, taskID)[2]); len(log3) > 0 {
		for _, want := range []string{"Write a greeting file.", question, "Wrote hello.txt and notes/build.txt.", "File created successfully"} {
			if !conversationHas(log3[0].Messages, want) {
				t.Errorf("run 3's first request lacks the earlier %q", want)
			}
		}
	} else {
		t.Errorf("run 3: the model got no turn")
	}
	s.call(t, "review_changes", map[string]any{"diffId": v.DiffID, "format": "detailed"}, &review)
	d3 := review.Diff
	if got := asFiles(d3); !slices.Equal(got, []string{"hello.txt:added"}) || d3.BaseCommit != head ||
		!strings.Contains(d3.Patch, "+bonjour, le monde\n") {
		t.Fatalf("run 3's diff: files %q, base %s, patch:\n%s", got, d3.BaseCommit, d3.Patch)
	}
	var applied service.ApplyResult
	s.call(t, "apply_changes", map[string]any{"diffId": d3.DiffID}, &applied)
	if applied.Outcome != service.OutcomeApplied {
		t.Fatalf("apply: %+v", applied)
	}
	if got := flowReadFile(t, filepath.Join(ai.repo, "hello.txt")); got != "bonjour, le monde\n" {
		t.Errorf("hello.txt = %q", got)
	}
	ai.checkNoKey(t, s, taskID)
}

// TestAgentClaude_APIErrorsFailTheTask: an API that refuses the key (401),
// one that is overloaded (529) and one that is not there (connection
// refused) each end the task failed, with the agent's own words naming the
// error, and the key is nowhere in the store or the logs.
func TestAgentClaude_APIErrorsFailTheTask(t *testing.T) {
	ai := newAgentInstall(t)
	s := pdServe(t, ai.flowInstall)
	cases := []struct {
		name, agent, prompt string
		want                []string // all in the task's message
	}{
		{"401", "realclaude", "Fix the bug.\n" + agScript(fakeanthropic.Reply{Status: 401}), []string{"401", "authentication_error"}},
		{"529", "realclaude", "Fix the bug.\n" + agScript(fakeanthropic.Reply{Status: 529}), []string{"529", "overloaded"}},
		{"connection refused", "realclaude-down", "Fix the bug.", []string{"ECONNREFUSED"}},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		var started service.TaskWorkerResult
		s.call(t, "task_worker", map[string]any{"task": c.prompt, "workFolder": ai.repo, "agent": c.agent}, &started)
		ids[i] = started.TaskID
	}
	for i, c := range cases {
		v := agentAwaitRun(t, s, ids[i], 1)
		if v.Status != "failed" || v.Reason != "AgentError" || v.DiffID != "" {
			t.Errorf("%s: status %s, reason %s (%s), diff %q; want failed with reason AgentError", c.name, v.Status, v.Reason, v.Message, v.DiffID)
		}
		for _, want := range c.want {
			if !strings.Contains(v.Message, want) {
				t.Errorf("%s: message %q does not name %q", c.name, v.Message, want)
			}
		}
		if res := ai.streamResult(t, ids[i], 1); !res.IsError || !strings.Contains(v.Message, res.Result) {
			t.Errorf("%s: Claude Code's result %+v is not the task's message %q", c.name, res, v.Message)
		}
		recs := ai.apiLog(t, ids[i])
		if len(recs) != 1 {
			t.Fatalf("%s: %d fakeapi runs logged, want 1", c.name, len(recs))
		}
		if turns := mainTurns(recs[0]); c.agent == "realclaude" && len(turns) == 0 {
			t.Errorf("%s: the API never got a request", c.name)
		} else if c.agent == "realclaude-down" && len(recs[0]) != 0 {
			t.Errorf("%s: a request reached an API that should be down: %+v", c.name, recs[0])
		}
		checkHardened(t, agentInspect(t, "claude-parallel-"+ids[i]+"-r1"), "")
	}
	ai.checkNoKey(t, s, ids[:2]...)
}

// TestAgentImage_RunsHardened: the agent image runs Claude Code, bash and git
// as uid 10001 with a read-only root, no capabilities, no network and HOME
// on a tmpfs, and its programs cannot be changed by the agent.
func TestAgentImage_RunsHardened(t *testing.T) {
	agentTestImageFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(readOnly bool, script string) string {
		t.Helper()
		args := []string{"run", "--rm", "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
			"--user", "10001:10001", "--tmpfs", "/tmp", "--tmpfs", "/home/agent:uid=10001,gid=10001"}
		if readOnly {
			args = append(args, "--read-only")
		}
		out, err := exec.CommandContext(ctx, "docker", append(args, agentImage, "bash", "-c", script)...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker run %s: %v\n%s", agentImage, err, out)
		}
		return string(out)
	}
	version, err := exec.CommandContext(ctx, "docker", "image", "inspect", "-f",
		`{{ index .Config.Labels "claude-parallel.claude-code-version" }}`, agentImage).Output()
	if err != nil || strings.TrimSpace(string(version)) == "" {
		t.Fatalf("%s has no claude-code-version label: %v %q", agentImage, err, version)
	}
	got := run(true, `set -e; id -u; claude --version; git --version; echo "$HOME $SHELL"; touch "$HOME/ok" && echo home-ok`)
	for _, want := range []string{"10001\n", strings.TrimSpace(string(version)) + " (Claude Code)", "git version ", "/home/agent /bin/bash", "home-ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("read-only run: output lacks %q:\n%s", want, got)
		}
	}
	// Even on a writable root, the image's programs and directories belong
	// to root: the agent cannot change them.
	got = run(false, `for p in /usr/local/bin/claude /bin/bash /usr/bin/git /etc/passwd /probe /usr/local/bin/probe; do `+
		`if touch "$p" 2>/dev/null; then echo "WRITABLE $p"; fi; done; echo checked`)
	if strings.Contains(got, "WRITABLE") || !strings.Contains(got, "checked") {
		t.Errorf("the agent can write the image's files:\n%s", got)
	}
}
