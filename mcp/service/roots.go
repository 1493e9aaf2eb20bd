package service

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// openBelow opens the file p, which must lie below dir, through a handle on
// dir, so that no symlink planted on the way (a log file replaced by a link
// to /etc/shadow, a task directory replaced by a link elsewhere) can take a
// read outside dir. The final component is never followed.
func openBelow(dir, p string) (*os.File, error) {
	rel, err := filepath.Rel(dir, p)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%s is not below %s", p, dir)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
}
