package controllers

import (
	"reflect"
	"slices"
	"testing"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/workspace"
	"github.com/claude-parallel/claude-parallel/models"
)

// TestBuildRunSpec_Table: the container spec is a pure function of its
// input; each row changes one input and names what must follow from it.
func TestBuildRunSpec_Table(t *testing.T) {
	cfg := config.Default()
	shell, claude := cfg.Profiles["shell"], cfg.Profiles["claude"]
	ws := &workspace.Workspace{WorkDir: "/d/ws/w", HomeDir: "/d/ws/h"}
	task := func(agent string, mem, cpus int64, followUp string) *models.Task {
		return &models.Task{ID: "task-00000000000a", Spec: models.TaskSpec{Prompt: "p", Agent: agent,
			MemoryBytes: mem, NanoCPUs: cpus, FollowUp: followUp}}
	}
	none := func(string) (string, bool) { return "", false }
	key := func(k string) (string, bool) { return "v-" + k, k == "ANTHROPIC_API_KEY" }
	cases := []struct {
		name     string
		in       runSpecInput
		wantName string
		wantCmd  []string // nil: not checked
		wantMem  int64
		wantEnv  []string
		wantDir  string
	}{
		{name: "first run: the prompt is one argv element",
			in:       runSpecInput{StoreID: "s1", Task: task("shell", 0, 0, ""), Run: 1, Profile: shell, Workspace: ws, LookupEnv: none},
			wantName: "claude-parallel-task-00000000000a-r1", wantCmd: []string{"sh", "-c", "p"},
			wantMem: shell.Resources.MemoryBytes, wantEnv: []string{"HOME=" + agentHome}, wantDir: "/workspace"},
		{name: "memory asked above the ceiling is clamped",
			in:       runSpecInput{StoreID: "s1", Task: task("shell", 1<<40, 0, ""), Run: 3, Profile: shell, Workspace: ws, LookupEnv: none},
			wantName: "claude-parallel-task-00000000000a-r3",
			wantMem:  shell.Ceilings.MemoryBytes, wantEnv: []string{"HOME=" + agentHome}, wantDir: "/workspace"},
		{name: "subdirectory of the repository is the working directory",
			in: runSpecInput{StoreID: "s1", Task: task("shell", 0, 0, ""), Run: 1, Profile: shell,
				Workspace: &workspace.Workspace{WorkDir: "/w", HomeDir: "/h", Subdir: "a/b"}, LookupEnv: none},
			wantName: "claude-parallel-task-00000000000a-r1",
			wantMem:  shell.Resources.MemoryBytes, wantEnv: []string{"HOME=" + agentHome}, wantDir: "/workspace/a/b"},
		{name: "resume with a session continues it",
			in: runSpecInput{StoreID: "s1", Task: task("claude", 0, 0, "more"), Run: 2, Profile: claude, Workspace: ws,
				SessionID: "s-1", LookupEnv: key},
			wantName: "claude-parallel-task-00000000000a-r2",
			wantMem:  claude.Resources.MemoryBytes, wantEnv: []string{"HOME=" + agentHome, "ANTHROPIC_API_KEY=v-ANTHROPIC_API_KEY"},
			wantDir: "/workspace"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := buildRunSpec(c.in)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := buildRunSpec(c.in)
			if !reflect.DeepEqual(got, again) {
				t.Errorf("two builds of one input differ:\n%+v\n%+v", got, again)
			}
			if got.Name != c.wantName || got.MemoryBytes != c.wantMem || got.WorkDir != c.wantDir ||
				!reflect.DeepEqual(got.Env, c.wantEnv) || c.wantCmd != nil && !slices.Equal(got.Cmd, c.wantCmd) {
				t.Errorf("spec %+v", got)
			}
			if c.in.SessionID != "" && !slices.Contains(got.Cmd, c.in.SessionID) {
				t.Errorf("cmd %q does not resume session %s", got.Cmd, c.in.SessionID)
			}
			if s, id, run, ok := engine.Owner(got.Labels); !ok || id != c.in.Task.ID || run != c.in.Run || s != c.in.StoreID {
				t.Errorf("labels %v", got.Labels)
			}
			if len(got.Mounts) != 2 || got.Mounts[0].Source != c.in.Workspace.WorkDir || got.Mounts[1].Target != agentHome {
				t.Errorf("mounts %+v: want the workspace and the agent home only", got.Mounts)
			}
		})
	}
}

func TestContainerUser(t *testing.T) {
	cases := []struct {
		profile    string
		euid, egid int
		want       runAs
		err        bool
	}{
		{"10001:10001", 0, 0, runAs{"10001:10001", 10001, 10001}, false},
		{"10001", 0, 0, runAs{}, true}, // config refuses it too: one rule
		{"10001:10001:1", 0, 0, runAs{}, true},
		{"10001:10001", 1000, 1000, runAs{"1000:1000", -1, -1}, false},
		{"0:0", 0, 0, runAs{}, true},
		{"agent", 0, 0, runAs{}, true},
		{"10001:0", 0, 0, runAs{}, true},
	}
	for _, c := range cases {
		got, err := containerUser(c.profile, c.euid, c.egid)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("containerUser(%q, %d): %+v, %v", c.profile, c.euid, got, err)
		}
	}
}

func TestBuildRunSpec(t *testing.T) {
	cfg := config.Default()
	shell := cfg.Profiles["shell"]
	claude := cfg.Profiles["claude"]
	ws := &workspace.Workspace{WorkDir: "/data/ws/task-000000000001/work", HomeDir: "/data/ws/task-000000000001/home", Subdir: "pkg/a"}
	task := &models.Task{ID: "task-000000000001", Spec: models.TaskSpec{Prompt: "do it; rm -rf / # 'quoted'", Agent: "shell",
		MemoryBytes: 100 << 30, NanoCPUs: 500_000_000}}
	env := map[string]string{"ANTHROPIC_API_KEY": "secret", "HOME": "/root"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	spec, err := buildRunSpec(runSpecInput{Task: task, Run: 1, Profile: shell, Workspace: ws, StoreID: "store1", User: "10001:10001", LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(spec.Cmd, []string{"sh", "-c", task.Spec.Prompt}) {
		t.Errorf("cmd %q: the prompt must be one argv element", spec.Cmd)
	}
	if spec.MemoryBytes != shell.Ceilings.MemoryBytes || spec.NanoCPUs != 500_000_000 || spec.PidsLimit != shell.Resources.Pids {
		t.Errorf("resources %d %d %d: want memory clamped to the ceiling, the CPUs asked, default pids", spec.MemoryBytes, spec.NanoCPUs, spec.PidsLimit)
	}
	if spec.WorkDir != "/workspace/pkg/a" || spec.Network != "none" || spec.User != "10001:10001" || spec.Name != "claude-parallel-task-000000000001-r1" {
		t.Errorf("spec %+v", spec)
	}
	if !reflect.DeepEqual(spec.Env, []string{"HOME=" + agentHome}) {
		t.Errorf("env %q: the shell profile passes nothing from the host", spec.Env)
	}
	if s, id, run, ok := engine.Owner(spec.Labels); !ok || s != "store1" || id != task.ID || run != 1 {
		t.Errorf("labels %v", spec.Labels)
	}

	task.Spec.Agent = "claude"
	task.Spec.FollowUp = "also add tests"
	spec, err = buildRunSpec(runSpecInput{Task: task, Run: 2, Profile: claude, Workspace: ws, StoreID: "store1", User: "10001:10001",
		SessionID: "sess-9", LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(spec.Cmd, "--resume") || !slices.Contains(spec.Cmd, "sess-9") || !slices.Contains(spec.Cmd, "also add tests") {
		t.Errorf("resume cmd %q", spec.Cmd)
	}
	if !reflect.DeepEqual(spec.Env, []string{"HOME=" + agentHome, "ANTHROPIC_API_KEY=secret"}) {
		t.Errorf("env %q", spec.Env)
	}

	// No session recorded: a fresh start with the follow-up appended.
	argv, err := commandFor(task, 2, claude, "")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(argv, "--resume") || argv[2] != task.Spec.Prompt+"\n\nalso add tests" {
		t.Errorf("fallback cmd %q", argv)
	}
}
