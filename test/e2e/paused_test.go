package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/models"
)

// dockerCLI runs the docker command line, as a user pausing a container would.
func dockerCLI(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// A container paused with `docker pause` leaves its task running; the task
// shows it (reason ContainerPaused, status still running), the line goes
// when the container is unpaused, and a cancel of a paused run still ends it
// (Docker stops a paused container).
func TestPausedContainer_ShownAndCancellable(t *testing.T) {
	in := newInstall(t)
	in.start("ctl")
	task := in.submit("sleep 120")
	running := in.wait(task.ID, 60*time.Second, func(t *models.Task) bool { return t.Status.Phase == models.TaskPhaseRunning })
	name := running.Status.ContainerName

	dockerCLI(t, "pause", name)
	paused := in.wait(task.ID, 30*time.Second, func(t *models.Task) bool { return t.Status.Reason == controllers.ReasonPaused })
	if paused.Status.State != models.TaskStateRunning || !strings.Contains(paused.Status.Message, "docker unpause "+name) {
		t.Errorf("paused task: %+v, want status running with a message saying how to resume", paused.Status)
	}

	dockerCLI(t, "unpause", name)
	in.wait(task.ID, 30*time.Second, func(t *models.Task) bool {
		return t.Status.Phase == models.TaskPhaseRunning && t.Status.Reason == ""
	})

	dockerCLI(t, "pause", name)
	in.wait(task.ID, 30*time.Second, func(t *models.Task) bool { return t.Status.Reason == controllers.ReasonPaused })
	if _, err := in.store.UpdateTaskSpec(context.Background(), task.ID, func(t *models.Task) error {
		t.Spec.DesiredState, t.Spec.CancelReason = models.TaskDesiredCancel, "paused too long"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	done := in.wait(task.ID, 90*time.Second, finished)
	if done.Status.Phase != models.TaskPhaseCancelled {
		t.Fatalf("cancel of a paused run: %+v, want Cancelled", done.Status)
	}
	info, err := in.eng.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if info.Running() {
		t.Errorf("container %s is still %s after the cancel", name, info.State)
	}
}
