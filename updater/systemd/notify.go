// Package systemd is the updater's glue to the init system of the gateway: readiness
// and watchdog notifications (sd_notify), unit state and graceful stops over D-Bus,
// and the orderly reboot that can carry the Raspberry Pi's one-shot tryboot flag.
//
// The model: systemd supervises ota-updater.service (Type=notify, WatchdogSec=) and
// runs ota-confirm.service once per boot (see scripts/systemd and docs/systemd.md).
// The daemon says READY=1 once it is configured, then WATCHDOG=1 every half watchdog
// period (KeepAlive); if the pings stop, systemd kills and restarts it. Independently
// of this service watchdog, PID 1 feeds the bcm2835 hardware watchdog
// (RuntimeWatchdogSec), so a hung kernel or init ends in a reset, and a reset never
// keeps the tryboot flag: the firmware then boots the committed slot.
//
// A trial boot is requested by Reboot(ctx, true): it writes "0 tryboot" to
// /run/systemd/reboot-param, which systemd-shutdown hands to the kernel's reboot call
// at the very end of an orderly shutdown; the Raspberry Pi kernel sets the firmware's
// tryboot flag when the argument contains " tryboot". Reboot(ctx, false) removes a
// stale parameter first, so a plain reboot (the rollback) never becomes a trial.
//
// Notifications are no-ops outside systemd (no NOTIFY_SOCKET); the D-Bus functions
// need the system bus and fail with an error naming the unit or the call otherwise.
package systemd

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notify sends one sd_notify state string such as "READY=1" or "STATUS=writing slot
// B" to the service manager. sent is false, with a nil error, when the process does
// not run under systemd with a notify socket.
func Notify(state string) (sent bool, err error) {
	sent, err = daemon.SdNotify(false, state)
	if err != nil {
		return sent, fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return sent, nil
}

// Ready tells systemd that the service finished starting (READY=1); a
// Type=notify unit stays "activating" until then.
func Ready() error {
	_, err := Notify(daemon.SdNotifyReady)
	return err
}

// Stopping tells systemd that the service is shutting down (STOPPING=1).
func Stopping() error {
	_, err := Notify(daemon.SdNotifyStopping)
	return err
}

// Status sets the one-line status `systemctl status` shows (STATUS=msg). Newlines
// would end the state string, so they are replaced by spaces.
func Status(msg string) error {
	b := []byte(msg)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	_, err := Notify("STATUS=" + string(b))
	return err
}

// WatchdogInterval returns the service watchdog period systemd expects pings within
// (WATCHDOG_USEC, for this process only per WATCHDOG_PID) and whether the watchdog
// is enabled at all.
func WatchdogInterval() (time.Duration, bool) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// KeepAlive blocks until ctx ends. If the service watchdog is enabled it sends
// WATCHDOG=1 at once and then every half interval; otherwise it only waits. Run it
// in its own goroutine. It proves that the process is scheduled and not deadlocked
// in the runtime; a caller that wants the watchdog to catch a stuck update loop
// should ping from that loop with Notify("WATCHDOG=1") instead.
func KeepAlive(ctx context.Context) {
	interval, ok := WatchdogInterval()
	if !ok {
		<-ctx.Done()
		return
	}
	keepAlive(ctx, interval/2)
}

func keepAlive(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		// A failed ping is not fatal: the next one may succeed, and if none
		// does, systemd restarts the service, which is the point.
		_, _ = Notify(daemon.SdNotifyWatchdog)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
