package models

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/claude-parallel/claude-parallel/models/procid"
	"github.com/claude-parallel/claude-parallel/test/testutil"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLease_AcquireRenewExpireRelease(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestStore(t, Options{Now: clock.Now})
	const ttl = 15 * time.Second

	try := func(holder string, want bool) {
		t.Helper()
		got, err := s.TryAcquireLease(ctx, "leader", holder, ttl)
		if err != nil {
			t.Fatalf("%s: %v", holder, err)
		}
		if got != want {
			t.Fatalf("%s acquire = %v, want %v", holder, got, want)
		}
	}
	holderIs := func(want string, wantOK bool) {
		t.Helper()
		h, _, ok, err := s.LeaseHolder(ctx, "leader")
		if err != nil {
			t.Fatal(err)
		}
		if h != want || ok != wantOK {
			t.Fatalf("LeaseHolder = %q ok=%v, want %q ok=%v", h, ok, want, wantOK)
		}
	}

	holderIs("", false)
	try("a", true)
	try("b", false)
	holderIs("a", true)
	clock.Advance(ttl - time.Second)
	try("a", true) // renewal pushes expiry
	clock.Advance(ttl - time.Second)
	try("b", false)
	clock.Advance(2 * time.Second)
	holderIs("a", false) // expired, still recorded
	try("b", true)       // take over
	try("a", false)
	if err := s.ReleaseLease(ctx, "leader", "a"); err != nil { // not the holder: no-op
		t.Fatal(err)
	}
	holderIs("b", true)
	if err := s.ReleaseLease(ctx, "leader", "b"); err != nil {
		t.Fatal(err)
	}
	holderIs("", false)
	try("a", true)

	if got, want := strings.Join(eventReasons(t, s, EventKindLease, "leader"), ","), "LeaseAcquired,LeaseTakenOver,LeaseReleased,LeaseAcquired"; got != want {
		t.Fatalf("lease events = %s, want %s", got, want)
	}

	if _, err := s.TryAcquireLease(ctx, "leader", "a", 0); err == nil {
		t.Fatal("zero ttl accepted")
	}
}

const (
	childLeaseTTL   = time.Second
	childLeaseRenew = 100 * time.Millisecond
)

// leaseChild is the other process of TestLease_TwoProcessesAgreeAndHandOver:
// it tries to hold "leader" every childLeaseRenew and prints each change of
// its belief ("acquired"/"lost") on stdout. It exits when stdin closes, so it
// never outlives the test.
func leaseChild(ctx context.Context, s *Store) int {
	holder := fmt.Sprintf("child-%d", os.Getpid())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Println("ready", holder)
	held := false
	for {
		ok, err := s.TryAcquireLease(ctx, "leader", holder, childLeaseTTL)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		if ok != held {
			held = ok
			if ok {
				fmt.Println("acquired", time.Now().UnixNano())
			} else {
				fmt.Println("lost", time.Now().UnixNano())
			}
		}
		time.Sleep(childLeaseRenew)
	}
}

// Two processes on one file: they agree on one holder; when the holder stops
// renewing the other takes over, and when the holder is killed the survivor
// gets the lease once the ttl has passed since the last renewal.
func TestLease_TwoProcessesAgreeAndHandOver(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)

	cmd := childCommand("lease", childTarget(s))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		stdin.Close()
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(timeout time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			if ok && strings.HasPrefix(l, "error") {
				t.Fatalf("child: %s", l)
			}
			return l, ok
		case <-time.After(timeout):
			return "", false
		}
	}
	ready, ok := next(30 * time.Second)
	if !ok || !strings.HasPrefix(ready, "ready ") {
		t.Fatalf("child did not start: %q", ready)
	}
	childHolder := strings.TrimPrefix(ready, "ready ")

	// Phase 1: both contend for 2 s. Exactly one of them may ever win.
	parentWins := 0
	var parentLastRenew time.Time
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		ok, err := s.TryAcquireLease(ctx, "leader", "parent", childLeaseTTL)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			parentWins++
			// The store's own stamp of this renewal, not the parent's clock
			// after the call returned (later by any scheduling delay).
			if l, err := s.GetLease(ctx, "leader"); err == nil && l.Holder == "parent" {
				parentLastRenew = l.RenewedAt
			}
		}
	}
	childWon := false
	for drained := false; !drained; {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, "acquired") {
				childWon = true
			}
			if strings.HasPrefix(l, "lost") {
				t.Fatalf("child lost the lease while the parent was contending: %s", l)
			}
		default:
			drained = true
		}
	}
	if (parentWins > 0) == childWon {
		t.Fatalf("phase 1: parent won %d times, child won=%v: want exactly one holder", parentWins, childWon)
	}
	holder, _, ok, err := s.LeaseHolder(ctx, "leader")
	if err != nil || !ok {
		t.Fatalf("LeaseHolder: %q ok=%v err=%v", holder, ok, err)
	}
	if want := map[bool]string{true: childHolder, false: "parent"}[childWon]; holder != want {
		t.Fatalf("LeaseHolder = %q, want %q", holder, want)
	}
	t.Logf("phase 1: holder %s (parent wins %d)", holder, parentWins)

	// Phase 2: if the parent holds it, it stops renewing; the child must take
	// over, but not before the ttl has run out.
	if !childWon {
		l, ok := next(childLeaseTTL + 5*time.Second)
		if !ok || !strings.HasPrefix(l, "acquired") {
			t.Fatalf("child did not take over after the parent stopped renewing: %q", l)
		}
		child, err := s.GetLease(ctx, "leader")
		if err != nil || child.Holder != childHolder {
			t.Fatalf("lease after the child's takeover: %+v, %v", child, err)
		}
		if !child.AcquiredAt.After(parentLastRenew.Add(childLeaseTTL)) {
			t.Fatalf("child took over %v after the parent's last renewal (store clock), not after the %v ttl",
				child.AcquiredAt.Sub(parentLastRenew), childLeaseTTL)
		}
	}

	// Phase 3: the child holds and renews; the parent never gets it.
	for end := time.Now().Add(2 * childLeaseTTL); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if ok, err := s.TryAcquireLease(ctx, "leader", "parent", childLeaseTTL); err != nil || ok {
			t.Fatalf("parent acquired a lease the live child renews: ok=%v err=%v", ok, err)
		}
	}

	// Phase 4: kill -9 the child; the parent gets the lease once the ttl since
	// the child's last renewal has passed, and not before.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	killedAt := time.Now()
	_, lastRenew, _, err := s.LeaseHolder(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	for {
		ok, err := s.TryAcquireLease(ctx, "leader", "parent", childLeaseTTL)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Since(killedAt) > childLeaseTTL+2*time.Second {
			t.Fatalf("parent still without the lease %v after the child died", time.Since(killedAt))
		}
		time.Sleep(20 * time.Millisecond)
	}
	parent, err := s.GetLease(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	if !parent.AcquiredAt.After(lastRenew.Add(childLeaseTTL)) {
		t.Fatalf("parent took over %v after the child's last renewal (store clock), not after the ttl", parent.AcquiredAt.Sub(lastRenew))
	}
	t.Logf("parent took over %v after the kill", time.Since(killedAt).Round(time.Millisecond))
}

// leaseHoldChild takes "leader" for an hour under its real process identity
// (procid), prints "acquired", and then does nothing until stdin closes.
func leaseHoldChild(ctx context.Context, s *Store) int {
	ok, err := s.TryAcquireLease(ctx, "leader", procid.New(), time.Hour)
	if err != nil || !ok {
		fmt.Println("error", ok, err)
		return 1
	}
	fmt.Println("acquired")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// A holder on this machine killed with SIGKILL holds a lease that would last
// an hour; the next process takes it over at once, because the holder's
// process is gone. While it lives, it keeps the lease.
func TestLease_HolderKilledOnThisMachineIsReplacedAtOnce(t *testing.T) {
	if !strings.Contains(procid.New(), " start=") {
		testutil.SkipOrFailInCI(t, "no /proc here: a dead holder cannot be told from a live one")
	}
	ctx := context.Background()
	s := newTestStore(t)
	cmd := childCommand("lease-hold", childTarget(s))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "acquired" {
		t.Fatalf("child: %q", line)
	}
	held, err := s.GetLease(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TryAcquireLease(ctx, "leader", procid.New(), time.Hour); err != nil || ok {
		t.Fatalf("took the lease of a live holder %q: ok=%v err=%v", held.Holder, ok, err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	me := procid.New()
	if ok, err := s.TryAcquireLease(ctx, "leader", me, time.Hour); err != nil || !ok {
		t.Fatalf("the lease of a killed holder (renewed %s, lasting %dms) was not taken over at once: ok=%v err=%v",
			held.RenewedAt, held.DurationMS, ok, err)
	}
	now, err := s.GetLease(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	// By the store's own clock: long before the old holding could expire.
	if left := held.RenewedAt.Add(time.Duration(held.DurationMS) * time.Millisecond).Sub(now.AcquiredAt); now.Holder != me || left < time.Hour/2 {
		t.Fatalf("lease now %+v: taken over with %v of the old holding left, want most of the hour", now, left)
	}
	events, err := s.ListEvents(ctx, EventKindLease, "leader", 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Reason != "LeaseTakenOver" || !strings.Contains(last.Message, "has no process any more") {
		t.Fatalf("last lease event = %s %q", last.Reason, last.Message)
	}
}

// A write under FenceContext commits only while its holder holds the lease
// unexpired, by the store's clock; once the lease expired or passed to
// another holder, it is refused with ErrLeaseLost and leaves no trace.
func TestLease_FencedWritesStopWhenTheLeaseIsLost(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestStore(t, Options{Now: clock.Now})
	const ttl = 10 * time.Second
	if ok, err := s.TryAcquireLease(ctx, "leader", "a", ttl); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	fenced := s.FenceContext(ctx, "leader", "a")
	write := func(what string) error {
		_, _, err := s.CreateTask(fenced, newTask(what))
		return err
	}
	if err := write("while held"); err != nil {
		t.Fatalf("write while holding: %v", err)
	}
	clock.Advance(ttl) // the last instant of the holding
	if err := write("at the last instant"); err != nil {
		t.Fatalf("write at the expiry instant: %v", err)
	}
	clock.Advance(time.Millisecond)
	if err := write("expired"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("write after expiry: err = %v, want ErrLeaseLost", err)
	}
	if ok, err := s.TryAcquireLease(ctx, "leader", "b", ttl); err != nil || !ok {
		t.Fatalf("b acquire: %v %v", ok, err)
	}
	if err := write("taken over"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("write after takeover: err = %v, want ErrLeaseLost", err)
	}
	if err := s.ReleaseLease(ctx, "leader", "b"); err != nil {
		t.Fatal(err)
	}
	if err := write("released"); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("write with nobody holding: err = %v, want ErrLeaseLost", err)
	}
	tasks, err := s.ListTasks(ctx, TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 2 {
		t.Fatalf("%d tasks stored, want the 2 written while the lease held", len(tasks))
	}
	// Unfenced writes (the front ends) are not affected.
	if _, _, err := s.CreateTask(ctx, newTask("front end")); err != nil {
		t.Fatal(err)
	}
}
