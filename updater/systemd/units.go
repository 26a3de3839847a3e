package systemd

import (
	"context"
	"errors"
	"fmt"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// errNoSuchUnit is the D-Bus error systemd answers for a unit it cannot load.
const errNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"

// UnitActive reports whether unit's ActiveState is "active", together with the
// state itself ("activating", "failed", ...) for reports. A unit systemd does not
// know is "inactive", not an error.
func UnitActive(ctx context.Context, unit string) (bool, string, error) {
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return false, "", fmt.Errorf("unit %s: connect to systemd: %w", unit, err)
	}
	defer conn.Close()
	p, err := conn.GetUnitPropertyContext(ctx, unit, "ActiveState")
	if err != nil {
		return false, "", fmt.Errorf("unit %s: active state: %w", unit, err)
	}
	state, ok := p.Value.Value().(string)
	if !ok {
		return false, "", fmt.Errorf("unit %s: active state is %s, not a string", unit, p.Value.Signature())
	}
	return state == "active", state, nil
}

// StopUnits stops the units gracefully before a reboot: each gets a stop job in
// "replace" mode, so systemd runs its ExecStop and honours its TimeoutStopSec and
// ordering, and StopUnits waits for every job's result. The whole call is bounded by
// timeout (none if timeout <= 0) and by ctx. A unit systemd does not know counts as
// stopped. The error joins one error per unit that did not stop, each naming it.
func StopUnits(ctx context.Context, units []string, timeout time.Duration) error {
	if len(units) == 0 {
		return nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("stop units: connect to systemd: %w", err)
	}
	defer conn.Close()

	type job struct {
		unit   string
		result chan string
	}
	var jobs []job
	var errs []error
	for _, u := range units {
		// Buffered: go-systemd's dispatcher must never block on a result we
		// stopped waiting for.
		ch := make(chan string, 1)
		if _, err := conn.StopUnitContext(ctx, u, "replace", ch); err != nil {
			if isDBusError(err, errNoSuchUnit) {
				continue
			}
			errs = append(errs, fmt.Errorf("stop %s: %w", u, err))
			continue
		}
		jobs = append(jobs, job{u, ch})
	}
	for _, j := range jobs {
		var r string
		select {
		case r = <-j.result:
		case <-ctx.Done():
			// A result that arrived while we waited for an earlier unit
			// still counts.
			select {
			case r = <-j.result:
			default:
				errs = append(errs, fmt.Errorf("stop %s: %w", j.unit, context.Cause(ctx)))
				continue
			}
		}
		if r != "done" {
			errs = append(errs, fmt.Errorf("stop %s: job %s", j.unit, r))
		}
	}
	return errors.Join(errs...)
}

func isDBusError(err error, name string) bool {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name == name
	}
	var pe *dbus.Error
	return errors.As(err, &pe) && pe.Name == name
}
