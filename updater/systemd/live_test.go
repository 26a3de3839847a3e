package systemd

import (
	"context"
	"os"
	"testing"
	"time"
)

// requireSystemd skips unless systemd is the running init system, which is how
// sd_booted(3) tells.
func requireSystemd(t *testing.T) {
	t.Helper()
	if fi, err := os.Lstat("/run/systemd/system"); err != nil || !fi.IsDir() {
		t.Skip("systemd is not the running init system (no /run/systemd/system): skipping the tests against the live manager")
	}
}

func TestLiveUnitActive(t *testing.T) {
	requireSystemd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// init.scope holds PID 1: it is active whenever systemd runs.
	active, state, err := UnitActive(ctx, "init.scope")
	if err != nil || !active || state != "active" {
		t.Errorf("UnitActive(init.scope) = %v, %q, %v; want true, active, nil", active, state, err)
	}
	active, state, err = UnitActive(ctx, "ota-test-no-such-unit.service")
	if err != nil || active || state != "inactive" {
		t.Errorf("UnitActive of an unknown unit = %v, %q, %v; want false, inactive, nil", active, state, err)
	}
}

func TestLiveStopUnknownUnit(t *testing.T) {
	requireSystemd(t)
	if os.Geteuid() != 0 {
		t.Skip("stopping units needs root")
	}
	err := StopUnits(context.Background(), []string{"ota-test-no-such-unit.service"}, 10*time.Second)
	if err != nil {
		t.Errorf("StopUnits of an unknown unit: %v, want nil (nothing to stop)", err)
	}
}
