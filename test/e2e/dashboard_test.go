package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// browser is a headless Debian chromium driven with chromedp, collecting
// every console error and uncaught exception of the pages it shows.
type browser struct {
	t    *testing.T
	ctx  context.Context
	shot string // screenshot directory

	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := ensureProgram(t, "chromium", "ensure-chromium.sh")
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	b := &browser{t: t, ctx: ctx, shot: os.Getenv("CP_SCREENSHOT_DIR")}
	if b.shot == "" {
		b.shot = filepath.Join(t.TempDir(), "screenshots")
	}
	if err := os.MkdirAll(b.shot, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first run starts the browser, on a context without a timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancelCtx()
		cancelAlloc()
		testutil.SkipOrFailInCI(t, "start chromium: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errors = append(b.errors, m.String()+" ("+m.URL+")")
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); <-done })
	return b
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage body:\n%s", what, err, b.body())
	}
}

func (b *browser) body() string {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	return tailString(html, 60)
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// waitJS polls a JavaScript condition until it is true.
func (b *browser) waitJS(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(80*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s: %v\npage body:\n%s", what, err, b.body())
	}
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shot, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// noErrors fails the test when a page logged a console error so far.
func (b *browser) noErrors(page string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("console errors on %s:\n%s", page, strings.Join(b.errors, "\n"))
		b.errors = nil
	}
}

// cliTask starts a shell task through the CLI, as a person would.
func cliTask(t *testing.T, bin string, env []string, repo, prompt string) string {
	t.Helper()
	cmd := exec.Command(bin, "task", "start", "--repo", repo, "--agent", "shell", "--prompt", prompt, "--json")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("task start: %v\n%s", err, out)
	}
	var res service.TaskWorkerResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("task start output %q: %v", out, err)
	}
	return res.TaskID
}

// TestDashboard_InABrowser drives the dashboard of `serve --http` in Debian's
// chromium: the pages render without console errors; a task started from
// the CLI appears in the open list without a reload and its log streams on
// its page; apply from the UI (reached with the keyboard alone) changes the
// file on disk; revise, reject and cancel work; actions need the token, reading
// does not. Screenshots are saved (CP_SCREENSHOT_DIR chooses where).
func TestDashboard_InABrowser(t *testing.T) {
	fi := newFlowInstall(t)
	bin := flowBinary(t)
	const token = "dashboard-token"
	env := slices.Concat(fi.env, []string{"CLAUDE_PARALLEL_TOKEN=" + token})
	addr := freeAddr(t)
	srv := exec.Command(bin, "serve", "--http", addr)
	srv.Env = env
	stderr := &testutil.LockedBuffer{}
	srv.Stderr = stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Signal(os.Interrupt); _, _ = srv.Process.Wait() })
	base := "http://" + addr
	waitHTTP(t, "server ready", base+"/readyz", http.StatusOK, 60*time.Second, stderr.String)
	store, err := models.Open(context.Background(), filepath.Join(fi.home, "data", "claude-parallel.db"), models.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	b := newBrowser(t)
	b.do("open the task list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#tasks")))
	eval[bool](b, "mark the page", `window.notReloaded = true`)
	b.noErrors("/")

	// A task started from the CLI shows up in the open page, which was not reloaded.
	applyID := cliTask(t, bin, env, fi.repo, countScript(20, "0.2"))
	b.waitJS("the new task in the list", fmt.Sprintf(`document.querySelector('tr[data-task=%q]') !== null && window.notReloaded === true`, applyID))
	b.screenshot("dashboard-tasks")

	// Its log streams on its page while it runs.
	b.do("open the task", chromedp.Navigate(base+"/tasks/"+applyID), chromedp.WaitVisible(chromedp.CSS("#log")))
	eval[bool](b, "mark the page", `window.notReloadedTask = true`)
	b.waitJS("the first lines of the log", `document.getElementById('log').textContent.includes('line-3')`)
	b.waitJS("the whole log", `document.getElementById('log').textContent.includes('line-20')`)
	b.waitJS("the phase to follow the run without a reload", `document.querySelector('#details .phase').textContent === 'Succeeded' && window.notReloadedTask === true`)
	b.screenshot("dashboard-task")
	b.noErrors("/tasks/" + applyID)
	task := waitUntil(t, applyID, 90*time.Second, store.GetTask, finished, func(t *models.Task) any { return t.Status })
	if task.Status.DiffID == "" {
		t.Fatalf("task %s left no diff: %+v", applyID, task.Status)
	}

	// Reading needs no token; an action without it is refused.
	if code, _, err := httpGet(base+"/diffs/"+task.Status.DiffID, ""); err != nil || code != http.StatusOK {
		t.Fatalf("diff page without a token: %d %v", code, err)
	}
	resp, err := http.Post(base+"/diffs/"+task.Status.DiffID+"/apply", "application/x-www-form-urlencoded", strings.NewReader("mode=worktree"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("apply without the token: %d, want 401", resp.StatusCode)
	}

	// The token, set in the page, then apply with the keyboard alone.
	b.do("open the diff and set the token", chromedp.Navigate(base+"/diffs/"+task.Status.DiffID),
		chromedp.WaitVisible(chromedp.CSS(".patch")),
		chromedp.SendKeys(chromedp.CSS(`#token-form input`), token),
		chromedp.Click(chromedp.CSS(`#token-form button`)))
	b.waitJS("the token to be kept", `document.querySelector('#token-form output').textContent === 'token set for this tab'`)
	b.screenshot("dashboard-diff")
	var focused string
	for range 40 {
		b.do("tab", chromedp.KeyEvent(kb.Tab))
		focused = eval[string](b, "focus", `document.activeElement ? document.activeElement.textContent.trim() : ""`)
		if focused == "Apply to the working tree" {
			break
		}
	}
	if focused != "Apply to the working tree" {
		t.Fatalf("the apply button cannot be reached with Tab (last focus %q)", focused)
	}
	b.do("apply with Enter", chromedp.KeyEvent(kb.Enter))
	b.waitJS("the apply outcome", `document.querySelector('#result .result[data-outcome="applied"]') !== null`)
	if got := testutil.ReadFile(t, filepath.Join(fi.repo, "result.txt")); got != "done\n" {
		t.Fatalf("result.txt after apply from the dashboard: %q", got)
	}
	b.noErrors("/diffs/" + task.Status.DiffID)
	b.do("side by side", chromedp.Navigate(base+"/diffs/"+task.Status.DiffID+"?view=side"), chromedp.WaitVisible(chromedp.CSS(".side")))
	b.screenshot("dashboard-diff-side")
	b.noErrors("side by side")

	// Revise: the task runs again; then reject the new diff.
	rejectID := cliTask(t, bin, env, fi.repo, `echo "run $(ls /workspace | wc -l)" > other.txt`)
	task = waitUntil(t, rejectID, 90*time.Second, store.GetTask, finished, func(t *models.Task) any { return t.Status })
	firstDiff := task.Status.DiffID
	b.do("revise", chromedp.Navigate(base+"/diffs/"+firstDiff), chromedp.WaitVisible(chromedp.CSS(".patch")),
		chromedp.SendKeys(chromedp.CSS(`form[hx-post$="/revise"] input`), "write it again"),
		chromedp.Click(chromedp.CSS(`form[hx-post$="/revise"] button`)))
	b.waitJS("the revision answer", `document.querySelector('#result .result[data-outcome="revision"]') !== null`)
	task = waitUntil(t, rejectID, 90*time.Second, store.GetTask, func(t *models.Task) bool {
		return t.Status.RunNumber == 2 && t.Status.Finished && t.Status.DiffID != "" && t.Status.DiffID != firstDiff
	}, func(t *models.Task) any { return t.Status })
	b.noErrors("revise")
	b.do("reject", chromedp.Navigate(base+"/diffs/"+task.Status.DiffID), chromedp.WaitVisible(chromedp.CSS(".patch")),
		chromedp.Click(chromedp.CSS(`form[hx-post$="/reject"] button`)))
	b.waitJS("the reject outcome", `document.querySelector('#result .result') !== null`)
	waitUntil(t, task.Status.DiffID, 60*time.Second, store.GetDiff, func(d *models.Diff) bool { return d.Status.State == models.DiffStateRejected },
		func(d *models.Diff) any { return d.Status })
	if _, err := os.Stat(filepath.Join(fi.repo, "other.txt")); !os.IsNotExist(err) {
		t.Fatalf("a rejected diff reached the work folder (%v)", err)
	}
	b.noErrors("reject")

	// Cancel.
	cancelID := cliTask(t, bin, env, fi.repo, "sleep 300")
	b.do("open the running task", chromedp.Navigate(base+"/tasks/"+cancelID), chromedp.WaitVisible(chromedp.CSS(`form[hx-post$="/cancel"] button`)),
		chromedp.Click(chromedp.CSS(`form[hx-post$="/cancel"] button`)))
	b.waitJS("the cancel answer", `document.querySelector('#result .result') !== null`)
	waitUntil(t, cancelID, 90*time.Second, store.GetTask, func(t *models.Task) bool { return t.Status.Phase == models.TaskPhaseCancelled },
		func(t *models.Task) any { return t.Status })
	b.noErrors("cancel")

	b.do("final list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#tasks")))
	if n := eval[int](b, "count rows", `document.querySelectorAll('#tasks tr[data-task]').length`); n != 3 {
		t.Errorf("the list shows %d tasks, want 3", n)
	}
	b.screenshot("dashboard")
	b.noErrors("/")
}
