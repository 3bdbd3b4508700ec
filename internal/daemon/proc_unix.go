//go:build unix

package daemon

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the hook in its own process group and makes the
// timeout kill the whole group, so `sh -c 'sleep 100 &'` cannot outlive it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

func killProcessGroup(cmd *exec.Cmd) { killGroup(cmd) }

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
