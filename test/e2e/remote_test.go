package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// The remote-engine tests run the controllers against the machine's SECOND
// Docker engine (hack/ensure-docker2.sh: its own socket, data root and
// containerd) with workspace_transfer: copy, as they would run against an
// engine on another machine: the task containers get no host path, the
// workspace is copied in through the Docker API before start and the work
// tree copied back out after exit.

// remoteInstall is an installation whose controllers use the second engine
// in copy mode; env is what its controllerd processes need for that.
func remoteInstall(t *testing.T, repo string) (*install, []string) {
	t.Helper()
	eng, host := enginetest.NewSecond(t)
	in := installOn(t, eng, repo)
	return in, []string{config.EnvDockerHost + "=" + host, "CP_WORKSPACE_TRANSFER=" + config.TransferCopy}
}

// installOn is newInstall on engine eng and repository repo.
func installOn(t *testing.T, eng *engine.Engine, repo string) *install {
	t.Helper()
	home := t.TempDir()
	testutil.UnmountBelowAtEnd(t, home) // copy-on-write workspaces are mounts
	store, err := models.Open(context.Background(), filepath.Join(home, "data", "claude-parallel.db"), models.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	in := &install{t: t, home: home, repo: repo, store: store, eng: eng}
	t.Cleanup(func() {
		enginetest.RemoveAll(t, eng, engine.StoreLabels(store.InstallationID()))
		_ = store.Close()
	})
	return in
}

// transferRepo makes a repository with what a copy could get wrong: an
// executable script, a symbolic link, a nested folder, a binary file of a
// few megabytes (so a kill during a copy lands mid-stream), an uncommitted
// change and an untracked file (both part of the task's snapshot).
func transferRepo(t testing.TB) string {
	t.Helper()
	repo := testutil.NewRepo(t, t.TempDir(), map[string]string{
		"README.md":      "hello\n",
		"src/main.go":    "package main\n\nfunc main() {}\n",
		"tools/build.sh": "#!/bin/sh\necho build\n",
		"old.txt":        "to be deleted\n",
	})
	if err := os.Chmod(filepath.Join(repo, "tools/build.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("src/main.go", filepath.Join(repo, "main-link")); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Git(t, repo, "add", "-A")
	testutil.Git(t, repo, "commit", "-q", "-m", "fixture")
	testutil.WriteFile(t, filepath.Join(repo, "README.md"), "hello\nuncommitted line\n")
	testutil.WriteFile(t, filepath.Join(repo, "notes/untracked.txt"), "untracked\n")
	return repo
}

// changeScript changes the work tree in every way a diff records: an edit,
// a new file in a new folder, a deletion, a mode change, a new symbolic
// link, a binary file and a rename.
const changeScript = `set -e
echo "edited by the agent" >> README.md
mkdir -p pkg/util && printf 'package util\n' > pkg/util/util.go
rm old.txt
chmod +x src/main.go
ln -s ../README.md pkg/readme-link
printf '\000\001\002binary\377' > data.bin
mv notes/untracked.txt notes/moved.txt
echo done > result.txt`

// TestRemoteEngine_CopyMatchesBind runs the same task on the machine's engine
// with the workspace bind-mounted and on the second engine with it copied:
// the copy-mode container has no bind mount at all, and the two patches are
// the same bytes.
func TestRemoteEngine_CopyMatchesBind(t *testing.T) {
	t.Parallel()
	repo := transferRepo(t)

	local := installOn(t, enginetest.New(t), repo)
	remote, env := remoteInstall(t, repo)

	var patches [2][]byte
	for i, in := range []*install{local, remote} {
		var c *child
		if in == remote {
			c = in.start("remote", env...)
		} else {
			c = in.start("local")
		}
		task := &models.Task{Spec: models.TaskSpec{Prompt: changeScript, WorkFolder: repo, Agent: "shell", IncludeUncommitted: true}}
		if _, _, err := in.store.CreateTask(context.Background(), task); err != nil {
			t.Fatal(err)
		}
		got := in.wait(task.ID, 120*time.Second, finished)
		c.stop(t)
		if got.Status.Phase != models.TaskPhaseSucceeded || got.Status.DiffID == "" {
			t.Fatalf("%s task: %+v\nlog:\n%s", c.name, got.Status,
				testutil.ReadFile(t, filepath.Join(in.home, "logs", "tasks", task.ID, "run-1.log")))
		}
		d, err := in.store.GetDiff(context.Background(), got.Status.DiffID)
		if err != nil {
			t.Fatal(err)
		}
		patches[i] = []byte(d.Patch)

		list, err := in.eng.List(context.Background(), engine.StoreLabels(in.store.InstallationID()), true)
		if err != nil || len(list) != 1 {
			t.Fatalf("%s: containers %v, %v; want one", c.name, list, err)
		}
		info, err := in.eng.Inspect(context.Background(), list[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		var binds []string
		for _, m := range info.Mounts {
			if m.Type == "bind" {
				binds = append(binds, m.Source+":"+m.Target)
			}
		}
		_, copied := engine.CopyTargets(info.Labels)
		switch {
		case in == remote && (len(info.Mounts) != 0 || !copied):
			t.Errorf("remote container %s: mounts %+v, copy label %v; want no mount at all and the copy label", info.Name, info.Mounts, copied)
		case in == local && (len(binds) != 2 || copied):
			t.Errorf("local container %s: binds %v, copy label %v; want the workspace and home bound", info.Name, binds, copied)
		}
	}
	for _, want := range []string{"README.md", "pkg/util/util.go", "old.txt", "src/main.go", "pkg/readme-link",
		"data.bin", "notes/moved.txt", "result.txt", "GIT binary patch", "new mode 100755", "new file mode 120000"} {
		if !bytes.Contains(patches[0], []byte(want)) {
			t.Errorf("bind-mode patch lacks %q:\n%s", want, patches[0])
		}
	}
	if !bytes.Equal(patches[0], patches[1]) {
		t.Errorf("copy-mode patch differs from the bind-mode one\n--- bind:\n%s\n--- copy:\n%s", patches[0], patches[1])
	}
}

// TestRemoteEngine_KillDuringCopy kills the controllers while the workspace
// is being copied into the container and while the work tree is being
// copied back out, and at the steps right after: the restarted controllers
// adopt the container and finish the run once, with one container, its whole
// log, and a diff that holds the run's change and nothing a cut copy left
// (a truncated big.bin would show as a change).
func TestRemoteEngine_KillDuringCopy(t *testing.T) {
	for _, step := range controllers.TransferSteps() {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			in, env := remoteInstall(t, transferRepo(t))
			task := in.submit(countScript(countLines, "0.02"))
			first := in.start("first", append(env, "CP_CRASH_AT="+string(step))...)
			first.waitKilled(t, 90*time.Second)
			in.start("second", env...)
			got := in.wait(task.ID, 120*time.Second, finished)
			in.checkRun(got, countLines)
			d, err := in.store.GetDiff(context.Background(), got.Status.DiffID)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, f := range d.Files {
				files = append(files, f.Path)
			}
			if !slices.Equal(files, []string{"result.txt"}) {
				t.Errorf("diff files %v, want [result.txt]:\n%s", files, d.Patch)
			}
		})
	}
}
