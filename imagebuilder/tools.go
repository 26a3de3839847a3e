package imagebuilder

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Packages providing the tools run here, for error messages.
var toolPackage = map[string]string{
	"mkfs.ext4": "e2fsprogs", "debugfs": "e2fsprogs",
	"mkfs.vfat": "dosfstools", "mcopy": "mtools", "mmd": "mtools",
}

// runTool runs a file system tool with exactly the environment given (no
// inherited locale, time zone or tool configuration) and returns its
// standard error. A failure carries the tool's last lines of output.
func runTool(ctx context.Context, env []string, name string, args ...string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found (install the %s package): %w", name, toolPackage[name], err)
	}
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Env = append([]string{"LC_ALL=C", "TZ=UTC"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		out := strings.TrimSpace(stderr.String() + "\n" + stdout.String())
		if lines := strings.Split(out, "\n"); len(lines) > 8 {
			out = strings.Join(lines[len(lines)-8:], "\n")
		}
		return stderr.String(), fmt.Errorf("%s: %w: %s", name, err, out)
	}
	return stderr.String(), nil
}
