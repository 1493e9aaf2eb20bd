package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// BenchmarkStoreDrivers measures, in one run, task start (intent written →
// Docker's StartedAt, under the controllers) and apply_changes (through the
// real server over stdio) with the store on PostgreSQL (the tests' server,
// hack/ensure-postgres.sh, on a unix socket) against the embedded SQLite
// file, rounds interleaved so both see the same machine load, and prints
// the medians and their ratio.
//
//	go test -run '^$' -bench StoreDrivers -benchtime 1x ./test/e2e/
func BenchmarkStoreDrivers(b *testing.B) {
	eng := enginetest.New(b)
	const rounds = 10
	for range b.N {
		lite := newBenchEnv(b, eng)
		pg := newBenchEnvOn(b, eng, models.DriverPostgres, testutil.PostgresDSN(b))
		var startLite, startPG []time.Duration
		for range rounds {
			startLite = append(startLite, lite.viaControllers(b, 1, true)...)
			startPG = append(startPG, pg.viaControllers(b, 1, true)...)
		}
		reportDrivers(b, "task start (intent→running, one task)", "start", startLite, startPG)

		fiLite := newFlowInstall(b)
		fiPG := newFlowInstall(b)
		dsn := testutil.PostgresDSN(b)
		fiPG.env = append(fiPG.env, config.EnvDBDSN+"="+dsn)
		removeStoreContainers(b, dsn)
		sLite, sPG := fiLite.stdio(), fiPG.stdio()
		var applyLite, applyPG, workerLite, workerPG []time.Duration
		for i := range rounds {
			w, a := timedApply(b, sLite, fiLite, i)
			workerLite, applyLite = append(workerLite, w), append(applyLite, a)
			w, a = timedApply(b, sPG, fiPG, i)
			workerPG, applyPG = append(workerPG, w), append(applyPG, a)
		}
		reportDrivers(b, "task_worker (real server, stdio)", "task_worker", workerLite, workerPG)
		reportDrivers(b, "apply_changes (real server, one added file)", "apply", applyLite, applyPG)
	}
}

// timedApply runs a task adding a file through s and applies its diff,
// returning how long task_worker and apply_changes took.
func timedApply(b *testing.B, s *flowServer, fi *flowInstall, i int) (worker, apply time.Duration) {
	var started service.TaskWorkerResult
	t0 := time.Now()
	s.call(b, "task_worker", map[string]any{"task": fmt.Sprintf("echo %d > added-%d.txt", i, i), "workFolder": fi.repo, "agent": "shell"}, &started)
	worker = time.Since(t0)
	w := s.waitTask(b, started.TaskID)
	if w.DiffID == "" {
		b.Fatalf("task %s made no diff: %+v", started.TaskID, w)
	}
	var res service.ApplyResult
	t0 = time.Now()
	s.call(b, "apply_changes", map[string]any{"diffId": w.DiffID}, &res)
	apply = time.Since(t0)
	if res.Outcome != service.OutcomeApplied {
		b.Fatalf("apply: %+v", res)
	}
	return worker, apply
}

func reportDrivers(b *testing.B, what, metric string, lite, pg []time.Duration) {
	ml, mp := median(lite), median(pg)
	ratio := float64(mp) / float64(ml)
	fmt.Printf("store  | %-44s | sqlite median %7.1fms | postgres median %7.1fms | ratio postgres/sqlite %.2f\n",
		what, ms(ml), ms(mp), ratio)
	b.ReportMetric(ratio, "pg-ratio-"+metric)
}

// removeStoreContainers removes, when the test ends, the containers of the
// PostgreSQL store at dsn (flowInstall's cleanup looks for the SQLite file).
func removeStoreContainers(tb testing.TB, dsn string) {
	tb.Cleanup(func() {
		s, err := models.OpenPostgres(context.Background(), dsn, models.Options{})
		if err != nil {
			return
		}
		defer s.Close()
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+engine.LabelStore+"="+s.InstallationID()).Output()
		for _, c := range strings.Fields(string(out)) {
			_ = exec.Command("docker", "rm", "-f", c).Run()
		}
	})
}
