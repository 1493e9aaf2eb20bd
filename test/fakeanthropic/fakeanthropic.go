// Package fakeanthropic is a small stand-in for the Anthropic Messages API
// (POST /v1/messages, streamed as server-sent events the way Claude Code
// asks for them), for end-to-end tests that run the real Claude Code CLI
// without a model: a Go function plays the model, deciding each turn's
// reply (a tool call or a final text) from the conversation so far, and the
// server records every tool result exactly as the model received it.
package fakeanthropic

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// ToolResult is one tool_result block the client sent back to the model.
type ToolResult struct {
	ToolUseID string
	Name      string         // the tool's name, from the matching tool_use
	Input     map[string]any // the tool_use's input
	Text      string         // the result's text blocks, joined
	IsError   bool
}

// Conversation is what the model sees on one request.
type Conversation struct {
	Model   string
	Tools   []string     // tool names offered
	Results []ToolResult // every tool result so far, in order
	// LastUser is the text of the latest user message (the prompt, on the
	// first turn).
	LastUser string
	// Messages is the whole conversation, in order: what a resumed session
	// sent again of its earlier runs is here.
	Messages []Message
}

// Message is one message of the conversation as the model received it.
type Message struct {
	Role        string       `json:"role"`
	Texts       []string     `json:"texts,omitempty"`
	ToolUses    []ToolUse    `json:"toolUses,omitempty"`
	ToolResults []ToolResult `json:"toolResults,omitempty"`
}

// ToolUse is one tool_use block of an assistant message.
type ToolUse struct {
	ID    string         `json:"id"`
	Name  string         `json:"name"`
	Input map[string]any `json:"input,omitempty"`
}

// HasTool reports whether the request offered the named tool.
func (c Conversation) HasTool(name string) bool {
	for _, t := range c.Tools {
		if t == name {
			return true
		}
	}
	return false
}

// Reply is the model's turn: an API error when Status is set, a tool call
// when Tool is set, else Text.
type Reply struct {
	Text  string         `json:"text,omitempty"`
	Tool  string         `json:"tool,omitempty"`
	Input map[string]any `json:"input,omitempty"`
	// Status is an HTTP error status (401, 529, ...) answered instead of a
	// message, with an error body of ErrorType (default from the status).
	Status    int    `json:"status,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
}

// Model decides the next reply.
type Model func(Conversation) Reply

// Server is the fake API. Create it with New; serve it with net/http.
type Server struct {
	model Model
	next  atomic.Int64
	// idPrefix makes message and tool ids unique across servers: a resumed
	// Claude Code session holds the ids of its earlier runs, each served by
	// a server of its own, and takes a repeated tool_use id for a call that
	// was interrupted.
	idPrefix string

	mu       sync.Mutex
	results  []ToolResult
	seen     map[string]bool
	requests []string // method and path of every request
	errs     []string
}

// New returns a server whose replies come from model.
func New(model Model) *Server {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Server{model: model, seen: map[string]bool{}, idPrefix: hex.EncodeToString(b[:])}
}

// ToolResults returns every distinct tool result received so far, in order.
func (s *Server) ToolResults() []ToolResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ToolResult(nil), s.results...)
}

// Requests lists the method and path of every request received.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Errors lists requests the server could not make sense of.
func (s *Server) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}

type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     map[string]any  `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type request struct {
	Model    string    `json:"model"`
	Stream   bool      `json:"stream"`
	Messages []message `json:"messages"`
	Tools    []struct {
		Name string `json:"name"`
	} `json:"tools"`
}

// blocks decodes message content: a string or a list of blocks.
func blocks(raw json.RawMessage) []block {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []block{{Type: "text", Text: s}}
	}
	var bs []block
	_ = json.Unmarshal(raw, &bs)
	return bs
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages/count_tokens":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"input_tokens":100}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/messages":
		s.messages(w, r)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"type":"error","error":{"type":"not_found_error","message":"not here"}}`)
	}
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		s.fail(w, fmt.Sprintf("decode request: %v", err))
		return
	}
	conv := Conversation{Model: req.Model}
	for _, t := range req.Tools {
		conv.Tools = append(conv.Tools, t.Name)
	}
	uses := map[string]block{}
	for _, m := range req.Messages {
		msg := Message{Role: m.Role}
		for _, b := range blocks(m.Content) {
			switch b.Type {
			case "tool_use":
				uses[b.ID] = b
				msg.ToolUses = append(msg.ToolUses, ToolUse{ID: b.ID, Name: b.Name, Input: b.Input})
			case "tool_result":
				res := ToolResult{ToolUseID: b.ToolUseID, Name: uses[b.ToolUseID].Name, Input: uses[b.ToolUseID].Input,
					Text: resultText(b.Content), IsError: b.IsError}
				conv.Results = append(conv.Results, res)
				msg.ToolResults = append(msg.ToolResults, res)
			case "text":
				if m.Role == "user" {
					conv.LastUser = b.Text
				}
				msg.Texts = append(msg.Texts, b.Text)
			}
		}
		conv.Messages = append(conv.Messages, msg)
	}
	s.mu.Lock()
	for _, res := range conv.Results {
		if !s.seen[res.ToolUseID] {
			s.seen[res.ToolUseID] = true
			s.results = append(s.results, res)
		}
	}
	s.mu.Unlock()

	reply := s.model(conv)
	if reply.Status != 0 {
		apiError(w, reply.Status, reply.ErrorType)
		return
	}
	n := s.next.Add(1)
	msgID := fmt.Sprintf("msg_fake%s%04d", s.idPrefix, n)
	var content []map[string]any
	stop := "end_turn"
	if reply.Tool != "" {
		stop = "tool_use"
		input := reply.Input
		if input == nil {
			input = map[string]any{}
		}
		content = append(content, map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_fake%s%04d", s.idPrefix, n), "name": reply.Tool, "input": input})
	} else {
		content = append(content, map[string]any{"type": "text", "text": reply.Text})
	}
	usage := map[string]any{"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": msgID, "type": "message", "role": "assistant", "model": req.Model,
			"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": usage})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	event := func(name string, data map[string]any) {
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": msgID, "type": "message", "role": "assistant", "model": req.Model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 100, "output_tokens": 1}}})
	for i, c := range content {
		if c["type"] == "tool_use" {
			event("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{
				"type": "tool_use", "id": c["id"], "name": c["name"], "input": map[string]any{}}})
			in, _ := json.Marshal(c["input"])
			event("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": string(in)}})
		} else {
			event("content_block_start", map[string]any{"type": "content_block_start", "index": i,
				"content_block": map[string]any{"type": "text", "text": ""}})
			event("content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "text_delta", "text": c["text"]}})
		}
		event("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
	}
	event("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": 20}})
	event("message_stop", map[string]any{"type": "message_stop"})
}

func (s *Server) fail(w http.ResponseWriter, problem string) {
	s.mu.Lock()
	s.errs = append(s.errs, problem)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": "invalid_request_error", "message": problem}})
	_, _ = w.Write(b)
}

// apiError answers with an Anthropic API error of the given status.
func apiError(w http.ResponseWriter, status int, typ string) {
	if typ == "" {
		switch status {
		case http.StatusUnauthorized:
			typ = "authentication_error"
		case http.StatusTooManyRequests:
			typ = "rate_limit_error"
		case 529:
			typ = "overloaded_error"
		case http.StatusBadRequest:
			typ = "invalid_request_error"
		default:
			typ = "api_error"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", "req_fake_error")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": typ,
		"message": fmt.Sprintf("fake API: %d %s", status, typ)}})
	_, _ = w.Write(b)
}

// resultText joins the text of a tool_result's content (a string or blocks).
func resultText(raw json.RawMessage) string {
	var parts []string
	for _, b := range blocks(raw) {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}
