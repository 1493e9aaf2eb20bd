package procid

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/test/testutil"
)

func requireProc(t *testing.T) {
	t.Helper()
	if this().start == "" || this().boot == "" || this().pidns == "" {
		testutil.SkipOrFailInCI(t, "no /proc here: process identities cannot be judged")
	}
}

// identityOf builds the identity a process with pid would have written.
func identityOf(t *testing.T, pid int) string {
	t.Helper()
	st, err := readStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	s := this()
	return "host:" + strconv.Itoa(pid) + ":abcd boot=" + s.boot + " pidns=" + s.pidns + " start=" + st.start
}

func TestGone_LiveProcessIsNotGone(t *testing.T) {
	requireProc(t)
	id := New()
	if !strings.Contains(id, ":"+strconv.Itoa(os.Getpid())+":") || !strings.Contains(id, " start=") {
		t.Fatalf("New() = %q", id)
	}
	if Gone(id) || !Alive(id) {
		t.Fatalf("Gone(%q) = %v, Alive = %v for this very process", id, Gone(id), Alive(id))
	}
}

func TestGone_KilledProcessIsGoneEvenAsAZombie(t *testing.T) {
	requireProc(t)
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id := identityOf(t, cmd.Process.Pid)
	if Gone(id) {
		t.Fatal("a running child is judged gone")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie until Wait. Its parent (here, us) may be slow
	// to reap, as a client that spawned a stdio server may be.
	deadline := time.Now().Add(10 * time.Second)
	for !Gone(id) {
		if time.Now().After(deadline) {
			t.Fatal("a killed, unreaped child is not judged gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Wait()
	if !Gone(id) || Alive(id) {
		t.Fatal("a killed and reaped child is not judged gone")
	}
}

// A pid reused by another process (same pid, other start time) is gone; the
// same pid on another machine (boot) or in another container (pid namespace)
// is never judged, nor an identity without these fields.
func TestGone_NeverMisjudgesReusedPidsOrOtherMachines(t *testing.T) {
	requireProc(t)
	live := identityOf(t, os.Getpid())
	s := this()
	reused := strings.Replace(live, " start="+s.start, " start=1"+s.start, 1)
	if !Gone(reused) {
		t.Errorf("a live pid with another start time (reused pid) is not judged gone: %q", reused)
	}
	const deadPid = 1 << 22 // above pid_max's default ceiling: no such process
	dead := "host:" + strconv.Itoa(deadPid) + ":abcd boot=" + s.boot + " pidns=" + s.pidns + " start=5"
	if !Gone(dead) {
		t.Errorf("a pid with no process is not judged gone")
	}
	for name, id := range map[string]string{
		"another machine":   strings.Replace(dead, "boot="+s.boot, "boot=000000000000", 1),
		"another container": strings.Replace(dead, "pidns="+s.pidns, "pidns=1", 1),
		"old format":        "host:" + strconv.Itoa(deadPid) + ":abcd",
		"garbage":           "parent",
	} {
		if Gone(id) || Alive(id) {
			t.Errorf("%s: Gone(%q) = %v, Alive = %v, want both false (cannot be known)", name, id, Gone(id), Alive(id))
		}
	}
}
