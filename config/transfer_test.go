package config

import (
	"strings"
	"testing"
)

// TestTransferMode checks the default workspace transfer follows the engine's
// address and that an explicit setting wins.
func TestTransferMode(t *testing.T) {
	cases := []struct {
		host, setting, want string
	}{
		{"", "", TransferBind},
		{"unix:///var/run/docker.sock", "", TransferBind},
		{"unix:///run/cp-docker2.sock", "", TransferBind},
		{"tcp://build-host:2376", "", TransferCopy},
		{"ssh://agent@build-host", "", TransferCopy},
		{"unix:///run/cp-docker2.sock", TransferCopy, TransferCopy},
		{"tcp://127.0.0.1:2375", TransferBind, TransferBind},
	}
	for _, c := range cases {
		cfg := Default()
		cfg.DockerHost, cfg.WorkspaceTransfer = c.host, c.setting
		if got := cfg.TransferMode(); got != c.want {
			t.Errorf("docker_host %q, workspace_transfer %q: %q, want %q", c.host, c.setting, got, c.want)
		}
	}
}

// TestValidate_WorkspaceTransfer refuses a transfer mode that does not exist.
func TestValidate_WorkspaceTransfer(t *testing.T) {
	cfg := Default()
	cfg.WorkspaceTransfer = "rsync"
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "workspace_transfer") {
		t.Fatalf("Validate: %v, want workspace_transfer refused", err)
	}
	cfg.WorkspaceTransfer = TransferCopy
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "workspace_transfer") {
		t.Fatalf("Validate refused copy: %v", err)
	}
}
