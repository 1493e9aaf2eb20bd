package workspace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mountOverlay mounts an overlay of upper over lower at target.
func mountOverlay(lower, upper, work, target string) error {
	for _, p := range []string{lower, upper, work} {
		// The option string separates with ',' and ':' (and escapes with '\').
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("mount overlay: path %q cannot be passed to the kernel", p)
		}
	}
	// redirect_dir: an agent may rename a folder of the base (without it the
	// kernel answers EXDEV, which many tools do not expect).
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",redirect_dir=on"
	if err := syscall.Mount("overlay", target, "overlay", syscall.MS_NODEV|syscall.MS_NOSUID, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}

// unmount detaches the mount at target; a busy one lazily (nothing may use
// a workspace being removed, and its container has stopped).
func unmount(target string) error {
	err := syscall.Unmount(target, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(target, syscall.MNT_DETACH)
	}
	return err
}

// lockFile takes an exclusive lock on the file p (made if missing), waiting
// until ctx ends; it checks that the file locked is still the one named p,
// since the holder of the lock may remove it.
func lockFile(ctx context.Context, p string) (func(), error) {
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, err
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				break
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil, context.Cause(ctx)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		var held, named syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(p, &named) == nil &&
			held.Ino == named.Ino && held.Dev == named.Dev {
			return func() { f.Close() }, nil
		}
		f.Close() // removed by its holder meanwhile: lock the new one
	}
}

var cowProbes sync.Map // root -> *cowProbe

type cowProbe struct {
	once sync.Once
	ok   bool
	why  string
}

// CopyOnWriteAvailable reports whether workspaces under root can be overlay
// mounts (see cow.go), and why not: it mounts one in a scratch folder under
// root, once per root and process. CP_WORKSPACE_COPY=1 turns it off.
func CopyOnWriteAvailable(root string) (bool, string) {
	if os.Getenv("CP_WORKSPACE_COPY") == "1" {
		return false, "turned off by CP_WORKSPACE_COPY=1"
	}
	v, _ := cowProbes.LoadOrStore(root, &cowProbe{})
	p := v.(*cowProbe)
	p.once.Do(func() {
		if err := probeOverlay(root); err != nil {
			p.why = err.Error()
			return
		}
		p.ok, p.why = true, "overlay mounts on "+root
	})
	return p.ok, p.why
}

func probeOverlay(root string) error {
	bases := basesDir(root)
	if err := os.MkdirAll(bases, 0o700); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(bases, ".probe-")
	if err != nil {
		return err
	}
	defer removeTree(dir)
	d := func(n string) string { return filepath.Join(dir, n) }
	for _, n := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(d(n), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(d("l"), "f"), []byte("lower\n"), 0o644); err != nil {
		return err
	}
	if err := mountOverlay(d("l"), d("u"), d("w"), d("m")); err != nil {
		return err
	}
	defer unmount(d("m"))
	if err := os.WriteFile(filepath.Join(d("m"), "f"), []byte("upper\n"), 0o644); err != nil {
		return fmt.Errorf("write through overlay: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(d("u"), "f")); err != nil || string(b) != "upper\n" {
		return fmt.Errorf("overlay wrote no upper layer: %v", err)
	}
	return nil
}
