//go:build !linux

package models

import (
	"context"
	"errors"
)

// CommitHints is only built on Linux (inotify); elsewhere callers poll.
func (s *Store) CommitHints(ctx context.Context) (<-chan struct{}, error) {
	if s.pg != nil {
		return s.notifiedHints(ctx), nil
	}
	return nil, errors.New("watch for commits: not supported on this system")
}
