package updater

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/healthguard/gateway-ota/updater/systemd"
)

// Run is the daemon: it checks every PollInterval (with jitter, so a fleet
// that powered up together does not call the server at once), installs a
// newer release when one appears, and backs off, doubling up to MaxBackoff,
// after failures (threat R4). It tells systemd when it is ready and feeds
// its watchdog. It returns when ctx ends or after an update rebooted.
func (u *Updater) Run(ctx context.Context) error {
	go systemd.KeepAlive(ctx)
	if err := systemd.Ready(); err != nil {
		u.cfg.Logf("sd_notify: %v", err)
	}
	failures := 0
	for {
		wait := u.cycle(ctx, &failures)
		if wait < 0 {
			return nil
		}
		systemd.Status("next check in " + wait.Round(time.Second).String())
		select {
		case <-ctx.Done():
			systemd.Stopping()
			return nil
		case <-time.After(wait):
		}
	}
}

// cycle runs one check (and update). It returns how long to wait, or a
// negative duration when the device is rebooting.
func (u *Updater) cycle(ctx context.Context, failures *int) time.Duration {
	res, err := u.Check(ctx)
	switch {
	case errors.Is(err, ErrNoUpdate):
		*failures = 0
		u.cfg.Logf("up to date (%s)", res.Current)
		return jitter(u.cfg.PollInterval)
	case err != nil:
		*failures++
		u.cfg.Logf("check: %v", err)
		return backoff(u.cfg.PollInterval, u.cfg.MaxBackoff, *failures)
	case res.PreviouslyFailed != "":
		u.cfg.Logf("release %s is available but failed here before (%s); not retrying it", res.Version, res.PreviouslyFailed)
		return jitter(u.cfg.PollInterval)
	}
	u.cfg.Logf("installing %s (counter %d)", res.Version, res.Counter)
	systemd.Status("installing " + res.Version)
	ur, err := u.Update(ctx, UpdateOptions{Version: res.Version})
	if err != nil {
		*failures++
		u.cfg.Logf("update: %v", err)
		return backoff(u.cfg.PollInterval, u.cfg.MaxBackoff, *failures)
	}
	*failures = 0
	u.cfg.Logf("%s", ur.Reboot)
	if !ur.Armed { // containers hook: a container-only release needs no reboot
		return jitter(u.cfg.PollInterval)
	}
	return -1
}

// jitter spreads d by +-10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// backoff is base/8 doubled per failure, capped at max, with jitter.
func backoff(base, max time.Duration, failures int) time.Duration {
	d := base / 8
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return jitter(min(d, max))
}
