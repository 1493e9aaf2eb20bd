package mcp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/claude-parallel/claude-parallel/mcp/service"
	"github.com/claude-parallel/claude-parallel/models"
)

// Resource templates: a task's newest log and a diff's whole patch, for
// clients that read resources instead of calling tools.
const (
	taskLogsTemplate  = "claude-parallel://tasks/{taskId}/logs"
	diffPatchTemplate = "claude-parallel://diffs/{diffId}/patch"
)

// uriID returns the id in uri when uri is prefix + id + suffix and the id
// passes valid (models.IsTaskID or IsDiffID, the one rule of an id's shape).
func uriID(uri, prefix, suffix string, valid func(string) bool) (string, bool) {
	id, ok := strings.CutPrefix(uri, prefix)
	if !ok {
		return "", false
	}
	if id, ok = strings.CutSuffix(id, suffix); !ok || !valid(id) {
		return "", false
	}
	return id, true
}

func addResourceTemplates(s *server.MCPServer, fe *service.Frontend) {
	s.AddResourceTemplate(mcp.NewResourceTemplate(taskLogsTemplate, "Task output",
		mcp.WithTemplateDescription("Output of the newest run of a task, timestamps removed (the last 1 MiB)."),
		mcp.WithTemplateMIMEType("text/plain"),
	), readTaskLogsResource(fe))
	s.AddResourceTemplate(mcp.NewResourceTemplate(diffPatchTemplate, "Diff patch",
		mcp.WithTemplateDescription("The whole patch of a diff (git diff --binary), as captured."),
		mcp.WithTemplateMIMEType("text/x-diff"),
	), readDiffPatchResource(fe))
}

// errResourceNotFound is answered for a well-formed URI naming nothing.
var errResourceNotFound = errors.New("resource not found")

// readTaskLogsResource answers a task's log resource.
func readTaskLogsResource(fe *service.Frontend) server.ResourceTemplateHandlerFunc {
	return func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		id, ok := uriID(req.Params.URI, "claude-parallel://tasks/", "/logs", models.IsTaskID)
		if !ok {
			return nil, fmt.Errorf("%w: %s is not claude-parallel://tasks/<task id>/logs", errResourceNotFound, service.Quote(req.Params.URI))
		}
		lines, err := fe.TaskLogText(ctx, id)
		if errors.Is(err, service.ErrNotFound) {
			return nil, fmt.Errorf("%w: no task %s", errResourceNotFound, id)
		}
		if err != nil {
			return nil, err
		}
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "text/plain",
			Text: strings.Join(lines, "\n")}}, nil
	}
}

// readDiffPatchResource answers a diff's patch resource.
func readDiffPatchResource(fe *service.Frontend) server.ResourceTemplateHandlerFunc {
	return func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		id, ok := uriID(req.Params.URI, "claude-parallel://diffs/", "/patch", models.IsDiffID)
		if !ok {
			return nil, fmt.Errorf("%w: %s is not claude-parallel://diffs/<diff id>/patch", errResourceNotFound, service.Quote(req.Params.URI))
		}
		patch, err := fe.DiffPatch(ctx, id)
		if errors.Is(err, service.ErrNotFound) {
			return nil, fmt.Errorf("%w: no diff %s", errResourceNotFound, id)
		}
		if err != nil {
			return nil, err
		}
		if utf8.Valid(patch) {
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "text/x-diff", Text: string(patch)}}, nil
		}
		// A patch of files in another encoding is not UTF-8 text; send its bytes.
		return []mcp.ResourceContents{mcp.BlobResourceContents{URI: req.Params.URI, MIMEType: "text/x-diff",
			Blob: base64.StdEncoding.EncodeToString(patch)}}, nil
	}
}
