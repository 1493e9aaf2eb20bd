package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/test/testutil"
)

// mountSmallFS mounts a tmpfs of size bytes at a new directory under dir
// (root only) and unmounts it when the test ends.
func mountSmallFS(t *testing.T, dir string, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.SkipOrFailInCI(t, "mounting a small file system needs root")
	}
	mnt := filepath.Join(dir, "small-fs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// fillDisk writes into dir until the file system says it is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill disk: %v", err)
			}
			break
		}
	}
	for n := 4096; n > 0; n /= 2 { // the last partial blocks
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

// With the database on a full disk: a tool call that writes gets an error
// result saying the disk is full (not a protocol error), and `status`
// names the server that still runs as the lease's holder and why it stalls
// (not "no process holds the lease").
func TestServe_FullDiskIsNamedToCallersAndInStatus(t *testing.T) {
	e := newServerEnv(t)
	mnt := mountSmallFS(t, e.dir, 8<<20)
	db := filepath.Join(mnt, "cp.db")
	e.env = append(e.env, config.EnvDBPath+"="+db)
	cfgFile := filepath.Join(e.dir, "config.yaml")
	testutil.WriteFile(t, cfgFile, "allowed_roots: ["+e.dir+"]\nintervals:\n  lease_duration: 2s\n  lease_renew: 200ms\n")

	cmd := e.command("--config", cfgFile, "serve")
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "disk-full-test", Version: "1"}, nil).
		Connect(context.Background(), &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr: %s", err, stderr)
	}
	defer cs.Close()
	serverPid := ":" + strconv.Itoa(cmd.Process.Pid) + ":"
	statusJSON := func() service.SystemStatusResult {
		t.Helper()
		st := e.command("--config", cfgFile, "status", "--json")
		var out, errOut bytes.Buffer
		st.Stdout, st.Stderr = &out, &errOut
		if err := st.Run(); err != nil {
			t.Fatalf("status: %v\n%s", err, errOut.String())
		}
		var res service.SystemStatusResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out.String())
		}
		return res
	}
	waitFor(t, func() bool {
		l := statusJSON().Leader
		return l.Active && strings.Contains(l.Holder, serverPid)
	}, "the server leads", stderr)

	fillDisk(t, mnt)

	// A write through MCP: a tool error result naming the cause.
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "task_worker",
		Arguments: map[string]any{"task": "echo hi", "workFolder": e.repo, "agent": "shell"}})
	if err != nil {
		t.Fatalf("task_worker on a full disk: protocol error %v, want a tool error result naming the cause", err)
	}
	if text := testutil.ToolText(res); !res.IsError || !strings.Contains(text, "disk") || !strings.Contains(text, "full") || !strings.Contains(text, db) {
		t.Fatalf("task_worker on a full disk: isError=%v %q, want an error result saying the disk holding %s is full", res.IsError, text, db)
	}

	// The server cannot renew; once its lease lapses, status still names it
	// and says why, from what it can read.
	var st service.SystemStatusResult
	waitFor(t, func() bool { st = statusJSON(); return !st.Leader.Active }, "the lease lapses", stderr)
	if !strings.Contains(st.Leader.Holder, serverPid) || !strings.Contains(st.Leader.Stalled, "still runs") ||
		!strings.Contains(st.Leader.Stalled, "full") {
		t.Fatalf("status on a full disk: leader %+v, want the running server %s named with the full disk as the cause", st.Leader, serverPid)
	}
	var md bytes.Buffer
	text := e.command("--config", cfgFile, "status")
	text.Stdout = &md
	if err := text.Run(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(md.String(), "no process holds the lease") || !strings.Contains(md.String(), "still runs") || !strings.Contains(md.String(), serverPid) {
		t.Fatalf("status text on a full disk:\n%s", md.String())
	}

	// Space again: the server renews and leads, and writes go through.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { l := statusJSON().Leader; return l.Active && strings.Contains(l.Holder, serverPid) },
		"the server leads again once space is freed", stderr)
	var started service.TaskWorkerResult
	call(t, cs, "task_worker", map[string]any{"task": "echo hi", "workFolder": e.repo, "agent": "shell"}, &started)
}
