package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// waitDelay is how long a command's output pipes may stay open after it exited or
// was killed, by children it left behind, before they are closed.
const waitDelay = time.Second

// commandEnv is the environment of command checks: the updater's own, without the
// variables that address systemd to the updater, plus OTA_ROOT.
func commandEnv(root string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "OTA_ROOT", name == "NOTIFY_SOCKET",
			strings.HasPrefix(name, "WATCHDOG_"), strings.HasPrefix(name, "LISTEN_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "OTA_ROOT="+root)
}

func (r *runner) commandProbe(ctx context.Context, argv []string, timeout time.Duration) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = r.env
	cmd.Dir = "/"
	var out cappedBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = waitDelay
	ownProcessGroup(cmd)
	err := cmd.Run()
	if cmd.Process != nil {
		// Nothing a check started outlives its attempt.
		killProcessGroup(cmd)
	}
	if err == nil || (errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success()) {
		return nil
	}
	if ctx.Err() != nil && cmd.ProcessState != nil && !cmd.ProcessState.Success() {
		err = fmt.Errorf("killed after %v", timeout)
	}
	if o := out.String(); o != "" {
		return fmt.Errorf("%w: %s", err, o)
	}
	return err
}

// cappedBuffer keeps the first maxOutput bytes written to it and discards the rest,
// so a chatty command neither blocks nor grows memory.
type cappedBuffer struct {
	mu   sync.Mutex
	b    []byte
	lost bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := maxOutput - len(c.b)
	if len(p) > room {
		c.b = append(c.b, p[:max(room, 0)]...)
		c.lost = true
	} else {
		c.b = append(c.b, p...)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSpace(strings.ToValidUTF8(string(c.b), "?"))
	if c.lost {
		s += " [output truncated]"
	}
	return s
}
