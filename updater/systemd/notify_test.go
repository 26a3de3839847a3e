package systemd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// notifySocket creates the unixgram socket systemd would listen on and points
// NOTIFY_SOCKET at it, the way systemd's own tests exercise sd_notify.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

// datagrams reads datagrams until none arrives within wait.
func datagrams(t *testing.T, c *net.UnixConn, wait time.Duration) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got
			}
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	sent, err := Notify("READY=1")
	if sent || err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
	if err := Ready(); err != nil {
		t.Errorf("Ready without NOTIFY_SOCKET: %v", err)
	}
}

func TestNotifyStates(t *testing.T) {
	c := notifySocket(t)
	sent, err := Notify("RELOADING=1")
	if !sent || err != nil {
		t.Fatalf("Notify = %v, %v; want true, nil", sent, err)
	}
	for _, f := range []func() error{
		Ready,
		Stopping,
		func() error { return Status("writing slot B\n42%") },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	got := datagrams(t, c, 200*time.Millisecond)
	want := []string{"RELOADING=1", "READY=1", "STOPPING=1", "STATUS=writing slot B 42%"}
	if len(got) != len(want) {
		t.Fatalf("got datagrams %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("datagram %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func TestNotifyBrokenSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	sent, err := Notify("READY=1")
	if sent || err == nil {
		t.Errorf("Notify to a missing socket = %v, %v; want false and an error", sent, err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name     string
		usec     string
		pid      string
		want     time.Duration
		wantOK   bool
		unsetPID bool
	}{
		{name: "enabled", usec: "60000000", pid: pid, want: time.Minute, wantOK: true},
		{name: "enabled without pid", usec: "15000000", unsetPID: true, want: 15 * time.Second, wantOK: true},
		{name: "another process", usec: "60000000", pid: "1"},
		{name: "disabled", usec: "", pid: pid},
		{name: "garbage", usec: "sixty", pid: pid},
		{name: "zero", usec: "0", pid: pid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			if tt.unsetPID {
				os.Unsetenv("WATCHDOG_PID")
			}
			got, ok := WatchdogInterval()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	c := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms: a ping every 100 ms
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	ctx, cancel := context.WithTimeout(context.Background(), 450*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() { KeepAlive(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("KeepAlive did not return after its context ended")
	}
	got := datagrams(t, c, 100*time.Millisecond)
	// One at once, then one per 100 ms: 5 in 450 ms, fewer on a loaded machine.
	if len(got) < 3 || len(got) > 6 {
		t.Errorf("got %d pings in 450 ms at a 200 ms watchdog, want 3..6: %q", len(got), got)
	}
	for _, s := range got {
		if s != "WATCHDOG=1" {
			t.Errorf("got datagram %q, want WATCHDOG=1", s)
		}
	}
}

func TestKeepAliveDisabled(t *testing.T) {
	c := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	KeepAlive(ctx)
	if ctx.Err() == nil {
		t.Error("KeepAlive returned before its context ended")
	}
	if got := datagrams(t, c, 50*time.Millisecond); len(got) != 0 {
		t.Errorf("got %q without a watchdog, want nothing", got)
	}
}
