package engine_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
	"github.com/claude-parallel/claude-parallel/controllers/engine/enginetest"
)

// copyRoundTrip runs a copy-mode container on e: the folder is copied in
// before start, the container changes it, and the tree read back out holds
// the change; the container has no mount and its copy targets are labelled.
func copyRoundTrip(t *testing.T, e *engine.Engine) {
	t.Helper()
	ctx := context.Background()
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/in.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	s := spec(t, enginetest.Labels(t, e), `set -e; cat sub/in.txt; test -x run.sh; test -L link; `+
		`echo "$(stat -c %u:%g . sub sub/in.txt | tr '\n' ' ')"; echo made > out.txt`)
	s.Mounts = []engine.Mount{{Source: src, Target: "/workspace"}}
	s.CopyMounts = true
	id, err := e.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CopyIn(ctx, id, s.Mounts, s.User, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	info := enginetest.WaitFor(t, e, id, time.Minute, func(c engine.ContainerInfo) bool { return c.Finished() })
	out := readLogs(t, e, id)
	if info.ExitCode != 0 || !strings.Contains(out, "from the host") || !strings.Contains(out, "10001:10001 10001:10001 10001:10001") {
		t.Fatalf("exit %d, output %q: want the copied tree, owned by the container's user", info.ExitCode, out)
	}
	if len(info.Mounts) != 0 {
		t.Errorf("mounts %+v, want none", info.Mounts)
	}
	if targets, ok := engine.CopyTargets(info.Labels); !ok || len(targets) != 1 || targets[0] != "/workspace" {
		t.Errorf("copy targets %v %v, want [/workspace]", targets, ok)
	}
	rc, err := e.CopyOut(ctx, id, "/workspace")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[hdr.Name] = string(b) + hdr.Linkname
	}
	if got["workspace/out.txt"] != "made\n" || got["workspace/sub/in.txt"] != "from the host\n" || got["workspace/link"] != "sub/in.txt" {
		t.Errorf("copied out %v", got)
	}
}

func readLogs(t *testing.T, e *engine.Engine, id string) string {
	t.Helper()
	rc, err := e.Logs(context.Background(), id, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// TestCopy_RoundTrip copies a folder into a container and back on the
// machine's engine.
func TestCopy_RoundTrip(t *testing.T) {
	copyRoundTrip(t, enginetest.New(t))
}

// TestCopy_RefusesReadOnlyRootfs: copy targets live in the writable layer.
func TestCopy_RefusesReadOnlyRootfs(t *testing.T) {
	e := enginetest.New(t)
	s := spec(t, enginetest.Labels(t, e), "true")
	s.Mounts = []engine.Mount{{Source: t.TempDir(), Target: "/workspace"}}
	s.CopyMounts, s.ReadOnlyRootfs = true, true
	if _, err := e.Create(context.Background(), s); !errors.Is(err, engine.ErrRefused) {
		t.Fatalf("create: %v, want ErrRefused", err)
	}
}

// TestSSH_ReachesTheEngineThroughSSH connects to ssh://agent@build-box:2222
// with a stand-in ssh on the PATH that runs the remote command (`docker
// system dial-stdio`, the real docker CLI) against the second engine, and
// runs the copy round trip through it: every API call, the copy streams
// included, crosses the ssh pipe.
func TestSSH_ReachesTheEngineThroughSSH(t *testing.T) {
	_, host := enginetest.NewSecond(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the docker CLI is needed on the remote side: %v", err)
	}
	bin := t.TempDir()
	argsFile := filepath.Join(bin, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\n" +
		"while [ \"$1\" != -- ]; do shift; done; shift; shift\n" +
		"DOCKER_HOST=" + host + " exec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	e, err := engine.New("ssh://agent@build-box:2222")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Host() != "ssh://agent@build-box:2222" {
		t.Errorf("Host() = %q", e.Host())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := e.Ping(ctx); err != nil {
		t.Fatalf("ping through ssh: %v", err)
	}
	args, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	want := "-o\nBatchMode=yes\n-o\nConnectTimeout=30\n-l\nagent\n-p\n2222\n--\nbuild-box\ndocker\nsystem\ndial-stdio\n"
	if string(args) != want {
		t.Errorf("ssh arguments:\n%s\nwant:\n%s", args, want)
	}
	copyRoundTrip(t, e)
}

// TestSSH_RefusesBadAddresses: an ssh address names a host and nothing else.
func TestSSH_RefusesBadAddresses(t *testing.T) {
	for _, host := range []string{"ssh://", "ssh://host/path", "ssh://host?x=1"} {
		if _, err := engine.New(host); err == nil {
			t.Errorf("New(%q) accepted", host)
		}
	}
}
