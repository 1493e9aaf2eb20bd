package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// HackScript runs the repository's hack/<name> (the idempotent scripts that
// install and start what the tests drive: Docker, a second engine,
// PostgreSQL, images) from the repository's top and returns what it printed
// on stdout; its stderr goes to this process's, and its last lines into the
// error when it fails.
func HackScript(name string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the repository")
	}
	// This file is <repo>/test/testutil/hack.go.
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("bash", filepath.Join(root, "hack", name))
	cmd.Dir = root
	var out, errOut bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &teeTail{w: os.Stderr, tail: &errOut}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("hack/%s: %w: %s", name, err, lastLines(errOut.String(), 5))
	}
	return out.String(), nil
}

// teeTail writes to w and keeps a copy in tail.
type teeTail struct {
	w    *os.File
	tail *bytes.Buffer
}

func (t *teeTail) Write(p []byte) (int, error) {
	t.tail.Write(p)
	return t.w.Write(p)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}
