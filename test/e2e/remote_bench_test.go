package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/models"
)

// BenchmarkRemoteTransfer measures, in one run, what the copy workspace
// transfer costs against the local bind baseline: the same task (it adds a
// file) on the transferRepo workspace (a few small files and a 4 MiB binary),
// run by controllers on the machine's engine with the workspace bind-mounted
// (the baseline), on the second engine (hack/ensure-docker2.sh) with it
// copied, and on the second engine bind-mounted (the same engine without the
// copy, which tells the transfer's cost apart from the engine's). Samples are
// interleaved so machine load hits every side alike. For each it prints the
// medians of
//
//   - start: task intent written → Docker's StartedAt of its container (copy
//     mode includes the copy in);
//
//   - collect: the container's exit (Docker's FinishedAt) → the task finished
//     with its diff stored (copy mode includes the copy out);
//
//   - apply: apply intent (branch mode) written → the diff applied; it does
//     not touch the engine, so it should not move.
//
//     go test -run '^$' -bench RemoteTransfer -benchtime 1x ./test/e2e/
func BenchmarkRemoteTransfer(b *testing.B) {
	main := enginetest.New(b)
	second, _ := enginetest.NewSecond(b)
	for range b.N {
		sides := []struct {
			name string
			env  *benchEnv
		}{
			{"bind, machine's engine (baseline)", newBenchEnv(b, main)},
			{"copy, second engine", newBenchEnv(b, second)},
			{"bind, second engine", newBenchEnv(b, second)},
		}
		for i, s := range sides {
			cfg := s.env.cfg.Clone()
			cfg.WorkspaceTransfer = config.TransferBind
			cfg.AllowedRoots = []string{os.TempDir()} // transferRepo is made there
			if i == 1 {
				cfg.WorkspaceTransfer = config.TransferCopy
			}
			s.env.cfg = cfg
			s.env.sys.SetConfig(cfg)
			s.env.repo = transferRepo(b)
		}
		const rounds = 9
		type figures struct{ start, collect, apply []time.Duration }
		got := make([]figures, len(sides))
		var floorIn, floorOut []time.Duration
		for r := range rounds {
			for i, s := range sides {
				st, co, ap, ws := transferSample(b, s.env, r)
				got[i].start = append(got[i].start, st)
				got[i].collect = append(got[i].collect, co)
				got[i].apply = append(got[i].apply, ap)
				if i == 1 {
					in, out := copyFloor(b, s.env, ws, r)
					floorIn, floorOut = append(floorIn, in), append(floorOut, out)
				}
			}
		}
		base := got[0]
		for i, s := range sides {
			g := got[i]
			fmt.Printf("remote | %-34s | start %7.1fms (ratio %.2f) | collect %7.1fms (ratio %.2f) | apply %6.1fms (ratio %.2f) | medians of %d\n",
				s.name, ms(median(g.start)), ratioOf(g.start, base.start), ms(median(g.collect)), ratioOf(g.collect, base.collect),
				ms(median(g.apply)), ratioOf(g.apply, base.apply), rounds)
		}
		// The machine's engine is shared with everything else on the machine;
		// the second engine with bind mounts isolates what the copies cost.
		fmt.Printf("remote | copy against bind on the same (second) engine: start ratio %.2f, collect ratio %.2f, apply ratio %.2f\n",
			ratioOf(got[1].start, got[2].start), ratioOf(got[1].collect, got[2].collect), ratioOf(got[1].apply, got[2].apply))
		fmt.Printf("remote | copy floor: the engine client's CopyToContainer of the same workspace into a created container %.1fms, "+
			"CopyFromContainer of its /workspace %.1fms (medians of %d)\n", ms(median(floorIn)), ms(median(floorOut)), rounds)
		b.ReportMetric(ratioOf(got[1].start, base.start), "ratio-start-copy")
		b.ReportMetric(ratioOf(got[1].collect, base.collect), "ratio-collect-copy")
		b.ReportMetric(ratioOf(got[1].apply, base.apply), "ratio-apply-copy")
		b.ReportMetric(ratioOf(got[1].start, got[2].start), "ratio-start-copy-same-engine")
		b.ReportMetric(ratioOf(got[1].collect, got[2].collect), "ratio-collect-copy-same-engine")
	}
}

func ratioOf(ours, base []time.Duration) float64 {
	return float64(median(ours)) / float64(median(base))
}

// transferSample runs one task on env and applies its diff as a branch.
func transferSample(b *testing.B, env *benchEnv, round int) (start, collect, apply time.Duration, workspace string) {
	b.Helper()
	task := &models.Task{Spec: models.TaskSpec{Prompt: fmt.Sprintf("echo %d > added-%d.txt", round, round),
		WorkFolder: env.repo, Agent: "shell", IncludeUncommitted: true}}
	t0 := time.Now()
	if _, _, err := env.store.CreateTask(env.ctx, task); err != nil {
		b.Fatal(err)
	}
	env.sys.Notify(controllers.KindTask, task.ID)
	var done *models.Task
	deadline := time.Now().Add(3 * time.Minute)
	for {
		t, err := env.store.GetTask(env.ctx, task.ID)
		if err != nil {
			b.Fatal(err)
		}
		if t.Status.Finished {
			done = t
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("task %s never finished: %+v", task.ID, t.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if done.Status.Phase != models.TaskPhaseSucceeded || done.Status.DiffID == "" || done.Status.EndTime == nil {
		b.Fatalf("task %s: %+v", task.ID, done.Status)
	}
	info, err := env.eng.Inspect(env.ctx, done.Status.ContainerID)
	if err != nil {
		b.Fatal(err)
	}
	start = info.StartedAt.Sub(t0)
	collect = done.Status.EndTime.Sub(info.FinishedAt)

	t1 := time.Now()
	if _, err := env.store.UpdateDiffSpec(env.ctx, done.Status.DiffID, func(d *models.Diff) error {
		d.Spec.Desired, d.Spec.ApplyMode, d.Spec.TargetWorkspace = models.DiffDesiredApplied, models.ApplyModeBranch, env.repo
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	env.sys.Notify(controllers.KindDiff, done.Status.DiffID)
	for {
		d, err := env.store.GetDiff(env.ctx, done.Status.DiffID)
		if err != nil {
			b.Fatal(err)
		}
		if d.Status.Phase == models.DiffPhaseApplied {
			break
		}
		if d.Status.Phase == models.DiffPhaseFailed || d.Status.Phase == models.DiffPhaseConflict || time.Since(t1) > time.Minute {
			b.Fatalf("apply of %s: %+v", d.ID, d.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	apply = time.Since(t1)
	return start, collect, apply, done.Status.WorkspacePath
}

// copyFloor times the engine's bare copy of a task's workspace (work tree
// and home) into a created container, and of the work tree back out.
func copyFloor(b *testing.B, env *benchEnv, ws string, round int) (in, out time.Duration) {
	b.Helper()
	taskID := models.NewTaskID()
	spec := engine.RunSpec{
		Name: engine.ContainerName(taskID, 1), Image: enginetest.ShellImage, Cmd: []string{"true"},
		Labels: enginetest.Merge(engine.Labels("bench-direct", taskID, 1), env.directLabels),
		User:   "10001:10001", WorkDir: "/workspace", Network: "none",
		MemoryBytes: 64 << 20, NanoCPUs: 500_000_000, PidsLimit: 64, CopyMounts: true,
		Mounts: []engine.Mount{{Source: filepath.Join(ws, "work"), Target: "/workspace"}, {Source: filepath.Join(ws, "home"), Target: "/home/agent"}},
	}
	id, err := env.eng.Create(env.ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = env.eng.Remove(env.ctx, id, true) }()
	t0 := time.Now()
	if err := env.eng.CopyIn(env.ctx, id, spec.Mounts, spec.User, nil); err != nil {
		b.Fatal(err)
	}
	in = time.Since(t0)
	t0 = time.Now()
	rc, err := env.eng.CopyOut(env.ctx, id, "/workspace")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		b.Fatal(err)
	}
	rc.Close()
	return in, time.Since(t0)
}
