//go:build !linux

package workspace

import (
	"context"
	"errors"
)

var errNoOverlay = errors.New("overlay mounts need Linux")

func mountOverlay(lower, upper, work, target string) error { return errNoOverlay }

func unmount(target string) error { return errNoOverlay }

func lockFile(ctx context.Context, p string) (func(), error) { return nil, errNoOverlay }

// CopyOnWriteAvailable reports whether workspaces can be overlay mounts: only on Linux.
func CopyOnWriteAvailable(root string) (bool, string) { return false, errNoOverlay.Error() }
