package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/mcp/service"
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
	endpoint, streamable := newEndpoint(mcpSrv, opts)
	mux := http.NewServeMux()
	mux.Handle(EndpointPath, endpoint)
	// Anything not routed below (the OAuth discovery paths a client probes
	// first) gets a quick 404 saying a bearer token is what is needed.
	mux.Handle("/", noOAuth())
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
			logger.Warn("http request refused: origin not allowed", zap.String("remote", r.RemoteAddr), zap.String("origin", service.Cut(origin, 200)))
			http.Error(w, "Forbidden: origin not allowed", http.StatusForbidden)
			return
		}
		if token := cfg.HTTP.Token.Value(); token != "" && !bearerMatches(r.Header.Get("Authorization"), token) {
			logger.Warn("http request refused: missing or wrong bearer token", zap.String("remote", r.RemoteAddr))
			// No resource_metadata hint: this server has no OAuth, and a
			// client that finds none should ask its user for the token.
			w.Header().Set("WWW-Authenticate", `Bearer realm="claude-parallel", error_description="`+tokenHelp+`"`)
			http.Error(w, "Unauthorized: "+tokenHelp+".", http.StatusUnauthorized)
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

// tokenHelp says how to pass the token, in the 401 body and challenge.
const tokenHelp = "this server needs a bearer token: send the header Authorization: Bearer <token>, the token being the server's " +
	config.EnvToken + " or http.token (with Claude Code: claude mcp add --transport http NAME URL --header 'Authorization: Bearer <token>'); it has no OAuth"

// NewHTTPHandler returns the handler of the MCP endpoint with every check
// ListenHTTP serves it with, for tests and embedding; close the returned
// server's sessions to end its streams.
func NewHTTPHandler(mcpSrv *server.MCPServer, opts HTTPOptions) (http.Handler, *server.StreamableHTTPServer) {
	return newEndpoint(mcpSrv, opts)
}

// newEndpoint builds the streamable HTTP transport behind its checks:
// origin and token (Protect), then the session rules (sessionGate), then
// the ordered responses that let a call's progress go out before its
// response (orderedStreams).
func newEndpoint(mcpSrv *server.MCPServer, opts HTTPOptions) (http.Handler, *server.StreamableHTTPServer) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	sessions := newSessionRegistry()
	streamable := server.NewStreamableHTTPServer(mcpSrv,
		server.WithEndpointPath(EndpointPath),
		server.WithStreamableHTTPLogger(slog.New(newZapSlogHandler(opts.Logger))),
		server.WithHeartbeatInterval(15*time.Second),
		server.WithSessionIdManager(sessions),
	)
	return Protect(sessionGate(orderedStreams(streamable, &cancelledSet{}), sessions), opts), streamable
}

// noOAuth answers every path but the endpoint (the OAuth discovery paths
// of RFC 9728 and RFC 8414, /register, /authorize, /token, ...) at once with
// 404, without asking for the token, and says how to authenticate: a client
// such as Claude Code tries OAuth on a 401 and shows the body of the 404 its
// client registration gets.
func noOAuth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "Not Found: no OAuth here; "+tokenHelp+".", http.StatusNotFound)
	})
}

// sessionRegistry issues the Mcp-Session-Id values and remembers them, so
// an id the server never issued (or one from before a restart) is refused
// with 404 and the client starts a new session, as the transport says.
type sessionRegistry struct {
	mu   sync.Mutex
	live map[string]bool // false once terminated
}

func newSessionRegistry() *sessionRegistry { return &sessionRegistry{live: map[string]bool{}} }

var errUnknownSession = errors.New("unknown session")

func (r *sessionRegistry) Generate() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	id := "cp-" + hex.EncodeToString(b[:])
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live[id] = true
	return id
}

func (r *sessionRegistry) Validate(id string) (terminated bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	live, known := r.live[id]
	if !known {
		return false, errUnknownSession
	}
	return !live, nil
}

func (r *sessionRegistry) Terminate(id string) (notAllowed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, known := r.live[id]; known {
		r.live[id] = false
	}
	return false, nil
}

// sessionGate applies the session rules of the streamable HTTP transport
// before the library sees a request: every request but initialize must
// carry Mcp-Session-Id (400 without one), and it must be one this server
// issued and did not end (404). The library alone accepts a GET without a
// session and holds it open for ever. Requests of protocol versions without
// sessions (2026-07-28 on) pass through.
func sessionGate(next http.Handler, sessions *sessionRegistry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) {
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodDelete:
		case http.MethodPost:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "Bad Request: cannot read the body: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var msg struct {
				Method string `json:"method"`
				Params struct {
					Meta *mcp.Meta `json:"_meta"`
				} `json:"params"`
			}
			// Not JSON, a response (no method), initialize and modern
			// requests are the library's to judge.
			if json.Unmarshal(body, &msg) != nil || msg.Method == "" || msg.Method == string(mcp.MethodInitialize) ||
				mcp.IsModernProtocol(msg.Params.Meta.ProtocolVersion()) {
				next.ServeHTTP(w, r)
				return
			}
		default:
			next.ServeHTTP(w, r)
			return
		}
		id := r.Header.Get(server.HeaderKeySessionID)
		if id == "" {
			http.Error(w, "Bad Request: no "+server.HeaderKeySessionID+" header; send initialize first and then the session id it returned with every request", http.StatusBadRequest)
			return
		}
		if terminated, err := sessions.Validate(id); err != nil || terminated {
			http.Error(w, "Not Found: unknown or ended session; start a new one with initialize", http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// orderedStreams gives every request a response writer the tool handlers
// can write progress notifications to directly (orderedResponse), so they
// are on the wire before the call's response. It also notes the requests a
// client cancels (notifications/cancelled), whose response is then not sent:
// their stream ends without one.
func orderedStreams(next http.Handler, cancelled *cancelledSet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flusher, ok := w.(http.Flusher)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		ow := &orderedResponse{w: w, flusher: flusher, header: http.Header{}, cancelled: cancelled}
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "Bad Request: cannot read the body: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			session := r.Header.Get(server.HeaderKeySessionID)
			if id, ok := cancelledID(body); ok {
				cancelled.add(session + " " + id)
			} else if id, ok := requestID(body); ok {
				ow.key = session + " " + id
			}
		}
		next.ServeHTTP(ow, r.WithContext(withNotifier(r.Context(), ow)))
	})
}

// requestID returns the id of a JSON-RPC request.
func requestID(body []byte) (string, bool) {
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method == "" {
		return "", false
	}
	return canonicalID(msg.ID)
}

// orderedResponse is the response writer of one request. The library sets
// headers on its own map and writes through it; notify turns the response
// into an SSE stream (telling the library's session to answer on SSE too)
// and writes the event itself, under the same lock as the library's writes.
type orderedResponse struct {
	w       http.ResponseWriter
	flusher http.Flusher

	// key names the request (session and id) among the cancelled ones.
	key       string
	cancelled *cancelledSet

	mu          sync.Mutex
	header      http.Header // the library's view, copied on WriteHeader
	wroteHeader bool
	sse         bool
	dropped     bool // the response of a cancelled request is not sent
}

// isCancelled reports whether the client cancelled this request.
func (o *orderedResponse) isCancelled() bool { return o.key != "" && o.cancelled.has(o.key) }

func (o *orderedResponse) Header() http.Header { return o.header }

func (o *orderedResponse) WriteHeader(code int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writeHeaderLocked(code)
}

func (o *orderedResponse) writeHeaderLocked(code int) {
	if o.wroteHeader {
		return
	}
	o.wroteHeader = true
	sse := strings.HasPrefix(o.header.Get("Content-Type"), "text/event-stream")
	if !sse && code == http.StatusOK && o.isCancelled() {
		// A plain JSON answer would be the cancelled call's response:
		// accepted, with nothing to say.
		o.dropped = true
		o.w.WriteHeader(http.StatusAccepted)
		return
	}
	for k, v := range o.header {
		o.w.Header()[k] = v
	}
	o.sse = sse
	o.w.WriteHeader(code)
}

func (o *orderedResponse) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writeHeaderLocked(http.StatusOK)
	if o.dropped {
		return len(p), nil
	}
	if o.sse && o.isCancelled() {
		// The library writes each SSE event with one Write.
		data, ok := strings.CutPrefix(string(p), "event: message\ndata: ")
		if id, isResponse := responseID([]byte(strings.TrimSpace(data))); ok && isResponse && o.key[strings.IndexByte(o.key, ' ')+1:] == id {
			return len(p), nil
		}
	}
	return o.w.Write(p)
}

func (o *orderedResponse) Flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flusher.Flush()
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (o *orderedResponse) Unwrap() http.ResponseWriter { return o.w }

// sseUpgrader is the library's session, which answers on SSE once told.
type sseUpgrader interface{ UpgradeToSSEWhenReceiveNotification() }

var errNoStream = errors.New("the response is not a stream")

func (o *orderedResponse) notify(ctx context.Context, method string, params map[string]any) error {
	data, err := json.Marshal(notification(method, params))
	if err != nil {
		return fmt.Errorf("encode %s: %w", method, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.wroteHeader {
		session, ok := server.ClientSessionFromContext(ctx).(sseUpgrader)
		if !ok {
			return errNoStream
		}
		// From here the library writes this response (and the session's
		// later ones) as SSE events too, after this one.
		session.UpgradeToSSEWhenReceiveNotification()
		o.w.Header().Set("Content-Type", "text/event-stream")
		o.w.Header().Set("Cache-Control", "no-cache")
		o.wroteHeader, o.sse = true, true
		o.w.WriteHeader(http.StatusOK)
	}
	if !o.sse {
		return errNoStream
	}
	if _, err := fmt.Fprintf(o.w, "event: message\ndata: %s\n\n", data); err != nil {
		return fmt.Errorf("write %s: %w", method, err)
	}
	o.flusher.Flush()
	return nil
}
