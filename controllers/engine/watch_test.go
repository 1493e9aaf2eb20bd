package engine_test

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// socketProxy relays a unix socket to the Docker engine's, and can cut every
// connection at once: a daemon restart as the event stream sees it, without
// restarting the daemon other tests share.
type socketProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	down  bool // refuse new connections (engine "down")
}

func newSocketProxy(t *testing.T, target string) *socketProxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker.proxy")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	p := &socketProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *socketProxy) host() string { return "unix://" + p.ln.Addr().String() }

func (p *socketProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("unix", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// cut closes every open connection.
func (p *socketProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *socketProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// TestWatch_ReconnectsAndAsksForResync cuts the event stream twice (once with the
// "engine" refusing connections for a while) and checks that Watch reconnects with
// backoff, calls onReconnect after each subscription, and still delivers events.
func TestWatch_ReconnectsAndAsksForResync(t *testing.T) {
	direct := enginetest.New(t)
	target := strings.TrimPrefix(direct.Host(), "unix://")
	if !strings.HasPrefix(direct.Host(), "unix://") {
		testutil.SkipOrFailInCI(t, "engine at %s is not on a unix socket", direct.Host())
	}
	proxy := newSocketProxy(t, target)
	e, err := engine.New(proxy.host())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.WatchBackoff = wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.1, Cap: 200 * time.Millisecond}

	labels := enginetest.Labels(t, direct)
	var reconnects atomic.Int32
	started := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Watch(ctx, labels,
			func(ev engine.Event) {
				if ev.Action == "start" {
					started <- ev.ID
				}
			},
			func() { reconnects.Add(1) })
	}()
	defer func() { cancel(); <-done }()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	expectStart := func(id string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case got := <-started:
				if got == id {
					return
				}
			case <-timeout:
				t.Fatalf("no start event for %s", id)
			}
		}
	}

	waitUntil("first subscription", func() bool { return reconnects.Load() == 1 })
	expectStart(run(t, direct, spec(t, labels, "sleep 5")))

	// The connection drops (daemon restart as seen by the stream).
	proxy.cut()
	waitUntil("resubscription after a cut", func() bool { return reconnects.Load() == 2 })
	expectStart(run(t, direct, spec(t, labels, "sleep 5")))
	if out := e.Outages(); len(out) != 1 || out[0].From.IsZero() || out[0].To.Before(out[0].From) {
		t.Errorf("outages after a cut: %+v, want one closed", out)
	}

	// The engine is away for a while: no resync while it is, one when it is back.
	proxy.setDown(true)
	proxy.cut()
	time.Sleep(500 * time.Millisecond)
	if n := reconnects.Load(); n != 2 {
		t.Errorf("onReconnect called %d times while the engine was down, want still 2", n)
	}
	// While the engine is away the outage is open: anything that stops now is in it.
	if out := e.Outages(); len(out) != 2 || !out[1].To.IsZero() || !out[1].Contains(time.Now(), 0) {
		t.Errorf("outages while the engine is down: %+v, want the second one open", out)
	}
	proxy.setDown(false)
	waitUntil("resubscription after an outage", func() bool { return reconnects.Load() == 3 })
	expectStart(run(t, direct, spec(t, labels, "sleep 5")))
	if out := e.Outages(); len(out) != 2 || out[1].To.IsZero() || out[1].Contains(time.Now().Add(time.Second), 0) {
		t.Errorf("outages after the engine came back: %+v, want two closed", out)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

func TestOutage_Contains(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	closed := engine.Outage{From: t0, To: t0.Add(10 * time.Second)}
	open := engine.Outage{From: t0}
	cases := []struct {
		o     engine.Outage
		at    time.Time
		slack time.Duration
		want  bool
	}{
		{closed, t0.Add(5 * time.Second), 0, true},
		{closed, t0, 0, true},
		{closed, t0.Add(10 * time.Second), 0, true},
		{closed, t0.Add(-time.Millisecond), 0, false},
		{closed, t0.Add(-time.Millisecond), time.Second, true},
		{closed, t0.Add(11 * time.Second), 0, false},
		{closed, t0.Add(11 * time.Second), 2 * time.Second, true},
		{open, t0.Add(time.Hour), 0, true},
		{open, t0.Add(-time.Hour), time.Second, false},
		{closed, time.Time{}, time.Second, false},
	}
	for i, c := range cases {
		if got := c.o.Contains(c.at, c.slack); got != c.want {
			t.Errorf("case %d: %+v.Contains(%v, %v) = %v, want %v", i, c.o, c.at, c.slack, got, c.want)
		}
	}
}

func TestDaemonStateAt(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	outages := []engine.Outage{
		{From: t0, To: t0.Add(10 * time.Second)},
		{From: t0.Add(time.Hour)}, // still open
	}
	cases := []struct {
		at   time.Time
		want engine.DaemonState
	}{
		{time.Time{}, engine.DaemonUp},
		{t0.Add(-time.Minute), engine.DaemonUp},
		{t0.Add(-12 * time.Second), engine.DaemonStopping}, // stopped on the way down
		{t0.Add(-time.Millisecond), engine.DaemonStopping},
		{t0, engine.DaemonAway},
		{t0.Add(5 * time.Second), engine.DaemonAway},
		{t0.Add(10500 * time.Millisecond), engine.DaemonAway}, // clock slack
		{t0.Add(30 * time.Second), engine.DaemonUp},
		{t0.Add(time.Hour - 5*time.Second), engine.DaemonStopping},
		{t0.Add(2 * time.Hour), engine.DaemonAway},
	}
	for i, c := range cases {
		if got := engine.DaemonStateAt(outages, c.at); got != c.want {
			t.Errorf("case %d (%v): %v, want %v", i, c.at, got, c.want)
		}
	}
	if got := engine.DaemonStateAt(nil, t0); got != engine.DaemonUp {
		t.Errorf("no outages: %v", got)
	}
}

// TestRefusesConnections: a daemon going down closes its listener first.
func TestRefusesConnections(t *testing.T) {
	gone, err := engine.New("unix://" + filepath.Join(t.TempDir(), "no-daemon.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	if !gone.RefusesConnections(context.Background()) {
		t.Error("no listener: want refused")
	}
	up := enginetest.New(t)
	if up.RefusesConnections(context.Background()) {
		t.Error("the engine answers: want not refused")
	}
}
