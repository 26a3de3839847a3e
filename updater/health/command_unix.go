//go:build unix

package health

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup starts the command as the leader of a new process group and makes
// a context timeout kill that whole group, not only the leader.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// killProcessGroup kills what is left of the command's process group. The leader
// has been waited for; the group id stays reserved while any member lives, so this
// cannot hit an unrelated process.
func killProcessGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
