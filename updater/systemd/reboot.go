package systemd

import (
	"context"
	"errors"
	"fmt"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/healthguard/gateway-ota/rpi"
)

// rebootParamFile is where systemd-shutdown reads the argument of the final reboot
// system call (what `systemctl reboot --reboot-argument=` writes).
var rebootParamFile = "/" + rpi.RebootParamFile // for testing

// Reboot asks systemd for an orderly reboot: services stop in dependency order, file
// systems are unmounted, then the kernel reboots. With tryboot it first writes
// rpi.TrybootRebootArgument ("0 tryboot") to /run/systemd/reboot-param, the way
// rpi.RebootParam arms a trial; without, it removes a parameter left there, so a
// rollback reboot cannot turn into a trial. So a caller that armed through
// rpi.RebootParam must still pass tryboot=true. A flag armed through the firmware
// mailbox (rpi.Mailbox) is not touched either way. If the reboot request itself
// fails, a parameter Reboot wrote is removed again.
//
// The request goes to logind (org.freedesktop.login1.Manager.Reboot, what systemctl
// reboot uses; it honours delay inhibitors) and, if logind is not running, to the
// manager as a start of reboot.target in "replace-irreversibly" mode. The manager's
// own Reboot method is not used: it skips stopping services. Reboot returns once the
// request is queued; the caller should then wait for SIGTERM.
func Reboot(ctx context.Context, tryboot bool) error {
	if err := setRebootParam(rebootParamFile, tryboot); err != nil {
		return err
	}
	err := requestReboot(ctx)
	if err != nil && tryboot {
		if rerr := setRebootParam(rebootParamFile, false); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// setRebootParam writes the tryboot argument to path or removes path.
func setRebootParam(path string, tryboot bool) error {
	p := rpi.RebootParam{Path: path}
	if tryboot {
		return p.Arm()
	}
	return p.Disarm()
}

func requestReboot(ctx context.Context) error {
	bus, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("reboot: connect to the system bus: %w", err)
	}
	defer bus.Close()
	logind := bus.Object("org.freedesktop.login1", "/org/freedesktop/login1")
	err = logind.CallWithContext(ctx, "org.freedesktop.login1.Manager.Reboot", 0, false).Err
	if err == nil {
		return nil
	}
	if !isDBusError(err, "org.freedesktop.DBus.Error.ServiceUnknown") &&
		!isDBusError(err, "org.freedesktop.DBus.Error.NameHasNoOwner") {
		return fmt.Errorf("reboot through logind: %w", err)
	}
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("reboot: connect to systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.StartUnitContext(ctx, "reboot.target", "replace-irreversibly", nil); err != nil {
		return fmt.Errorf("reboot: start reboot.target: %w", err)
	}
	return nil
}
