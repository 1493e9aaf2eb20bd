package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/mark3labs/mcp-go/server"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/controllers"
	"github.com/claude-parallel/claude-parallel/mcp"
)

// Shutdown bounds: in-flight calls get a moment to finish, the controllers
// a little longer (a reconcile may be in a Docker call). Containers keep
// running either way; the next leader adopts them.
const (
	httpDrainTimeout       = 10 * time.Second
	controllersStopTimeout = 20 * time.Second
	// readyMessage is logged once the server accepts requests; tests wait for it.
	readyMessage = "mcp server ready"
)

type serveOptions struct {
	http string
}

func newServeCommand(opts *globalOptions) *cobra.Command {
	so := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the MCP server (stdio, or streamable HTTP with --http) and the controllers",
		Long: `Run the MCP server and, while this process holds the leader lease, the controllers.

By default the server speaks MCP over stdin/stdout (nothing but protocol is
written to stdout; logs go to the log files and stderr). With --http ADDR it
serves streamable HTTP at http://ADDR/mcp instead; a bearer token
(` + config.EnvToken + ` or http.token) is required whenever ADDR is not a
loopback address.

SIGTERM or SIGINT stops the server cleanly (task containers keep running and
are adopted by the next leader); SIGHUP reloads the configuration file.`,
		Args: withUsageError(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), opts, so, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&so.http, "http", "", "serve streamable HTTP on this host:port (e.g. 127.0.0.1:47821) instead of stdio")
	return cmd
}

// serve runs one complete system: the MCP front end over stdio or HTTP and
// the controllers, until the client goes away (stdio EOF) or a signal ends it.
func serve(ctx context.Context, opts *globalOptions, so *serveOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := opts.loadConfig()
	if err != nil {
		return err
	}
	if so.http != "" {
		// Checked before anything starts, so a refused address leaves no trace.
		if err := mcp.CheckListen(so.http, cfg.HTTP.Token); err != nil {
			return err
		}
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = a.close() }()
	// Every page is read once here: a file damaged in the middle would
	// otherwise open fine and fail every call that touches the damage.
	if err := a.store.QuickCheck(ctx); err != nil {
		a.log.Error("store is damaged; not serving", zap.Error(err))
		return err
	}
	if err := a.wireControllers(); err != nil {
		a.log.Error("controllers not started; the server answers from the store only", zap.Error(err))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	controllersDone := a.runControllers(ctx)
	go settleMemory(ctx, settleFirst, settleEvery, settleMaxEvery, settleMinFree, a.settle)
	stopReload := a.reloadOnSIGHUP(opts, so.http)
	defer stopReload()
	waitOps, err := a.startOpsListener(ctx)
	if err != nil {
		cancel()
		stopWithin(a.log, "controllers", controllersDone, controllersStopTimeout)
		return err
	}
	defer waitOps()

	srv := mcp.NewServer(a.frontendDeps())
	if so.http != "" {
		err = serveHTTP(ctx, a, srv, so.http)
	} else {
		a.log.Info(readyMessage, zap.String("transport", "stdio"), zap.String("db", a.store.Path()))
		a.notifyService(ctx)
		err = mcp.NewStdioServer(srv, a.log).Listen(ctx, stdin, stdout)
		if errors.Is(err, context.Canceled) {
			err = nil // a signal ended a healthy server
		}
	}
	cancel()
	a.sdNotify(daemon.SdNotifyStopping) // also when stdin closed, not only on a signal
	stopWithin(a.log, "controllers", controllersDone, controllersStopTimeout)
	a.log.Info("mcp server stopped")
	return err
}

// serveHTTP serves until ctx ends, then drains in-flight requests.
func serveHTTP(ctx context.Context, a *app, srv *server.MCPServer, addr string) error {
	hs, err := mcp.ListenHTTP(addr, srv, mcp.HTTPOptions{Config: a.config, Logger: a.log.Named("http"), Routes: a.httpRoutes(ctx)})
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve() }()
	a.log.Info(readyMessage, zap.String("transport", "http"),
		zap.String("url", "http://"+hs.Addr()+mcp.EndpointPath), zap.String("db", a.store.Path()))
	a.notifyService(ctx)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), httpDrainTimeout)
	defer cancel()
	if err := hs.Shutdown(drain); err != nil {
		a.log.Warn("http shutdown incomplete", zap.Error(err))
	}
	return <-served
}

// reloadOnSIGHUP reloads the configuration on every SIGHUP until the
// returned stop function is called.
func (a *app) reloadOnSIGHUP(opts *globalOptions, httpAddr string) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				a.reload(opts, httpAddr)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// frontEndKeys are the settings a reload applies at once that only the
// front end reads (per request). The controllers apply theirs,
// controllers.LiveConfigKeys, on their next pass; everything else (paths,
// intervals, workers, the lease...) is built into the running controllers,
// so the front end keeps the old values too until a restart, rather than
// accept tasks the controllers would run differently.
var frontEndKeys = []string{"log.level", "http.token", "http.allowed_origins"}

// liveKeys are all the settings a reload applies at once.
var liveKeys = append(slices.Clone(frontEndKeys), controllers.LiveConfigKeys...)

// reload re-reads the configuration (file, environment, flags) and applies
// what can change at run time, logging what changed.
func (a *app) reload(opts *globalOptions, httpAddr string) {
	cur := a.config()
	next, err := opts.loadConfig()
	if err != nil {
		a.log.Error("config reload failed; keeping the current configuration", zap.Error(err))
		return
	}
	if httpAddr != "" {
		if err := mcp.CheckListen(httpAddr, next.HTTP.Token); err != nil {
			a.log.Error("config reload refused; keeping the current configuration", zap.Error(err))
			return
		}
	}
	changed := changedKeys(cur, next)
	if len(changed) == 0 {
		a.log.Info("config reloaded; nothing changed")
		return
	}
	applied := cur.Clone()
	live, later := applyLiveKeys(applied, next, changed)
	if err := applied.Validate(); err != nil {
		// Only a key that needs a restart can make the live ones invalid
		// together with it (the whole of next was valid).
		a.log.Error("config reload refused: the settings that apply at once do not fit the ones in force; restart instead",
			zap.Strings("need_restart", later), zap.Error(err))
		return
	}
	if slices.Contains(live, "log.level") {
		if lvl, err := zap.ParseAtomicLevel(applied.Log.Level); err == nil {
			a.level.SetLevel(lvl.Level())
		}
	}
	a.cfg.Store(applied)
	if a.system != nil {
		a.system.SetConfig(applied)
	}
	a.log.Info("config reloaded", zap.Strings("applied", live), zap.Strings("need_restart", later))
}

// applyLiveKeys copies into applied, from a copy of next, the settings
// among changed that apply at once; it returns those and the others.
func applyLiveKeys(applied, next *config.Config, changed []string) (live, later []string) {
	next = next.Clone() // so applied shares no slice or map with the caller's
	for _, k := range changed {
		if applyLiveKey(applied, next, k) {
			live = append(live, k)
		} else {
			later = append(later, k)
		}
	}
	return live, later
}

// applyLiveKey sets the setting k of applied to next's when it is one that
// applies at once, and reports whether it was.
func applyLiveKey(applied, next *config.Config, k string) bool {
	if !slices.Contains(liveKeys, k) {
		return false
	}
	dst, src := reflect.ValueOf(applied).Elem(), reflect.ValueOf(next).Elem()
	for _, name := range strings.Split(k, ".") {
		i := yamlField(dst.Type(), name)
		if i < 0 {
			return false
		}
		dst, src = dst.Field(i), src.Field(i)
	}
	dst.Set(src)
	return true
}

// yamlField is the index of the field of struct type t whose YAML name is
// name, -1 if none.
func yamlField(t reflect.Type, name string) int {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == name {
			return i
		}
	}
	return -1
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// changedKeys lists the configuration keys (YAML names, one level into
// sections) whose values differ. Secrets are compared, never printed.
func changedKeys(a, b *config.Config) []string {
	var out []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		fa, fb := va.Field(i), vb.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(config.Duration{}) {
			for j := range f.Type.NumField() {
				sub := yamlName(f.Type.Field(j))
				if sub != "" && !reflect.DeepEqual(fa.Field(j).Interface(), fb.Field(j).Interface()) {
					out = append(out, name+"."+sub)
				}
			}
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			out = append(out, name)
		}
	}
	return out
}
