// Package xz starts xz(1) for the build side (imagebuilder and its delta
// encoder) with a pinned environment.
package xz

import (
	"context"
	"os/exec"
)

// Command returns the xz command with args and exactly the environment the
// file system tools get (imagebuilder's runTool): no XZ_DEFAULTS or XZ_OPT
// of the host, which would change the output, and no inherited locale.
func Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "xz", args...)
	cmd.Env = []string{"LC_ALL=C", "TZ=UTC"}
	return cmd
}
