package models

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
)

// Id prefixes. An id is the prefix followed by 12 lowercase hex digits.
const (
	TaskIDPrefix = "task-"
	DiffIDPrefix = "diff-"
)

// The shapes of ids, as anchored regular expressions; tool schemas publish
// them as JSON-schema patterns. Every check of an id's shape uses these (or
// IsTaskID and IsDiffID), nothing keeps a copy.
const (
	TaskIDPattern = `^task-[0-9a-f]{12}$`
	DiffIDPattern = `^diff-[0-9a-f]{12}$`
)

var (
	taskIDPattern = regexp.MustCompile(TaskIDPattern)
	diffIDPattern = regexp.MustCompile(DiffIDPattern)
)

// NewTaskID returns a fresh random task id ("task-" + 12 lowercase hex).
func NewTaskID() string { return TaskIDPrefix + randomHex(6) }

// NewDiffID returns a fresh random diff id ("diff-" + 12 lowercase hex).
func NewDiffID() string { return DiffIDPrefix + randomHex(6) }

// IsTaskID reports whether s has the shape of a task id. Front ends check ids
// with it before they reach a query or a container name.
func IsTaskID(s string) bool { return taskIDPattern.MatchString(s) }

// IsDiffID reports whether s has the shape of a diff id.
func IsDiffID(s string) bool { return diffIDPattern.MatchString(s) }

func randomHex(n int) string {
	b := make([]byte, n)
	// crypto/rand.Read never returns an error (Go 1.24+); it aborts the program instead.
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ContainerNamePrefix starts the name of every task container.
const ContainerNamePrefix = "claude-parallel-"

// ContainerName is the deterministic name of a task run's container,
// "claude-parallel-<task id>-r<run>". Docker refuses a second container with
// the same name, which is what makes creation idempotent across crashes; the
// front end names it in views without knowing anything of Docker.
func ContainerName(taskID string, run int) string {
	return ContainerNamePrefix + taskID + "-r" + strconv.Itoa(run)
}

// ParseContainerName reads a task container's name back ("/" prefix as
// Docker lists names allowed): its task id and run. ok is false for any
// other name.
func ParseContainerName(name string) (taskID string, run int, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimPrefix(name, "/"), ContainerNamePrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndex(rest, "-r")
	if i < 0 || !IsTaskID(rest[:i]) {
		return "", 0, false
	}
	digits := rest[i+2:]
	if len(digits) == 0 || len(digits) > 6 || strings.Trim(digits, "0123456789") != "" {
		return "", 0, false
	}
	run, err := strconv.Atoi(digits)
	return rest[:i], run, err == nil
}
