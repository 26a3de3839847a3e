package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// TrybootParam is the reboot argument that asks the Raspberry Pi firmware for one
// trial boot. The kernel looks for " tryboot" with the leading space, hence the "0".
const TrybootParam = "0 tryboot"

// rebootParamFile is where systemd-shutdown reads the argument of the final reboot
// system call (what `systemctl reboot --reboot-argument=` writes).
var rebootParamFile = "/run/systemd/reboot-param" // for testing

// Reboot asks systemd for an orderly reboot: services stop in dependency order, file
// systems are unmounted, then the kernel reboots. With tryboot it first writes
// TrybootParam to /run/systemd/reboot-param; without, it removes a parameter left
// there, so a rollback reboot cannot turn into a trial. If the reboot request itself
// fails, a parameter it wrote is removed again.
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

// setRebootParam writes TrybootParam to path (through a temporary file and a rename,
// so a reader never sees half of it) or removes path.
func setRebootParam(path string, tryboot bool) error {
	if !tryboot {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("clear reboot parameter: %w", err)
		}
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write reboot parameter: %w", err)
	}
	f, err := os.CreateTemp(dir, ".reboot-param-*")
	if err != nil {
		return fmt.Errorf("write reboot parameter: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(TrybootParam)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write reboot parameter: %w", err)
	}
	return nil
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
