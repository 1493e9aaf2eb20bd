package service

import (
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/models"
)

// TestFacts_SameTextWithoutTheCalls: Facts is Markdown without the "Next:"
// block, and hands the calls over instead; a diff whose patch was not asked
// for gets the call that shows it before the decisions.
func TestFacts_SameTextWithoutTheCalls(t *testing.T) {
	pending := func(hidden bool) *ReviewResult {
		return &ReviewResult{Diff: &DiffView{DiffID: "diff-0123456789ab", TaskID: "task-0123456789ab", RunNumber: 1,
			Status: string(models.DiffStatePending), Desired: string(models.DiffDesiredPending)}, PatchHidden: hidden}
	}
	full := pending(true).Markdown()
	facts, next := Facts(pending(true))
	if len(next) != 4 || next[0].Tool != "review_changes" || next[0].Args["showContent"] != true || next[1].Tool != "apply_changes" {
		t.Fatalf("next of a pending diff shown without its patch: %+v", next)
	}
	if strings.Contains(facts, "Next:") || strings.Contains(facts, "`apply_changes") {
		t.Fatalf("facts name the calls:\n%s", facts)
	}
	if !strings.HasPrefix(full, facts) || !strings.Contains(full[len(facts):], CallText(next[0])) {
		t.Fatalf("markdown is not the facts then the calls:\n%s\n---\n%s", full, facts)
	}
	if _, next := Facts(pending(false)); len(next) != 3 || next[0].Tool != "apply_changes" {
		t.Fatalf("next of a pending diff shown with its patch: %+v", next)
	}
}
