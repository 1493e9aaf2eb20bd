package mcp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
)

// EndpointPath is where the streamable HTTP transport is served.
const EndpointPath = "/mcp"

// maxRequestBytes bounds a request body: the largest arguments (a prompt of
// 100k characters) fit many times over, a runaway client does not.
const maxRequestBytes = 8 << 20

// HTTPOptions configure the HTTP front end.
type HTTPOptions struct {
	// Config is read on every request, so a token or origin list changed by
	// a reload applies at once.
	Config func() *config.Config
	Logger *zap.Logger
	// Routes, when not nil, adds more endpoints beside /mcp (cmd mounts the
	// ops endpoints, /healthz, /readyz and /metrics, with it).
	Routes func(mux *http.ServeMux)
}

// CheckListen refuses to serve beyond loopback without a bearer token: an
// MCP server reachable from the network without one would let anybody run
// containers on this machine.
func CheckListen(addr string, token config.Secret) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("http address %q: must be host:port, e.g. 127.0.0.1:47821", addr)
	}
	if !config.IsLoopbackHost(host) && token.Value() == "" {
		return fmt.Errorf("refusing to listen on %s without a bearer token: it is reachable beyond this machine; set %s or http.token in the config file, or listen on 127.0.0.1",
			addr, config.EnvToken)
	}
	return nil
}

// HTTPServer serves the MCP server over streamable HTTP at /mcp.
type HTTPServer struct {
	srv        *http.Server
	streamable *server.StreamableHTTPServer
	ln         net.Listener
}

// ListenHTTP checks the address, binds it and returns a server ready to
// Serve. Binding here means a port in use is reported before anything else
// starts, and a test can ask for port 0 and read Addr.
func ListenHTTP(addr string, mcpSrv *server.MCPServer, opts HTTPOptions) (*HTTPServer, error) {
	if err := CheckListen(addr, opts.Config().HTTP.Token); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	streamable := server.NewStreamableHTTPServer(mcpSrv,
		server.WithEndpointPath(EndpointPath),
		server.WithStreamableHTTPLogger(slog.New(newZapSlogHandler(opts.Logger))),
		server.WithHeartbeatInterval(15*time.Second),
	)
	mux := http.NewServeMux()
	mux.Handle(EndpointPath, Protect(streamable, opts))
	if opts.Routes != nil {
		opts.Routes(mux)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return &HTTPServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          zap.NewStdLog(opts.Logger),
		},
		streamable: streamable,
		ln:         ln,
	}, nil
}

// Addr is the address actually bound (with the real port when 0 was asked).
func (h *HTTPServer) Addr() string { return h.ln.Addr().String() }

// Serve serves until Shutdown; it returns nil after a clean shutdown.
func (h *HTTPServer) Serve() error {
	if err := h.srv.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// Shutdown ends the sessions (unblocking long-lived streams), then lets
// in-flight requests finish until ctx ends.
func (h *HTTPServer) Shutdown(ctx context.Context) error {
	h.streamable.CloseSessions(ctx)
	if err := h.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	return nil
}

// Protect wraps the MCP endpoint: the body is bounded, a browser's Origin
// must be a loopback origin or an allowed one (else 403: a web page must not
// drive a local server), and when a token is configured the request must
// carry it as a bearer token (else 401).
func Protect(next http.Handler, opts HTTPOptions) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := opts.Config()
		if origin := r.Header.Get("Origin"); !originAllowed(origin, cfg.HTTP.AllowedOrigins) {
			logger.Warn("http request refused: origin not allowed", zap.String("remote", r.RemoteAddr), zap.String("origin", cut(origin, 200)))
			http.Error(w, "Forbidden: origin not allowed", http.StatusForbidden)
			return
		}
		if token := cfg.HTTP.Token.Value(); token != "" && !bearerMatches(r.Header.Get("Authorization"), token) {
			logger.Warn("http request refused: missing or wrong bearer token", zap.String("remote", r.RemoteAddr))
			w.Header().Set("WWW-Authenticate", `Bearer realm="claude-parallel"`)
			http.Error(w, "Unauthorized: a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
		next.ServeHTTP(w, r)
	})
}

// originAllowed accepts no Origin (not a browser), a loopback origin, or
// one listed in allowed (compared as scheme://host[:port], case-insensitive).
func originAllowed(origin string, allowed []string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if config.IsLoopbackHost(u.Hostname()) {
		return true
	}
	want := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, a := range allowed {
		if strings.ToLower(strings.TrimSuffix(a, "/")) == want {
			return true
		}
	}
	return false
}

// bearerMatches compares the presented token with the configured one in
// constant time; hashing first hides the length as well.
func bearerMatches(header, token string) bool {
	scheme, presented, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	a := sha256.Sum256([]byte(strings.TrimSpace(presented)))
	b := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
