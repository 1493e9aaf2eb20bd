package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/mcp/ops"
	"github.com/claude-parallel/claude-parallel/reconciler"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// writeConfig writes a config file for e with the given extra YAML.
func (e *serverEnv) writeConfig(t *testing.T, extra string) string {
	t.Helper()
	path := filepath.Join(e.dir, "config.yaml")
	text := "allowed_roots: [" + e.dir + "]\n" + extra
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// checkOpsEndpoints checks /healthz, /readyz and /metrics at base with
// Docker not answering (serverEnv): alive, not ready because of Docker
// alone (the store takes writes and this process runs the controllers),
// and metrics only with the token.
func checkOpsEndpoints(t *testing.T, base, token string) {
	t.Helper()
	if code, body := get(t, base+ops.HealthPath, ""); code != http.StatusOK || body != "ok\n" {
		t.Errorf("%s%s = %d %q", base, ops.HealthPath, code, body)
	}
	var rd ops.Readiness
	var code int
	var body string
	// The controllers take the lease a moment after the listener is up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = get(t, base+ops.ReadyPath, "")
		if err := json.Unmarshal([]byte(body), &rd); err != nil {
			t.Fatalf("%s: not JSON: %q", ops.ReadyPath, body)
		}
		if strings.Join(rd.Failing, ",") == "docker" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || rd.Ready || strings.Join(rd.Failing, ",") != "docker" || len(rd.Checks) != 3 {
		t.Errorf("%s with Docker down = %d %s; want 503 failing [docker] only", ops.ReadyPath, code, body)
	}
	for _, c := range rd.Checks {
		if c.Name == "docker" && !strings.Contains(c.Error, "docker") {
			t.Errorf("docker check error %q does not say what failed", c.Error)
		}
	}
	if code, _ := get(t, base+ops.MetricsPath, ""); code != http.StatusUnauthorized {
		t.Errorf("%s without the token = %d, want 401", ops.MetricsPath, code)
	}
	code, body = get(t, base+ops.MetricsPath, token)
	for _, series := range []string{`claude_parallel_tasks{phase="Pending"}`, `claude_parallel_diffs{status="pending"}`,
		"claude_parallel_store_write_duration_seconds_count", "claude_parallel_leader ", `claude_parallel_controller_reconciles_total{controller="task"}`} {
		if code != http.StatusOK || !strings.Contains(body, series) {
			t.Errorf("%s = %d, missing %s", ops.MetricsPath, code, series)
		}
	}
}

// A stdio server exposes the ops endpoints on ops.listen; an HTTP server
// serves them beside /mcp too. Neither needs a token for the probes;
// /metrics does.
func TestServe_OpsEndpointsOnOpsListenerAndHTTP(t *testing.T) {
	e := newServerEnv(t)
	opsAddr := freePort(t)
	cfg := e.writeConfig(t, "ops:\n  listen: "+opsAddr+"\n")
	const token = "ops-token"
	cmd := e.command("--config", cfg, "serve")
	cmd.Env = append(cmd.Env, config.EnvToken+"="+token)
	stdin, err := cmd.StdinPipe() // held open: a stdio server runs until EOF
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "ops listener ready") }, "ops listener", &stderr)
	checkOpsEndpoints(t, "http://"+opsAddr, token)
	_ = stdin.Close()
	waitExit(t, cmd, 30*time.Second)

	// The HTTP transport serves them beside /mcp (a second server on the
	// same database: it sees the first one gone and leads in turn).
	addr := freePort(t)
	e.startHTTP(t, addr, config.EnvToken+"="+token)
	checkOpsEndpoints(t, "http://"+addr, token)
}

// notifyListener is the systemd side of the notify protocol: a unixgram
// socket collecting the datagrams a service sends to NOTIFY_SOCKET.
type notifyListener struct {
	path string
	mu   sync.Mutex
	msgs []notifyMsg
}

type notifyMsg struct {
	at    time.Time
	state string
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	// A short path: sun_path holds 108 bytes, t.TempDir() names can be long.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &notifyListener{path: filepath.Join(dir, "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			for _, line := range strings.Split(strings.TrimSpace(string(buf[:k])), "\n") {
				n.msgs = append(n.msgs, notifyMsg{at: time.Now(), state: line})
			}
			n.mu.Unlock()
		}
	}()
	return n
}

// count returns how many times state was received, and when last.
func (n *notifyListener) count(state string) (int, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, last := 0, time.Time{}
	for _, m := range n.msgs {
		if m.state == state {
			c++
			last = m.at
		}
	}
	return c, last
}

// first is the first message received.
func (n *notifyListener) first() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.msgs) == 0 {
		return ""
	}
	return n.msgs[0].state
}

func (n *notifyListener) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	for _, m := range n.msgs {
		b.WriteString(m.at.Format("15:04:05.000 ") + m.state + "\n")
	}
	return b.String()
}

// The systemd notify protocol, checked on a NOTIFY_SOCKET this test
// listens on (PID 1 here is not systemd): READY=1 once the controllers run,
// WATCHDOG=1 every half WATCHDOG_USEC while the reconcile loops make
// progress, none while they are wedged — another process holds the
// database's write lock, so the leader cannot renew its lease, steps down,
// and nobody leads — pings again once they recover, STOPPING=1 on SIGTERM.
func TestServe_SystemdNotifyAndWatchdog(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		testutil.SkipOrFailInCI(t, "sqlite3 is needed to hold the database lock: apt-get install sqlite3")
	}
	e := newServerEnv(t)
	cfg := e.writeConfig(t, "intervals:\n  lease_duration: 3s\n  lease_renew: 1s\n  reconcile_timeout: 2s\n")
	n := listenNotify(t)
	addr := freePort(t)
	cmd := e.command("--config", cfg, "serve", "--http", addr)
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=1000000")
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	waitNotify := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; received:\n%s\nstderr:\n%s", what, n, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitNotify("READY=1", func() bool { c, _ := n.count("READY=1"); return c == 1 })
	if first := n.first(); first != "READY=1" {
		// READY comes first: systemd starts the watchdog clock at READY.
		t.Errorf("first message %q, want READY=1:\n%s", first, n)
	}
	waitNotify("three watchdog pings", func() bool { c, _ := n.count("WATCHDOG=1"); return c >= 3 })

	// Wedge: hold SQLite's write lock from another process.
	db := filepath.Join(e.home, "data", "claude-parallel.db")
	lock := exec.Command("sqlite3", db)
	lockIn, err := lock.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var lockOut testutil.LockedBuffer
	lock.Stdout, lock.Stderr = &lockOut, &lockOut
	if err := lock.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Process.Kill(); _, _ = lock.Process.Wait() }()
	if _, err := io.WriteString(lockIn, ".timeout 60000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(lockOut.String(), "locked") }, "sqlite3 to take the lock", &lockOut)

	// The pings stop: a silence of four periods, well past what systemd
	// would allow (one period), while the lock is held.
	waitNotify("the watchdog pings to stop", func() bool {
		_, last := n.count("WATCHDOG=1")
		return time.Since(last) > 4*time.Second
	})
	if !strings.Contains(stderr.String(), "no longer pinging systemd") {
		t.Errorf("the server did not log why it stopped pinging:\n%s", stderr.String())
	}
	stopped, _ := n.count("WATCHDOG=1")

	// Release the lock: the server leads again and pings again.
	_, _ = io.WriteString(lockIn, "ROLLBACK;\n.quit\n")
	_ = lockIn.Close()
	_ = lock.Wait()
	waitNotify("the watchdog pings to resume", func() bool { c, _ := n.count("WATCHDOG=1"); return c >= stopped+2 })

	if c, _ := n.count("STOPPING=1"); c != 0 {
		t.Fatalf("STOPPING=1 before SIGTERM:\n%s", n)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitNotify("STOPPING=1", func() bool { c, _ := n.count("STOPPING=1"); return c >= 1 })
	waitExit(t, cmd, 30*time.Second)
}

// The watchdog's verdict, from successive looks at the controllers.
func TestProgressWatch(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	type look struct {
		after       time.Duration
		leader      bool
		running     bool
		depth       int
		reconciles  uint64
		overdue     int64
		leaseHolder string
		leaseLive   bool
		wantErr     string // "" healthy, else a piece of the error
	}
	cases := []struct {
		name  string
		looks []look
	}{
		{"idle leader is healthy", []look{
			{0, true, true, 0, 5, 0, "", false, ""},
			{time.Hour, true, true, 0, 5, 0, "", false, ""},
		}},
		{"busy leader finishing passes is healthy", []look{
			{0, true, true, 3, 5, 0, "", false, ""},
			{time.Minute, true, true, 3, 9, 0, "", false, ""},
			{2 * time.Minute, true, true, 3, 12, 0, "", false, ""},
		}},
		{"ready work and no pass finished past the stall limit", []look{
			{0, true, true, 2, 5, 0, "", false, ""},
			{time.Second, true, true, 2, 5, 0, "", false, ""},
			{30 * time.Second, true, true, 2, 5, 0, "", false, ""},
			{62 * time.Second, true, true, 2, 5, 0, "", false, "no pass finished"},
			{63 * time.Second, true, true, 2, 6, 0, "", false, ""},
		}},
		{"an overdue pass", []look{
			{0, true, true, 0, 5, 1, "", false, "past their timeout"},
			{time.Second, true, true, 0, 6, 0, "", false, ""},
		}},
		{"leading with a controller stopped", []look{
			{0, true, false, 0, 5, 0, "", false, "not running"},
		}},
		{"follower of a live leader", []look{
			{0, false, false, 0, 0, 0, "other", true, ""},
			{time.Hour, false, false, 0, 0, 0, "other", true, ""},
		}},
		{"nobody leads past the lease grace", []look{
			{0, false, false, 0, 0, 0, "self", true, ""}, // our own lapsed lease is not a leader
			{2 * time.Second, false, false, 0, 0, 0, "self", false, ""},
			{4 * time.Second, false, false, 0, 0, 0, "", false, "no process has held the leader lease"},
			{5 * time.Second, false, false, 0, 0, 0, "other", true, ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pw := newProgressWatch(time.Minute, 3*time.Second)
			for i, l := range tc.looks {
				st := systemStatusFor(l.leader, l.running, l.depth, l.reconciles, l.overdue)
				err := pw.check(t0.Add(l.after), st, leaseView{holder: l.leaseHolder, live: l.leaseLive})
				switch {
				case l.wantErr == "" && err != nil:
					t.Fatalf("look %d: %v, want healthy", i, err)
				case l.wantErr != "" && (err == nil || !strings.Contains(err.Error(), l.wantErr)):
					t.Fatalf("look %d: %v, want an error saying %q", i, err, l.wantErr)
				}
			}
		})
	}
}

// systemStatusFor is the controllers' status with one controller.
func systemStatusFor(leader, running bool, depth int, reconciles uint64, overdue int64) controllers.SystemStatus {
	return controllers.SystemStatus{IsLeader: leader, Holder: "self", Controllers: []reconciler.Stats{{
		Name: "task", Running: running, QueueDepth: depth, Reconciles: reconciles, Overdue: overdue,
	}}}
}

// The shipped systemd unit passes systemd-analyze verify (with this test's
// binary in ExecStart) and asks for what serve implements: Type=notify with
// a watchdog.
func TestServiceUnit_Verifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testutil.SkipOrFailInCI(t, "systemd-analyze is needed to check the unit: apt-get install systemd")
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "hack", "claude-parallel.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, want := range []string{"\nType=notify\n", "\nWatchdogSec=", "\nNotifyAccess=main\n", "serve --http 127.0.0.1:47821\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "claude-parallel.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/claude-parallel", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// verify exits 0 on a key it ignores; every complaint about the file
	// names it.
	if strings.Contains(string(out), path) {
		t.Fatalf("systemd-analyze verify complains:\n%s", out)
	}
}

// A dashboard log stream open when SIGTERM arrives ends with the server: a
// graceful shutdown waits for handlers, and a stream must not hold it until
// the drain timeout.
func TestServe_DashboardLogStreamEndsOnSIGTERM(t *testing.T) {
	e := newServerEnv(t)
	addr := freePort(t)
	cmd := e.command("serve", "--http", addr)
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }()
	waitFor(t, func() bool { return strings.Contains(stderr.String(), readyMessage) }, "ready", &stderr)
	// Docker does not answer here: the task stays pending, with no log yet,
	// and its stream waits for one.
	out, err := e.command("task", "start", "--repo", e.repo, "--agent", "shell", "--prompt", "echo hi", "--json").Output()
	if err != nil {
		t.Fatalf("task start: %v", err)
	}
	var started struct {
		TaskID string `json:"id"`
	}
	if err := json.Unmarshal(out, &started); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/tasks/" + started.TaskID + "/log/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("log stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body) // returns when the server ends the stream
	waitExit(t, cmd, 60*time.Second)
	if strings.Contains(stderr.String(), "http shutdown incomplete") {
		t.Fatalf("the open stream held the shutdown until its drain timeout:\n%s", stderr.String())
	}
}
