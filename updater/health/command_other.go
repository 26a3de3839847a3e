//go:build !unix

package health

import "os/exec"

// ownProcessGroup is a no-op where there are no process groups: a timeout kills
// only the command itself.
func ownProcessGroup(cmd *exec.Cmd) {}

func killProcessGroup(cmd *exec.Cmd) {}
