package controllers

import (
	"testing"

	"github.com/claude-parallel/claude-parallel/models"
)

func TestDecideAdmission(t *testing.T) {
	q := func(ids ...string) []admissionCandidate {
		var out []admissionCandidate
		for _, id := range ids {
			eligible := id[0] != '!'
			if !eligible {
				id = id[1:]
			}
			out = append(out, admissionCandidate{ID: id, Eligible: eligible})
		}
		return out
	}
	cases := []struct {
		name        string
		self        string
		queue       []admissionCandidate
		active, max int
		want        bool
	}{
		{"free slot, first in line", "a", q("a", "b"), 0, 1, true},
		{"free slot, second in line", "b", q("a", "b"), 0, 1, false},
		{"two slots, second in line", "b", q("a", "b", "c"), 0, 2, true},
		{"two slots, third in line", "c", q("a", "b", "c"), 0, 2, false},
		{"no slot left", "a", q("a"), 3, 3, false},
		{"over the limit (config lowered)", "a", q("a"), 5, 3, false},
		{"waiting tasks hold no place", "c", q("!a", "!b", "c"), 0, 1, true},
		{"self not eligible", "a", q("!a", "b"), 0, 2, false},
		{"self not queued", "z", q("a"), 0, 5, false},
	}
	for _, c := range cases {
		if got := decideAdmission(c.self, c.queue, c.active, c.max); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCheckDependencies(t *testing.T) {
	withState := func(id string, phase models.TaskPhase, question string) *models.Task {
		t := &models.Task{ID: id}
		t.Status.Phase, t.Status.PendingQuestion = phase, question
		t.Status.State = models.TaskStateFor(phase, question)
		return t
	}
	deps := map[string]*models.Task{
		"task-00000000000a": withState("task-00000000000a", models.TaskPhaseSucceeded, ""),
		"task-00000000000b": withState("task-00000000000b", models.TaskPhaseRunning, ""),
		"task-00000000000c": withState("task-00000000000c", models.TaskPhaseTimedOut, ""),
		"task-00000000000d": withState("task-00000000000d", models.TaskPhaseSucceeded, "which?"),
	}
	cases := []struct {
		deps    []string
		verdict depVerdict
		msg     string
	}{
		{nil, depsReady, ""},
		{[]string{"task-00000000000a"}, depsReady, ""},
		{[]string{"task-00000000000a", "task-00000000000b"}, depsWaiting, "waiting for dependencies: task-00000000000b"},
		{[]string{"task-00000000000d"}, depsWaiting, "waiting for dependencies: task-00000000000d"},
		{[]string{"task-00000000000b", "task-00000000000c"}, depsFailed, "dependency task-00000000000c timed_out"},
		{[]string{"task-0000000000ff"}, depsFailed, "dependency task-0000000000ff not found"},
		{[]string{"task-000000000001"}, depsFailed, "dependency task-000000000001 is the task itself"},
	}
	for _, c := range cases {
		v, msg := checkDependencies("task-000000000001", c.deps, deps)
		if v != c.verdict || msg != c.msg {
			t.Errorf("%v: %v %q, want %v %q", c.deps, v, msg, c.verdict, c.msg)
		}
	}
}
