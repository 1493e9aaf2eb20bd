package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// TestChaos_ServeReplicasOnPostgres runs two real `claude-parallel serve
// --http` processes on one PostgreSQL database: one leads and runs the
// tasks, the other serves MCP and takes over when the leader dies. While
// tasks arrive through either replica's MCP endpoint, a random replica is
// killed with SIGKILL and started again. When the chaos ends, every task
// has succeeded exactly once: one run, one diff, one container in Docker.
// The seed is logged; CP_CHAOS_SEED replays a run.
func TestChaos_ServeReplicasOnPostgres(t *testing.T) {
	t.Parallel()
	seed := testutil.Seed(t, "CP_CHAOS_SEED")
	rng := rand.New(rand.NewPCG(seed, 0))
	fi := newFlowInstall(t)
	dsn := testutil.PostgresDSN(t)
	fi.env = append(fi.env, config.EnvDBDSN+"="+dsn)
	store, err := models.OpenPostgres(context.Background(), dsn, models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+engine.LabelStore+"="+store.InstallationID()).Output()
		for _, c := range strings.Fields(string(out)) {
			_ = exec.Command("docker", "rm", "-f", c).Run()
		}
		_ = store.Close()
	})

	replicas := []*flowServer{fi.http(), fi.http()}
	// leader is the index of the replica holding the lease (-1: none now);
	// a holder's identity (procid) carries its pid.
	leader := func() int {
		holder, _, ok, err := store.LeaseHolder(context.Background(), models.LeaderLease)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range replicas {
			if ok && strings.Contains(holder, fmt.Sprintf(":%d:", r.cmd.Process.Pid)) {
				return i
			}
		}
		return -1
	}
	var ids []string
	submit := func() {
		via := replicas[rng.IntN(len(replicas))]
		var started service.TaskWorkerResult
		script := fmt.Sprintf("sleep 0.%d; echo once > once.txt", 1+rng.IntN(9))
		if err := via.callErr("task_worker", map[string]any{"task": script, "workFolder": fi.repo, "agent": "shell"}, &started); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, started.TaskID)
	}
	kills, leaderKills := 0, 0
	kill := func(i int) {
		if i == leader() {
			leaderKills++
		}
		_ = replicas[i].cmd.Process.Signal(syscall.SIGKILL)
		_, _ = replicas[i].cmd.Process.Wait()
		replicas[i] = fi.http()
		kills++
	}
	end := time.Now().Add(chaosDuration(t))
	for time.Now().Before(end) || len(ids) == 0 {
		if rng.IntN(3) != 0 {
			submit()
		}
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		if rng.IntN(2) == 0 {
			kill(rng.IntN(len(replicas)))
		}
	}
	// The point is the takeover: kill the leader if the dice never did,
	// with a task in flight.
	for deadline := time.Now().Add(2 * time.Minute); leaderKills == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no replica took the leader lease within 2 minutes")
		}
		if i := leader(); i >= 0 {
			submit()
			kill(i)
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	submit()
	t.Logf("%d tasks, %d kills -9 of a replica, %d of them of the leader", len(ids), kills, leaderKills)

	for _, id := range ids {
		got := replicas[0].waitTask(t, id)
		if got.Status != string(models.TaskStateCompleted) {
			t.Errorf("task %s ended %+v", id, got)
		}
		task, err := store.GetTask(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if task.Status.Phase != models.TaskPhaseSucceeded || task.Status.RunNumber != 1 {
			t.Errorf("task %s: phase %s, run %d; want one succeeded run", id, task.Status.Phase, task.Status.RunNumber)
		}
		if diffs, err := store.ListDiffs(context.Background(), models.DiffFilter{TaskID: id}); err != nil || len(diffs) != 1 {
			t.Errorf("task %s: %d diffs (%v), want 1", id, len(diffs), err)
		}
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+engine.LabelStore+"="+store.InstallationID(),
			"--filter", "label="+engine.LabelTaskID+"="+id).Output()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(string(out))); n != 1 {
			t.Errorf("task %s: %d containers, want exactly 1", id, n)
		}
	}
}
