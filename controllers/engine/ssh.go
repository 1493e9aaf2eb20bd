package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
)

// sshProgram is the ssh client an ssh:// engine is reached through; a
// variable so a test can put a stand-in on the path.
var sshProgram = "ssh"

// sshOptions reaches an engine at ssh://[user@]host[:port] the way the
// docker CLI does: every connection is `ssh … host docker system
// dial-stdio`, whose standard input and output carry the API, so the remote
// machine needs only sshd, the docker CLI and access to its engine's socket.
// Authentication is ssh's own (keys, agent, ~/.ssh/config); BatchMode keeps
// ssh from ever prompting on the server's terminal.
func sshOptions(host string) ([]client.Opt, error) {
	u, err := url.Parse(host)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" {
		return nil, fmt.Errorf("docker host %q: want ssh://[user@]host[:port]", host)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("docker host %q: an ssh address takes no path or query", host)
	}
	args := []string{"-o", "BatchMode=yes", "-o", "ConnectTimeout=30"}
	if u.User != nil {
		args = append(args, "-l", u.User.Username())
	}
	if p := u.Port(); p != "" {
		args = append(args, "-p", p)
	}
	args = append(args, "--", u.Hostname(), "docker", "system", "dial-stdio")
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dialCommand(ctx, sshProgram, args...)
	}
	// The host name in the URL is only what HTTP requests carry; every
	// connection goes through dial.
	return []client.Opt{client.WithHost("http://docker.example.com"), client.WithDialContext(dial)}, nil
}

// dialCommand starts name with args and returns its standard input and
// output as one connection. The process lives as long as the connection;
// ctx bounds only the start.
func dialCommand(ctx context.Context, name string, args ...string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &commandConn{cmd: cmd, stdin: stdin, stdout: stdout}
	cmd.Stderr = &c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return c, nil
}

// commandConn is a net.Conn over a child process's standard streams.
type commandConn struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr tailBuffer

	closeOnce sync.Once
	closeErr  error
}

func (c *commandConn) Read(p []byte) (int, error) {
	n, err := c.stdout.Read(p)
	if errors.Is(err, io.EOF) && n == 0 {
		if msg := strings.TrimSpace(c.stderr.String()); msg != "" {
			return 0, fmt.Errorf("%w (%s: %s)", io.EOF, c.cmd.Path, msg)
		}
	}
	return n, err
}

func (c *commandConn) Write(p []byte) (int, error) { return c.stdin.Write(p) }

// CloseWrite ends the stream towards the engine (the client half-closes
// hijacked connections).
func (c *commandConn) CloseWrite() error { return c.stdin.Close() }

func (c *commandConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.stdin.Close()
		_ = c.stdout.Close()
		if c.cmd.Process != nil {
			_ = c.cmd.Process.Kill()
		}
		_ = c.cmd.Wait() // reaps the child; its exit status after a kill says nothing
	})
	return c.closeErr
}

func (c *commandConn) LocalAddr() net.Addr  { return commandAddr{} }
func (c *commandConn) RemoteAddr() net.Addr { return commandAddr{} }

// Deadlines are not supported by pipes to a process; the client's contexts
// bound every call instead.
func (c *commandConn) SetDeadline(time.Time) error      { return nil }
func (c *commandConn) SetReadDeadline(time.Time) error  { return nil }
func (c *commandConn) SetWriteDeadline(time.Time) error { return nil }

type commandAddr struct{}

func (commandAddr) Network() string { return "command" }
func (commandAddr) String() string  { return "command" }

// tailBuffer keeps the last 4 KiB written to it (a child's stderr, for
// errors), safe for the writer goroutine exec starts.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 4096 {
		b.buf = b.buf[len(b.buf)-4096:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
