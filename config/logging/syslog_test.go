package logging

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
)

// With log.syslog set, every line at or above the level also goes to the
// collector, as the log file's JSON at the matching syslog severity
// (facility daemon): a tool call is found there as "Tool invoked".
func TestSyslog_ShipsLinesToTheCollector(t *testing.T) {
	dir, err := os.MkdirTemp("", "cpsl") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "syslog")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	logger, closeLogs, err := New(config.LogConfig{Level: "info", MaxSizeMB: 1, MaxFiles: 1, Dir: t.TempDir(),
		Syslog: "unixgram://" + sock}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	logger.Debug("below the level")
	LogToolCall(logger.With(), "task_worker", time.Second, []string{"prompt"}, nil)
	logger.Error("store failed", zap.Error(errors.New("disk full")))
	if err := closeLogs(); err != nil {
		t.Fatal(err)
	}
	var got []string
	buf := make([]byte, 8192)
	for len(got) < 2 {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		got = append(got, string(buf[:n]))
	}
	// <30> = daemon (3) * 8 + info (6); <27> = daemon * 8 + err (3).
	if !strings.HasPrefix(got[0], "<30>") || !strings.Contains(got[0], "claude-parallel") ||
		!strings.Contains(got[0], `"msg":"Tool invoked"`) || !strings.Contains(got[0], `"tool":"task_worker"`) {
		t.Errorf("first message %q", got[0])
	}
	if !strings.HasPrefix(got[1], "<27>") || !strings.Contains(got[1], `"msg":"store failed"`) {
		t.Errorf("second message %q", got[1])
	}
	for _, m := range got {
		if strings.Contains(m, "below the level") {
			t.Errorf("a debug line was shipped at level info: %q", m)
		}
	}
}

// A collector that cannot be reached is an error at start, not lost lines.
func TestSyslog_UnreachableIsAnError(t *testing.T) {
	_, _, err := New(config.LogConfig{Level: "info", MaxSizeMB: 1, MaxFiles: 1, Dir: t.TempDir(),
		Syslog: "unixgram:///nonexistent/syslog.sock"}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "syslog") {
		t.Fatalf("err = %v", err)
	}
}
