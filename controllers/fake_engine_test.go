package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
)

// fakeEngine is an in-memory ContainerRuntime for unit tests. Containers do
// nothing by themselves: a test makes one print (Emit) and exit (Exit), or
// sets autoRun to do both at start. Faults are injected through the exported
// fields, each consumed by the next call it applies to.
type fakeEngine struct {
	mu     sync.Mutex
	byID   map[string]*fakeContainer
	nextID int
	subs   []chan engine.Event

	// Images, when not nil, lists the images that exist; Create of any other
	// fails with engine.ErrImageNotFound.
	Images map[string]bool
	// CreateErr fails the next Create with this error.
	CreateErr error
	// StartErr fails the next Start with this error.
	StartErr error
	// StartRefusal makes the next Start fail for good, leaving this text in
	// the container's Error, as Docker does for a missing executable.
	StartRefusal string
	// VanishOnInspect makes the next Inspect of a container answer not found.
	VanishOnInspect int
	// CutLogsAfter cuts the next followed log stream after this many lines,
	// in the middle of the following line.
	CutLogsAfter int
	// AutoRun, when set, runs at Start: the container prints lines and exits
	// with the code returned (exitNow false leaves it running).
	AutoRun func(spec engine.RunSpec) (lines []string, code int, exitNow bool)

	// EngineOutages is what Outages returns; ShuttingDown what
	// RefusesConnections does.
	EngineOutages []engine.Outage
	ShuttingDown  bool

	Creates, Starts, Stops, Removes int
}

type fakeContainer struct {
	info    engine.ContainerInfo
	spec    engine.RunSpec
	lines   []engine.LogLine
	changed chan struct{} // closed on every output or state change
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{byID: map[string]*fakeContainer{}}
}

var errFakeCut = errors.New("fake: log stream cut")

func notFound(what string) error {
	return fmt.Errorf("fake %s: %w", what, engine.ErrNotFound)
}

// find returns a container by id or name; the lock must be held.
func (f *fakeEngine) find(ref string) *fakeContainer {
	if c, ok := f.byID[ref]; ok {
		return c
	}
	for _, c := range f.byID {
		if c.info.Name == ref {
			return c
		}
	}
	return nil
}

func (f *fakeEngine) notify(c *fakeContainer, action string) {
	close(c.changed)
	c.changed = make(chan struct{})
	ev := engine.Event{Action: action, ID: c.info.ID, Name: c.info.Name, Attributes: map[string]string{"name": c.info.Name}, Time: time.Now()}
	for k, v := range c.info.Labels {
		ev.Attributes[k] = v
	}
	for _, ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (f *fakeEngine) Create(_ context.Context, spec engine.RunSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Creates++
	if err := f.CreateErr; err != nil {
		f.CreateErr = nil
		return "", err
	}
	if f.Images != nil && !f.Images[spec.Image] {
		return "", fmt.Errorf("fake create: %w %s", engine.ErrImageNotFound, spec.Image)
	}
	if c := f.find(spec.Name); c != nil {
		return c.info.ID, &engine.NameConflictError{Name: spec.Name, ID: c.info.ID}
	}
	f.nextID++
	id := fmt.Sprintf("%064x", f.nextID)
	c := &fakeContainer{
		spec:    spec,
		changed: make(chan struct{}),
		info: engine.ContainerInfo{
			ID: id, Name: spec.Name, Image: spec.Image, Labels: spec.Labels, State: engine.StateCreated,
			CreatedAt: time.Now().UTC(), User: spec.User, CapDrop: []string{"ALL"},
			SecurityOpt: []string{"no-new-privileges"}, NetworkMode: spec.Network,
			MemoryBytes: spec.MemoryBytes, NanoCPUs: spec.NanoCPUs, PidsLimit: spec.PidsLimit,
		},
	}
	for _, m := range spec.Mounts {
		c.info.Mounts = append(c.info.Mounts, engine.MountInfo{Type: "bind", Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	f.byID[id] = c
	f.notify(c, "create")
	return id, nil
}

// Put adds a container as if created by someone else (or before a crash).
func (f *fakeEngine) Put(info engine.ContainerInfo) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if info.ID == "" {
		f.nextID++
		info.ID = fmt.Sprintf("%064x", f.nextID)
	}
	if info.CreatedAt.IsZero() {
		info.CreatedAt = time.Now().UTC()
	}
	f.byID[info.ID] = &fakeContainer{info: info, changed: make(chan struct{})}
	return info.ID
}

func (f *fakeEngine) Start(_ context.Context, id string) error {
	f.mu.Lock()
	f.Starts++
	c := f.find(id)
	if c == nil {
		f.mu.Unlock()
		return notFound("start " + id)
	}
	if err := f.StartErr; err != nil {
		f.StartErr = nil
		f.mu.Unlock()
		return err
	}
	if msg := f.StartRefusal; msg != "" {
		f.StartRefusal = ""
		c.info.Error, c.info.ExitCode = msg, 127
	}
	if c.info.Error != "" {
		// Like Docker: a container whose command cannot run never will.
		f.mu.Unlock()
		return fmt.Errorf("fake start: %s", c.info.Error)
	}
	if c.info.State != engine.StateCreated {
		f.mu.Unlock()
		return nil
	}
	c.info.State, c.info.StartedAt = engine.StateRunning, time.Now().UTC()
	f.notify(c, "start")
	run := f.AutoRun
	spec := c.spec
	f.mu.Unlock()
	if run != nil {
		lines, code, exitNow := run(spec)
		f.Emit(id, lines...)
		if exitNow {
			f.Exit(id, code)
		}
	}
	return nil
}

func (f *fakeEngine) Inspect(_ context.Context, ref string) (engine.ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.VanishOnInspect > 0 {
		f.VanishOnInspect--
		return engine.ContainerInfo{}, notFound("inspect " + ref)
	}
	c := f.find(ref)
	if c == nil {
		return engine.ContainerInfo{}, notFound("inspect " + ref)
	}
	return c.info, nil
}

func (f *fakeEngine) Stop(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Stops++
	c := f.find(id)
	if c == nil {
		return notFound("stop " + id)
	}
	if c.info.Running() {
		f.exitLocked(c, 143)
	}
	return nil
}

func (f *fakeEngine) Remove(_ context.Context, id string, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Removes++
	c := f.find(id)
	if c == nil {
		return notFound("remove " + id)
	}
	if c.info.Running() && !force {
		return fmt.Errorf("fake remove %s: container is running", id)
	}
	delete(f.byID, c.info.ID)
	f.notify(c, "destroy")
	return nil
}

func (f *fakeEngine) List(_ context.Context, labels map[string]string, all bool) ([]engine.ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []engine.ContainerInfo
next:
	for _, c := range f.byID {
		for k, v := range labels {
			got, ok := c.info.Labels[k]
			if !ok || (v != "" && got != v) {
				continue next
			}
		}
		if all || c.info.Running() {
			out = append(out, c.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeEngine) Watch(ctx context.Context, _ map[string]string, onEvent func(engine.Event), onReconnect func()) {
	ch := make(chan engine.Event, 1024)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	if onReconnect != nil {
		onReconnect()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-ch:
			if onEvent != nil {
				onEvent(ev)
			}
		}
	}
}

func (f *fakeEngine) Outages() []engine.Outage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]engine.Outage(nil), f.EngineOutages...)
}

func (f *fakeEngine) RefusesConnections(context.Context) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ShuttingDown
}

// Emit makes a running container print lines, each stamped with a distinct,
// increasing time as Docker would.
func (f *fakeEngine) Emit(ref string, lines ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(ref)
	if c == nil {
		panic("fake emit: no container " + ref)
	}
	for _, l := range lines {
		ts := time.Now().UTC()
		if n := len(c.lines); n > 0 && !ts.After(c.lines[n-1].Time) {
			ts = c.lines[n-1].Time.Add(time.Microsecond)
		}
		c.lines = append(c.lines, engine.LogLine{Time: ts, Text: l})
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// Exit makes a container's process end with code.
func (f *fakeEngine) Exit(ref string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(ref)
	if c == nil {
		panic("fake exit: no container " + ref)
	}
	f.exitLocked(c, code)
}

func (f *fakeEngine) exitLocked(c *fakeContainer, code int) {
	c.info.State, c.info.ExitCode, c.info.FinishedAt = engine.StateExited, code, time.Now().UTC()
	f.notify(c, "die")
}

// Count returns how many containers exist with the given name.
func (f *fakeEngine) Count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.byID {
		if c.info.Name == name {
			n++
		}
	}
	return n
}

// Spec returns the RunSpec a container was created with.
func (f *fakeEngine) Spec(ref string) engine.RunSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(ref); c != nil {
		return c.spec
	}
	return engine.RunSpec{}
}

// Logs streams a container's lines after since, formatted as Docker does.
func (f *fakeEngine) Logs(ctx context.Context, id string, since time.Time, follow bool) (io.ReadCloser, error) {
	f.mu.Lock()
	c := f.find(id)
	if c == nil {
		f.mu.Unlock()
		return nil, notFound("logs " + id)
	}
	cut := 0
	if follow && f.CutLogsAfter > 0 {
		cut, f.CutLogsAfter = f.CutLogsAfter, 0
	}
	f.mu.Unlock()

	pr, pw := io.Pipe()
	go func() {
		i, sent := 0, 0
		for {
			f.mu.Lock()
			var batch []engine.LogLine
			for ; i < len(c.lines); i++ {
				if c.lines[i].Time.After(since) {
					batch = append(batch, c.lines[i])
				}
			}
			ended := !c.info.Running()
			changed := c.changed
			f.mu.Unlock()
			for _, l := range batch {
				line := dockerStamp(l.Time) + " " + l.Text + "\n"
				if cut > 0 && sent == cut {
					_, _ = io.WriteString(pw, line[:len(line)/2])
					pw.CloseWithError(errFakeCut)
					return
				}
				if _, err := io.WriteString(pw, line); err != nil {
					return
				}
				sent++
			}
			if !follow || ended {
				pw.Close()
				return
			}
			select {
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			case <-changed:
			}
		}
	}()
	return pr, nil
}

// dockerStamp formats a time as Docker's log timestamps do (nanoseconds
// always nine digits).
func dockerStamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}

// containersNamed lists names with more than one container (there must be none).
func (f *fakeEngine) duplicates() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]int{}
	for _, c := range f.byID {
		seen[c.info.Name]++
	}
	var out []string
	for n, k := range seen {
		if k > 1 {
			out = append(out, n)
		}
	}
	return out
}

var _ ContainerRuntime = (*fakeEngine)(nil)

// strip removes the Docker stamps of log file lines.
func stripStamps(content string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
		if l == "" {
			continue
		}
		_, text, ok := engine.ParseLogLine(l)
		if !ok {
			out = append(out, "!!"+l)
			continue
		}
		out = append(out, text)
	}
	return out
}

// SetState sets a container's Docker state as `docker pause` / `docker
// unpause` would (StatePaused, StateRunning), with the event Docker sends.
func (f *fakeEngine) SetState(ref, state, action string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(ref)
	if c == nil {
		panic("fake set state: no container " + ref)
	}
	c.info.State = state
	f.notify(c, action)
}

// CopyIn and CopyOut: the fake engine runs no copy-mode container (the copy
// transfer is tested on the real engines in test/e2e and controllers/engine).
func (f *fakeEngine) CopyIn(context.Context, string, []engine.Mount, string, func(int64)) error {
	return errors.New("fake engine: no copy transfer")
}

func (f *fakeEngine) CopyOut(context.Context, string, string) (io.ReadCloser, error) {
	return nil, errors.New("fake engine: no copy transfer")
}
