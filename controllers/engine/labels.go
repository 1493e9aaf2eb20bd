package engine

import (
	"strconv"

	"github.com/claude-parallel/claude-parallel/models"
)

// Labels and names shared by every claude-parallel container (DESIGN.md §3). They are
// how a restarted server finds, adopts and garbage-collects its containers, so they
// must never change between releases.
const (
	// LabelManaged marks every container claude-parallel created ("true").
	LabelManaged = "claude-parallel"
	// LabelStore is the installation id of the store that owns the container; a
	// server never touches containers of another store.
	LabelStore = "claude-parallel.store"
	// LabelTaskID is the task id ("task-" + 12 hex).
	LabelTaskID = "claude-parallel.task-id"
	// LabelRun is the run number of the task (1, 2, ... one per revision).
	LabelRun = "claude-parallel.run"

	namePrefix = models.ContainerNamePrefix
)

// ContainerName is the deterministic name of a task run's container; the
// rule lives in models, which the front end shares.
func ContainerName(taskID string, run int) string { return models.ContainerName(taskID, run) }

// Labels are the ownership labels of a task run's container.
func Labels(storeID, taskID string, run int) map[string]string {
	return map[string]string{
		LabelManaged: "true",
		LabelStore:   storeID,
		LabelTaskID:  taskID,
		LabelRun:     strconv.Itoa(run),
	}
}

// StoreLabels selects every container of one store, for List, Events and Watch.
func StoreLabels(storeID string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelStore: storeID}
}

// Owner reads the ownership labels back (from ContainerInfo.Labels or
// Event.Attributes). ok is false unless the container is managed and all three labels
// are present and well-formed, so a caller never adopts a container it cannot
// attribute to a task run.
func Owner(labels map[string]string) (storeID, taskID string, run int, ok bool) {
	if labels[LabelManaged] != "true" {
		return "", "", 0, false
	}
	storeID, taskID = labels[LabelStore], labels[LabelTaskID]
	run, err := strconv.Atoi(labels[LabelRun])
	if storeID == "" || taskID == "" || err != nil || run < 0 {
		return "", "", 0, false
	}
	return storeID, taskID, run, true
}
