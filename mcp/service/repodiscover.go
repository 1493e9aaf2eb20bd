package service

import "github.com/claude-parallel/claude-parallel/models/gitdiscover"

// fastRepoDirs finds the repository containing dir (a resolved, absolute
// folder) by looking at the file system only (gitdiscover.PlainRepo), so
// task_worker and apply_changes run no git process for it. It returns the
// work tree's top and the git directory twice (git dir and common
// directory); ok false leaves the answer to git. The controllers check the
// work tree again, by identity, when they snapshot or apply to it.
func fastRepoDirs(dir string) (top string, dirs []string, ok bool) {
	top, gd, ok := gitdiscover.PlainRepo(dir)
	if !ok {
		return "", nil, false
	}
	return top, []string{gd, gd}, true
}
