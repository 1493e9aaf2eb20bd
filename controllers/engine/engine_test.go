package engine_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

const (
	testUser   = "10001:10001"
	testMemory = 64 << 20
	testCPUs   = 500_000_000 // half a CPU
	testPids   = 64
)

// spec is a valid, hardened RunSpec for the shell image, owned by a random store and
// task and carrying the test's cleanup labels.
func spec(t *testing.T, testLabels map[string]string, script string) engine.RunSpec {
	t.Helper()
	taskID := "task-" + enginetest.RandomHex(6)
	return engine.RunSpec{
		Name:        engine.ContainerName(taskID, 1),
		Image:       enginetest.ShellImage,
		Cmd:         []string{"sh", "-c", script},
		Env:         []string{"SECRET_TOKEN=do-not-log-me"},
		Labels:      enginetest.Merge(engine.Labels("store-"+enginetest.RandomHex(4), taskID, 1), testLabels),
		User:        testUser,
		WorkDir:     "/workspace",
		Network:     "none",
		MemoryBytes: testMemory,
		NanoCPUs:    testCPUs,
		PidsLimit:   testPids,
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, e *engine.Engine, s engine.RunSpec) string {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	id, err := e.Create(ctx, s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return id
}

func finished(c engine.ContainerInfo) bool { return c.Finished() }

// readAll reads every log line of a stream, parsing each.
func readLines(t *testing.T, r io.Reader) (stamps []time.Time, texts []string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		ts, text, ok := engine.ParseLogLine(sc.Text())
		if !ok {
			t.Fatalf("log line without a docker timestamp: %q", sc.Text())
		}
		stamps, texts = append(stamps, ts), append(texts, text)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading logs: %v", err)
	}
	return stamps, texts
}

func TestNamesAndLabels(t *testing.T) {
	if got := engine.ContainerName("task-0123456789ab", 2); got != "claude-parallel-task-0123456789ab-r2" {
		t.Errorf("ContainerName = %q", got)
	}
	l := engine.Labels("inst-1", "task-0123456789ab", 3)
	want := map[string]string{
		"claude-parallel": "true", "claude-parallel.store": "inst-1",
		"claude-parallel.task-id": "task-0123456789ab", "claude-parallel.run": "3",
	}
	if fmt.Sprint(l) != fmt.Sprint(want) {
		t.Errorf("Labels = %v, want %v", l, want)
	}
	store, task, runN, ok := engine.Owner(l)
	if !ok || store != "inst-1" || task != "task-0123456789ab" || runN != 3 {
		t.Errorf("Owner = %q %q %d %v", store, task, runN, ok)
	}
	for _, bad := range []map[string]string{
		nil,
		{"claude-parallel.store": "s", "claude-parallel.task-id": "t", "claude-parallel.run": "1"},
		{"claude-parallel": "true", "claude-parallel.store": "s", "claude-parallel.task-id": "t", "claude-parallel.run": "x"},
		{"claude-parallel": "true", "claude-parallel.task-id": "t", "claude-parallel.run": "1"},
	} {
		if _, _, _, ok := engine.Owner(bad); ok {
			t.Errorf("Owner(%v) accepted", bad)
		}
	}
}

func TestParseLogLine(t *testing.T) {
	ts, text, ok := engine.ParseLogLine("2026-11-27T08:15:04.123456789Z hello world\n")
	if !ok || text != "hello world" || ts.Nanosecond() != 123456789 {
		t.Errorf("got %v %q %v", ts, text, ok)
	}
	if _, text, ok := engine.ParseLogLine("2026-11-27T08:15:04.000000001Z \n"); !ok || text != "" {
		t.Errorf("empty line: %q %v", text, ok)
	}
	if _, _, ok := engine.ParseLogLine("no timestamp here"); ok {
		t.Error("line without timestamp accepted")
	}
}

// A line Docker cut into 16 KiB entries, each stamped, reads whole again; a
// stamp-like text anywhere else stays.
func TestParseLogLine_JoinsDockerPartialEntries(t *testing.T) {
	const stamp1, stamp2, stamp3 = "2026-11-27T08:15:04.000000001Z", "2026-11-27T08:15:04.000000002Z", "2026-11-27T08:15:04.000000003Z"
	first := strings.Repeat("a", engine.PartialLogSize-4) + "SECR"
	second := "ET" + strings.Repeat("b", engine.PartialLogSize-2)
	third := "tail " + stamp1 + " stays"
	_, text, ok := engine.ParseLogLine(stamp1 + " " + first + stamp2 + " " + second + stamp3 + " " + third + "\n")
	if want := first + second + third; !ok || text != want {
		t.Errorf("joined line: ok %v, %d bytes, want %d; holds SECRET: %v", ok, len(text), len(want), strings.Contains(text, "SECRET"))
	}
	short := "x " + stamp2 + " y"
	if _, text, _ := engine.ParseLogLine(stamp1 + " " + short); text != short {
		t.Errorf("short line changed: %q", text)
	}
}

// TestCreate_RefusesUnsafeSpecs checks the policy is enforced before Docker is asked,
// and that a refusal never echoes an environment value.
func TestCreate_RefusesUnsafeSpecs(t *testing.T) {
	e, err := engine.New("")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	dir := t.TempDir()
	linkToRun := filepath.Join(dir, "run-link")
	if err := os.Symlink("/var/run", linkToRun); err != nil {
		t.Fatal(err)
	}
	base := spec(t, nil, "true")
	cases := map[string]func(*engine.RunSpec){
		"no name":            func(s *engine.RunSpec) { s.Name = "" },
		"no image":           func(s *engine.RunSpec) { s.Image = "" },
		"empty user":         func(s *engine.RunSpec) { s.User = "" },
		"uid 0":              func(s *engine.RunSpec) { s.User = "0" },
		"root by name":       func(s *engine.RunSpec) { s.User = "root" },
		"0:0":                func(s *engine.RunSpec) { s.User = "0:0" },
		"root group":         func(s *engine.RunSpec) { s.User = "10001:0" },
		"named user":         func(s *engine.RunSpec) { s.User = "agent" },
		"host network":       func(s *engine.RunSpec) { s.Network = "host" },
		"container network":  func(s *engine.RunSpec) { s.Network = "container:abc" },
		"no memory limit":    func(s *engine.RunSpec) { s.MemoryBytes = 0 },
		"no cpu limit":       func(s *engine.RunSpec) { s.NanoCPUs = 0 },
		"no pids limit":      func(s *engine.RunSpec) { s.PidsLimit = -1 },
		"relative workdir":   func(s *engine.RunSpec) { s.WorkDir = "workspace" },
		"host root":          func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: "/", Target: "/host"}} },
		"docker socket":      func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: "/var/run/docker.sock", Target: "/s"}} },
		"docker socket /run": func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: "/run/docker.sock", Target: "/s"}} },
		"socket directory":   func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: "/var/run", Target: "/r"}} },
		"parent of socket":   func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: "/var", Target: "/v"}} },
		"symlink to run":     func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: linkToRun, Target: "/r"}} },
		"dotdot to root":     func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: dir + "/../../../../..", Target: "/r"}} },
		"relative source":    func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: "work", Target: "/workspace"}} },
		"over root":          func(s *engine.RunSpec) { s.Mounts = []engine.Mount{{Source: dir, Target: "/"}} },
		"env not KEY=VALUE":  func(s *engine.RunSpec) { s.Env = []string{"=hunter2-secret"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := base
			mutate(&s)
			id, err := e.Create(ctxT(t, 10*time.Second), s)
			if !errors.Is(err, engine.ErrRefused) {
				t.Fatalf("Create = %q, %v; want ErrRefused", id, err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "do-not-log-me") {
				t.Errorf("error leaks an env value: %v", err)
			}
		})
	}
}

func TestPingAndImage(t *testing.T) {
	e := enginetest.New(t)
	ctx := ctxT(t, 10*time.Second)
	v, api, err := e.Ping(ctx)
	if err != nil || v == "" || api == "" {
		t.Fatalf("Ping = %q %q %v", v, api, err)
	}
	t.Logf("engine %s, API %s", v, api)
	if ok, err := e.ImageExists(ctx, enginetest.ShellImage); !ok || err != nil {
		t.Errorf("ImageExists(shell) = %v %v", ok, err)
	}
	if ok, err := e.ImageExists(ctx, "claude-parallel/no-such-image:latest"); ok || err != nil {
		t.Errorf("ImageExists(missing) = %v %v", ok, err)
	}
}

func TestCreate_MissingImage(t *testing.T) {
	e := enginetest.New(t)
	s := spec(t, enginetest.Labels(t, e), "true")
	s.Image = "claude-parallel/no-such-image:latest"
	_, err := e.Create(ctxT(t, 30*time.Second), s)
	if !errors.Is(err, engine.ErrImageNotFound) {
		t.Fatalf("Create = %v, want ErrImageNotFound", err)
	}
}

func TestRun_OutputAndExitCode(t *testing.T) {
	e := enginetest.New(t)
	s := spec(t, enginetest.Labels(t, e), `echo "to stdout"; echo "to stderr" >&2; echo "user $(id -u):$(id -g) in $(pwd)"; exit 3`)
	id := run(t, e, s)

	info := enginetest.WaitFor(t, e, id, 30*time.Second, finished)
	if info.ExitCode != 3 || info.State != engine.StateExited || info.OOMKilled {
		t.Errorf("state %q exit %d oom %v, want exited 3", info.State, info.ExitCode, info.OOMKilled)
	}
	// Docker stamps StartedAt once containerd reports the start, so a process
	// that exits at once can be stamped finished a few milliseconds before it
	// was stamped started (seen here: 1 ms). Both must be set and about right.
	if info.StartedAt.IsZero() || info.FinishedAt.IsZero() || info.FinishedAt.Before(info.StartedAt.Add(-time.Second)) {
		t.Errorf("times: started %v finished %v", info.StartedAt, info.FinishedAt)
	}
	if info.Name != s.Name || info.Image != enginetest.ShellImage || info.Labels[engine.LabelTaskID] == "" {
		t.Errorf("identity: name %q image %q labels %v", info.Name, info.Image, info.Labels)
	}

	rc, err := e.Logs(ctxT(t, 30*time.Second), id, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	stamps, texts := readLines(t, rc)
	for _, want := range []string{"to stdout", "to stderr", "user 10001:10001 in /workspace"} {
		if !slices.Contains(texts, want) {
			t.Errorf("logs %q lack %q", texts, want)
		}
	}
	if !slices.IsSortedFunc(stamps, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Errorf("timestamps not in order: %v", stamps)
	}
}

func TestCreate_NameConflictReturnsExisting(t *testing.T) {
	e := enginetest.New(t)
	s := spec(t, enginetest.Labels(t, e), "sleep 30")
	ctx := ctxT(t, 30*time.Second)
	first, err := e.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.Create(ctx, s)
	if !errors.Is(err, engine.ErrNameConflict) {
		t.Fatalf("second Create err = %v, want ErrNameConflict", err)
	}
	var conflict *engine.NameConflictError
	if !errors.As(err, &conflict) || conflict.ID != first || second != first {
		t.Fatalf("conflict id %v / returned %q, want %q", conflict, second, first)
	}
	list, err := e.List(ctx, map[string]string{engine.LabelTaskID: s.Labels[engine.LabelTaskID]}, true)
	if err != nil || len(list) != 1 {
		t.Fatalf("containers for the task run: %d (%v), want exactly 1", len(list), err)
	}
}

// TestCreate_HardeningVisibleInInspectAndInside checks the isolation both as Docker
// records it and as the process inside experiences it.
func TestCreate_HardeningVisibleInInspectAndInside(t *testing.T) {
	e := enginetest.New(t)
	work := t.TempDir()
	if err := os.Chmod(work, 0o777); err != nil { // the container runs as 10001
		t.Fatal(err)
	}
	s := spec(t, enginetest.Labels(t, e), `
		id -u; id -g
		grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status
		echo made-inside > /workspace/out.txt
		cat /proc/mounts | awk '{print $2}' | grep -E '^/(workspace|tmp)$'
		echo done`)
	s.Mounts = []engine.Mount{{Source: work, Target: "/workspace"}}
	id := run(t, e, s)
	info := enginetest.WaitFor(t, e, id, 30*time.Second, finished)

	if info.User != testUser {
		t.Errorf("User = %q", info.User)
	}
	if !slices.Equal(info.CapDrop, []string{"ALL"}) || len(info.CapAdd) != 0 || info.Privileged {
		t.Errorf("CapDrop %v CapAdd %v Privileged %v", info.CapDrop, info.CapAdd, info.Privileged)
	}
	if !slices.ContainsFunc(info.SecurityOpt, func(o string) bool { return strings.HasPrefix(o, "no-new-privileges") }) {
		t.Errorf("SecurityOpt = %v", info.SecurityOpt)
	}
	if info.MemoryBytes != testMemory || info.MemorySwap != testMemory || info.NanoCPUs != testCPUs || info.PidsLimit != testPids {
		t.Errorf("limits: memory %d swap %d nanoCPUs %d pids %d", info.MemoryBytes, info.MemorySwap, info.NanoCPUs, info.PidsLimit)
	}
	if info.NetworkMode != "none" {
		t.Errorf("NetworkMode = %q", info.NetworkMode)
	}
	if len(info.Mounts) != 1 || info.Mounts[0].Source != work || info.Mounts[0].Target != "/workspace" || info.Mounts[0].Type != "bind" {
		t.Errorf("Mounts = %+v, want only %s on /workspace", info.Mounts, work)
	}
	if _, ok := info.Tmpfs["/tmp"]; !ok {
		t.Errorf("Tmpfs = %v", info.Tmpfs)
	}

	rc, err := e.Logs(ctxT(t, 30*time.Second), id, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, texts := readLines(t, rc)
	out := strings.Join(texts, "\n")
	t.Logf("inside:\n%s", out)
	if info.ExitCode != 0 {
		t.Fatalf("script exited %d: %s", info.ExitCode, out)
	}
	for _, want := range []string{"10001\n10001", "CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "/workspace", "/tmp"} {
		if !strings.Contains(out, want) {
			t.Errorf("inside output lacks %q", want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(work, "out.txt")); err != nil || string(b) != "made-inside\n" {
		t.Errorf("file written in the mount: %q %v", b, err)
	}
}

// TestLogs_ResumeFromTimestamp follows a container's numbered output on stdout and
// stderr, stops half-way as a crashed follower would, and resumes with LogResume from
// what it stored: every line must arrive exactly once, each stream in its order.
func TestLogs_ResumeFromTimestamp(t *testing.T) {
	e := enginetest.New(t)
	const n = 60
	s := spec(t, enginetest.Labels(t, e), fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "out $i"; [ $((i %% 3)) = 0 ] && echo "err $i" >&2; sleep 0.02; i=$((i+1)); done`, n))
	id := run(t, e, s)

	// First follower: store some lines, then "crash".
	rc, err := e.Logs(ctxT(t, 60*time.Second), id, time.Time{}, true)
	if err != nil {
		t.Fatal(err)
	}
	var stored []engine.LogLine
	sc := bufio.NewScanner(rc)
	for len(stored) < 25 && sc.Scan() {
		ts, text, ok := engine.ParseLogLine(sc.Text())
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		stored = append(stored, engine.LogLine{Time: ts, Text: text})
	}
	rc.Close()
	if len(stored) < 25 {
		t.Fatalf("first follower read only %d lines (%v)", len(stored), sc.Err())
	}
	got := []string{}
	for _, l := range stored {
		got = append(got, l.Text)
	}

	// Second follower resumes from what was stored, until the container ends.
	resume := engine.NewLogResume(stored)
	rc2, err := e.Logs(ctxT(t, 60*time.Second), id, resume.Since(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc2.Close()
	stamps, texts := readLines(t, rc2)
	for i := range texts {
		if resume.Keep(stamps[i], texts[i]) {
			got = append(got, texts[i])
		}
	}

	var wantOut, wantErr, gotOut, gotErr []string
	for i := 1; i <= n; i++ {
		wantOut = append(wantOut, "out "+strconv.Itoa(i))
		if i%3 == 0 {
			wantErr = append(wantErr, "err "+strconv.Itoa(i))
		}
	}
	for _, l := range got {
		if strings.HasPrefix(l, "out ") {
			gotOut = append(gotOut, l)
		} else {
			gotErr = append(gotErr, l)
		}
	}
	if !slices.Equal(gotOut, wantOut) || !slices.Equal(gotErr, wantErr) {
		t.Fatalf("resumed output differs:\n got %q\nwant %q + %q", got, wantOut, wantErr)
	}

	// Logs(since) itself: after the exit, a read from a stamp returns exactly the lines
	// stamped after it.
	rc3, err := e.Logs(ctxT(t, 30*time.Second), id, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	allStamps, all := readLines(t, rc3)
	rc3.Close()
	if len(all) != len(wantOut)+len(wantErr) {
		t.Fatalf("full read has %d lines, want %d", len(all), len(wantOut)+len(wantErr))
	}
	cut := allStamps[9]
	var want []string
	for i, ts := range allStamps {
		if ts.After(cut) {
			want = append(want, all[i])
		}
	}
	rc4, err := e.Logs(ctxT(t, 30*time.Second), id, cut, false)
	if err != nil {
		t.Fatal(err)
	}
	_, after := readLines(t, rc4)
	rc4.Close()
	if !slices.Equal(after, want) {
		t.Errorf("read after %v: got %q, want %q", cut, after, want)
	}
}

// TestLogResume_OutOfOrderStreams reproduces the interleaving Docker can store: a
// stderr line stamped before the stdout line stored ahead of it.
func TestLogResume_OutOfOrderStreams(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	file := []engine.LogLine{ // in stored order
		{Time: at(1), Text: "out 1"}, {Time: at(3), Text: "out 2"}, {Time: at(2), Text: "err 1"}, {Time: at(5), Text: "out 3"}, {Time: at(4), Text: "err 2"}, {Time: at(6), Text: "out 4"},
	}
	for cut := 0; cut <= len(file); cut++ {
		r := engine.NewLogResume(file[:cut])
		got := []string{}
		for _, l := range file[:cut] {
			got = append(got, l.Text)
		}
		for _, l := range file { // what Docker returns for Since(): stamp > since, in stored order
			if l.Time.After(r.Since()) && r.Keep(l.Time, l.Text) {
				got = append(got, l.Text)
			}
		}
		want := []string{"out 1", "out 2", "err 1", "out 3", "err 2", "out 4"}
		if !slices.Equal(got, want) {
			t.Errorf("cut after %d lines: got %q, want %q", cut, got, want)
		}
	}
	// The naive resume (strictly after the last stored line) would lose "err 1" here.
	if r := engine.NewLogResume(file[:2]); !r.Since().Before(at(2)) {
		t.Errorf("Since %v does not reach back to the earlier-stamped line", r.Since())
	}
}

func TestList_ByLabel(t *testing.T) {
	e := enginetest.New(t)
	labels := enginetest.Labels(t, e)
	ctx := ctxT(t, 60*time.Second)
	a := spec(t, labels, "sleep 30")
	b := spec(t, labels, "true")
	idA := run(t, e, a)
	idB, err := e.Create(ctx, b) // created, never started
	if err != nil {
		t.Fatal(err)
	}
	other := spec(t, enginetest.Labels(t, e), "true") // another test label
	if _, err := e.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	all, err := e.List(ctx, labels, true)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, c := range all {
		ids = append(ids, c.ID)
	}
	if len(all) != 2 || !slices.Contains(ids, idA) || !slices.Contains(ids, idB) {
		t.Fatalf("List(all) = %v, want %s and %s", ids, idA, idB)
	}
	running, err := e.List(ctx, labels, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(running) != 1 || running[0].ID != idA || running[0].State != engine.StateRunning || running[0].Name != a.Name {
		t.Fatalf("List(running) = %+v, want only %s", running, idA)
	}
	byTask, err := e.List(ctx, enginetest.Merge(labels, map[string]string{engine.LabelTaskID: b.Labels[engine.LabelTaskID]}), true)
	if err != nil || len(byTask) != 1 || byTask[0].ID != idB || byTask[0].State != engine.StateCreated {
		t.Fatalf("List(by task) = %+v %v", byTask, err)
	}
}

func TestStopKillRemove(t *testing.T) {
	e := enginetest.New(t)
	ctx := ctxT(t, 60*time.Second)
	// sleep as PID 1 ignores SIGTERM, so Stop must fall back to SIGKILL after grace.
	s := spec(t, enginetest.Labels(t, e), "")
	s.Cmd = []string{"sleep", "300"}
	id := run(t, e, s)
	enginetest.WaitFor(t, e, id, 10*time.Second, func(c engine.ContainerInfo) bool { return c.Running() })

	start := time.Now()
	if err := e.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	info, err := e.Inspect(ctx, id)
	if err != nil || !info.Finished() || info.ExitCode != 137 {
		t.Fatalf("after Stop: %q exit %d err %v", info.State, info.ExitCode, err)
	}
	t.Logf("stop with 1s grace took %v", time.Since(start))
	// Repeating is harmless: the state asked for is already there.
	if err := e.Stop(ctx, id, time.Second); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := e.Kill(ctx, id, ""); err != nil {
		t.Errorf("Kill of a stopped container: %v", err)
	}
	if err := e.Start(ctx, id); err != nil { // restartable, then killed for real
		t.Fatal(err)
	}
	if err := e.Kill(ctx, id, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	enginetest.WaitFor(t, e, id, 10*time.Second, finished)

	if err := e.Remove(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Inspect": func() error { _, err := e.Inspect(ctx, id); return err }(),
		"Remove":  e.Remove(ctx, id, true),
		"Start":   e.Start(ctx, id),
		"Stop":    e.Stop(ctx, id, 0),
		"Kill":    e.Kill(ctx, id, ""),
		"Logs":    func() error { _, err := e.Logs(ctx, id, time.Time{}, false); return err }(),
	} {
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("%s of a removed container = %v, want ErrNotFound", name, err)
		}
	}
}

func TestEvents_StartAndDie(t *testing.T) {
	e := enginetest.New(t)
	labels := enginetest.Labels(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evs, errs := e.Events(ctx, labels)

	// A container without the label must not show up.
	run(t, e, spec(t, enginetest.Labels(t, e), "exit 0"))
	s := spec(t, labels, "exit 7")
	id := run(t, e, s)

	seen := map[string]engine.Event{}
	for seen["die"].ID == "" {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatalf("event stream ended: %v", <-errs)
			}
			if ev.ID != id {
				t.Fatalf("event for another container: %+v", ev)
			}
			seen[ev.Action] = ev
		case <-ctx.Done():
			t.Fatalf("no die event; seen %v", seen)
		}
	}
	for _, action := range []string{"create", "start", "die"} {
		ev := seen[action]
		if ev.ID != id || ev.Name != s.Name || ev.Time.IsZero() {
			t.Errorf("%s event = %+v", action, ev)
		}
		if _, task, _, ok := engine.Owner(ev.Attributes); !ok || task != s.Labels[engine.LabelTaskID] {
			t.Errorf("%s event labels %v do not name the task", action, ev.Attributes)
		}
	}
	if seen["die"].ExitCode != 7 {
		t.Errorf("die exit code = %d, want 7", seen["die"].ExitCode)
	}
	cancel()
	for range evs {
	}
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("stream end = %v, want context.Canceled", err)
	}
}
