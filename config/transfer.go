package config

import "strings"

// Workspace transfer modes (workspace_transfer).
const (
	// TransferBind bind-mounts the task's host workspace into its container:
	// the engine must run on this machine.
	TransferBind = "bind"
	// TransferCopy copies the workspace into the container through the
	// Docker API before it starts and the work tree back out after it exits,
	// so the engine may run anywhere the API reaches.
	TransferCopy = "copy"
)

// TransferMode is the workspace transfer in effect: workspace_transfer when
// set, else bind for an engine on a local unix socket (or the Docker
// client's default, which is one) and copy for every other address (tcp://
// with or without TLS, ssh://), whose engine cannot see this machine's
// files.
func (c *Config) TransferMode() string {
	if c.WorkspaceTransfer != "" {
		return c.WorkspaceTransfer
	}
	if c.DockerHost == "" || strings.HasPrefix(c.DockerHost, "unix://") || strings.HasPrefix(c.DockerHost, "npipe://") {
		return TransferBind
	}
	return TransferCopy
}
