package mcp

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
)

func fuzzConfig(t testing.TB) (*config.Config, string) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	gitInit(t, filepath.Join(root, "repo"))
	cfg := config.Default()
	cfg.AllowedRoots = []string{root}
	return cfg, root
}

// FuzzDecodeTaskWorker: whatever arrives, decoding and validation return a
// request or bad-input errors naming an argument; they never panic, and an
// accepted request keeps every bound.
func FuzzDecodeTaskWorker(f *testing.F) {
	for _, seed := range []string{
		`{"task":"echo hi","workFolder":"/tmp/x"}`,
		`{"task":"x","workFolder":"/r","containerConfig":{"memory":"1g","cpus":"1.5","timeout":600000},"priority":"high"}`,
		`{"task":"x","workFolder":"/r","baseRef":"--output=/tmp/x","dependsOn":["task-0123456789ab","x"]}`,
		`{"task":"x","workFolder":"../../etc","containerConfig":{"memory":1e400,"cpus":"inf","timeout":"1000h"}}`,
		`{"task":null,"workFolder":{},"agent":["shell"],"includeUncommitted":"yes"}`,
		`[]`, `"x"`, `null`, `{"task":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	cfg, root := fuzzConfig(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := decodeJSON(data)
		if err != nil {
			return
		}
		req, err := DecodeTaskWorker(raw, cfg)
		if err != nil {
			checkInputErrors(t, err)
			return
		}
		if req.Prompt == "" || utf8.RuneCountInString(req.Prompt) > service.MaxPromptChars || strings.ContainsRune(req.Prompt, 0) {
			t.Fatalf("accepted prompt of %d characters", utf8.RuneCountInString(req.Prompt))
		}
		if _, ok := cfg.Profiles[req.Agent]; !ok {
			t.Fatalf("accepted agent %q", req.Agent)
		}
		if req.BaseRef != "" && (strings.HasPrefix(req.BaseRef, "-") || service.CheckRefName("baseRef", req.BaseRef) != nil) {
			t.Fatalf("accepted ref %q", req.BaseRef)
		}
		if len(req.DependsOn) > service.MaxDependsOn || req.Timeout < 0 || req.Timeout > cfg.MaxTaskTimeout.Duration ||
			req.MemoryBytes < 0 || req.NanoCPUs < 0 {
			t.Fatalf("accepted out-of-range request %+v", req)
		}
		// Path resolution must hold its ground on whatever string got through.
		folder, ierr := service.ResolveRepoDir(context.Background(), "workFolder", req.WorkFolder, []string{root})
		if ierr == nil && !service.Within(folder, root) {
			t.Fatalf("resolved %q to %q, outside %s", req.WorkFolder, folder, root)
		}
	})
}

// FuzzDecodeApplyChanges covers a second tool's decoding: ids, paths, enums
// and booleans.
func FuzzDecodeApplyChanges(f *testing.F) {
	for _, seed := range []string{
		`{"diffId":"diff-0123456789ab"}`,
		`{"diffId":"diff-0123456789ab","targetWorkspace":"/x","mode":"branch","confirm":false}`,
		`{"diffId":"../etc","mode":"--all","confirm":"yes","extra":1}`,
		`{}`, `[1]`,
	} {
		f.Add([]byte(seed))
	}
	_, root := fuzzConfig(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, err := decodeJSON(data)
		if err != nil {
			return
		}
		req, err := DecodeApplyChanges(raw)
		if err != nil {
			checkInputErrors(t, err)
			return
		}
		if service.CheckDiffID("diffId", req.DiffID) != nil || !req.Mode.Valid() {
			t.Fatalf("accepted %+v", req)
		}
		if req.TargetWorkspace != "" {
			if dir, ierr := service.ResolveRepoDir(context.Background(), "targetWorkspace", req.TargetWorkspace, []string{root}); ierr == nil && !service.Within(dir, root) {
				t.Fatalf("resolved %q outside the root", req.TargetWorkspace)
			}
		}
	})
}

func checkInputErrors(t *testing.T, err error) {
	t.Helper()
	var probs service.InputErrors
	if !service.IsInputError(err) {
		t.Fatalf("not an input error: %v", err)
	}
	if e, ok := err.(service.InputErrors); ok {
		probs = e
	}
	if len(probs) == 0 || len(probs) > service.MaxReportedProblems {
		t.Fatalf("%d problems", len(probs))
	}
	for _, p := range probs {
		if p.Arg == "" || p.Problem == "" {
			t.Fatalf("incomplete problem %+v", p)
		}
	}
}
