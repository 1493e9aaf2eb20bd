package engine

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// APIObserver receives every Docker Engine API call: its operation (method
// and path pattern, e.g. "POST /containers/{id}/start"), how long it took
// and whether it failed (no answer, or an error status).
type APIObserver func(operation string, d time.Duration, failed bool)

// NewObserved is New with every API call reported to observe. The Docker
// client already traces each request with OpenTelemetry; a tracer provider
// whose only span processor calls observe turns those spans into
// measurements without wrapping the client's transport (which the client
// configures itself for unix sockets and TLS). Streams — events, followed
// logs, attach, wait — are left out: their duration is the stream's life,
// not a latency.
func NewObserved(host string, observe APIObserver) (*Engine, error) {
	if observe == nil {
		return New(host)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(spanObserver{observe: observe}),
	)
	return newEngine(host, client.WithTraceProvider(tp))
}

// spanObserver is an OpenTelemetry span processor that only measures.
type spanObserver struct{ observe APIObserver }

func (spanObserver) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (spanObserver) Shutdown(context.Context) error                  { return nil }
func (spanObserver) ForceFlush(context.Context) error                { return nil }

func (p spanObserver) OnEnd(s sdktrace.ReadOnlySpan) {
	op, ok := APIOperation(s.Name())
	if !ok {
		return
	}
	p.observe(op, s.EndTime().Sub(s.StartTime()), s.Status().Code == codes.Error)
}

// apiVersionPrefix is the "/v1.41" the client puts before every path once
// the version is negotiated.
var apiVersionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+`)

// streamSuffixes end the paths of calls that stream for as long as the
// thing they follow lives.
var streamSuffixes = []string{"/logs", "/attach", "/wait", "/stats"}

// APIOperation turns a traced request name ("GET /v1.41/containers/abc/json")
// into a bounded operation label ("GET /containers/{id}/json"), and reports
// false for streams. Ids and names never reach a label: a label per
// container would grow without end.
func APIOperation(spanName string) (string, bool) {
	method, path, ok := strings.Cut(spanName, " ")
	if !ok || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " ") {
		return "", false
	}
	path = apiVersionPrefix.ReplaceAllString(path, "")
	if path == "/events" {
		return "", false
	}
	for _, s := range streamSuffixes {
		if strings.HasSuffix(path, s) {
			return "", false
		}
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "images":
		// Image names hold slashes: keep the collection and the action.
		last := parts[len(parts)-1]
		switch {
		case len(parts) == 2:
			path = "/images/" + last // /images/json, /images/create, /images/{name} (DELETE)
			if method == "DELETE" {
				path = "/images/{name}"
			}
		default:
			path = "/images/{name}/" + last
		}
	case len(parts) >= 2 && oneOf(parts[0], "containers", "exec", "networks", "volumes", "plugins", "services", "tasks", "secrets", "configs", "nodes"):
		if !oneOf(parts[1], "json", "create", "prune") {
			parts[1] = "{id}"
		}
		path = "/" + strings.Join(parts, "/")
	}
	return method + " " + path, true
}

func oneOf(s string, set ...string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}
