// Command fakeapi serves the fake Anthropic Messages API of package
// fakeanthropic on loopback and, while it serves, runs the command given
// after "--" (Claude Code) with ANTHROPIC_BASE_URL pointing at it. The model
// is fakeanthropic.ScriptModel: the script travels in the prompt.
//
// It is the entry point of the agent e2e test's image (the agent image plus
// this static binary): the profile's command starts it before `claude`, in
// the container's own network namespace (network none has loopback), so the
// real Claude Code talks to a scripted model without any network.
//
// Every model request is appended as one JSON line to the log (default
// $HOME/.fakeapi/requests.jsonl; HOME is the task's own home on the host, so
// the test reads what the model received): the conversation, the reply and
// the sha256 of the API key the request carried — never the key itself.
//
//	fakeapi [-down] [-log FILE] -- claude -p PROMPT ...
//
// -down points the command at a loopback port nothing listens on, so each
// request meets a refused connection.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/claude-parallel/claude-parallel/test/fakeanthropic"
)

// record is one line of the log.
type record struct {
	Time      time.Time               `json:"time"`
	Kind      string                  `json:"kind"` // "start" (once per run), "request" (every request) or "turn" (a model turn)
	Path      string                  `json:"path,omitempty"`
	KeySHA256 string                  `json:"keySha256,omitempty"`
	Messages  []fakeanthropic.Message `json:"messages,omitempty"`
	Tools     int                     `json:"tools,omitempty"`
	Reply     *fakeanthropic.Reply    `json:"reply,omitempty"`
	Down      bool                    `json:"down,omitempty"`
}

type logger struct {
	mu sync.Mutex
	f  *os.File
}

func (l *logger) write(r record) {
	r.Time = time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.f.Write(append(b, '\n'))
}

func main() {
	os.Exit(run())
}

func run() int {
	down := flag.Bool("down", false, "point the command at a closed loopback port (connection refused)")
	logPath := flag.String("log", "", "request log (default $HOME/.fakeapi/requests.jsonl)")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "fakeapi: usage: fakeapi [-down] [-log FILE] -- COMMAND [ARG...]")
		return 2
	}
	if *logPath == "" {
		*logPath = filepath.Join(os.Getenv("HOME"), ".fakeapi", "requests.jsonl")
	}
	if err := os.MkdirAll(filepath.Dir(*logPath), 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "fakeapi: log dir: %v\n", err)
		return 2
	}
	f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakeapi: open log: %v\n", err)
		return 2
	}
	defer f.Close()
	log := &logger{f: f}
	log.write(record{Kind: "start", Down: *down})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakeapi: listen: %v\n", err)
		return 2
	}
	base := "http://" + l.Addr().String()
	if *down {
		// The port was just free; closed again, a connection to it is refused.
		l.Close()
	} else {
		api := fakeanthropic.New(func(c fakeanthropic.Conversation) fakeanthropic.Reply {
			r := fakeanthropic.ScriptModel(c)
			log.write(record{Kind: "turn", Messages: c.Messages, Tools: len(c.Tools), Reply: &r})
			return r
		})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := record{Kind: "request", Path: r.Method + " " + r.URL.Path}
			key := r.Header.Get("X-Api-Key")
			if key == "" {
				key = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			}
			if key != "" {
				sum := sha256.Sum256([]byte(key))
				rec.KeySHA256 = hex.EncodeToString(sum[:])
			}
			log.write(rec)
			api.ServeHTTP(w, r)
		})
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Shutdown(context.Background())
	}

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	env := []string{"ANTHROPIC_BASE_URL=" + base}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ANTHROPIC_BASE_URL=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "fakeapi: start %s: %v\n", args[0], err)
		return 127
	}
	// The container's stop signal goes to PID 1, this process: pass it on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "fakeapi: wait: %v\n", err)
		return 1
	}
}
