package engine

import "testing"

// The Docker operation label keeps method and path pattern, never an id
// or an image name, and leaves streams out.
func TestDockerOperationLabel(t *testing.T) {
	for span, want := range map[string]string{
		"GET /v1.41/containers/3f2a9c/json":                   "GET /containers/{id}/json",
		"POST /v1.41/containers/claude-parallel-abc-r1/start": "POST /containers/{id}/start",
		"POST /v1.41/containers/create":                       "POST /containers/create",
		"GET /v1.41/containers/json":                          "GET /containers/json",
		"DELETE /v1.41/containers/3f2a9c":                     "DELETE /containers/{id}",
		"GET /v1.41/images/claude-parallel/shell:latest/json": "GET /images/{name}/json",
		"HEAD /_ping":                                              "HEAD /_ping",
		"GET /v1.41/events":                                        "",
		"GET /v1.41/containers/3f2a9c/logs":                        "",
		"POST /v1.41/containers/3f2a9c/wait":                       "",
		"POST /v1.41/exec/77aa/start":                              "POST /exec/{id}/start",
		"GET /v1.41/version":                                       "GET /version",
		"not a span name":                                          "",
		"PUT /v1.41/containers/3f2a9c/archive":                     "PUT /containers/{id}/archive",
		"GET /v1.41/containers/0123456789abcdef0123456789/top":     "GET /containers/{id}/top",
		"GET /v1.41/networks/bridge":                               "GET /networks/{id}",
		"POST /v1.41/networks/create":                              "POST /networks/create",
		"GET /v1.41/volumes/json-not-a-verb-but-an-id-of-a-volume": "GET /volumes/{id}",
	} {
		got, ok := APIOperation(span)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("%q → %q, want %q", span, got, want)
		}
	}
}
