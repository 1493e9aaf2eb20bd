package models

import "testing"

func TestParseContainerName_ReadsBackContainerName(t *testing.T) {
	id := NewTaskID()
	for _, name := range []string{ContainerName(id, 3), "/" + ContainerName(id, 3)} {
		got, run, ok := ParseContainerName(name)
		if !ok || got != id || run != 3 {
			t.Errorf("ParseContainerName(%q) = %q, %d, %v; want %q, 3, true", name, got, run, ok, id)
		}
	}
	for _, bad := range []string{"", "claude-parallel-", "claude-parallel-task-0123456789ab", "claude-parallel-task-0123456789ab-r",
		"claude-parallel-task-0123456789ab-r1234567", "claude-parallel-task-0123456789AB-r1", "other-task-0123456789ab-r1",
		"claude-parallel-task-0123456789ab-r1x", "claude-parallel-task-0123456789ab-r-1", "//claude-parallel-task-0123456789ab-r1"} {
		if _, _, ok := ParseContainerName(bad); ok {
			t.Errorf("ParseContainerName(%q) accepted it", bad)
		}
	}
}
