package updater

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/manifest-server/report"
	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/updater/health"
	"github.com/healthguard/gateway-ota/updater/systemd"
)

// ConfirmResult says what Confirm decided.
type ConfirmResult struct {
	// Outcome is one of: "nothing" (no update pending), "committed",
	// "rolled-back" (the trial failed and the committed slot runs),
	// "rolling-back" (health checks failed; rebooting to the committed slot).
	Outcome string `json:"outcome"`
	Version string `json:"version,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Reboot  string `json:"reboot,omitempty"`
	// Checks are the health check results of a trial.
	Checks *health.Result `json:"checks,omitempty"`
}

// Confirm runs at every boot. On a trial boot of the armed release it runs
// the release's health checks under their deadline, then commits the slot
// and raises the anti-rollback floor, or records the failure and reboots
// without the flag. On a normal boot after an armed trial, the trial died
// early (power cut, crash, watchdog): it records the rollback. After a
// container-only switch that a power cut or crash interrupted, it brings
// the committed container set back and records the rollback.
func (u *Updater) Confirm(ctx context.Context) (*ConfirmResult, error) {
	unlock, err := u.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := u.boot.Status()
	if err != nil {
		return nil, err
	}
	s, err := loadState(u.statePath())
	if err != nil {
		return nil, err
	}
	res := &ConfirmResult{Outcome: "nothing", Version: s.Version}
	switch s.Phase {
	case PhaseArmed:
		switch {
		case st.Trial && st.Booted == s.Target:
			return u.judgeTrial(ctx, st, s, res)
		case !st.Trial && st.Booted == s.Target && st.Committed == s.Target:
			// The commit was written but the journal was not: a power cut
			// in between (F4). Finish the bookkeeping.
			return res, u.committed(ctx, st, s, res)
		default:
			reason := fmt.Sprintf("the trial boot of %s in slot %s did not reach confirmation (power cut, crash or watchdog); slot %s runs %s",
				s.Version, s.Target, st.Booted, st.Slot(st.Booted).Version)
			return res, u.rolledBack(ctx, st, s, res, reason)
		}
	case PhaseDownloading:
		if !st.Trial && s.Manifest != nil && s.Manifest.ContainerOnly() && u.containerSwitchPending() {
			// A container-only switch cut by a power loss or a crash: the
			// set it left may be half old, half new, or stopped.
			reason := fmt.Sprintf("the switch to the container set of %s did not finish (power cut or crash)", s.Version)
			return res, u.rolledBack(ctx, st, s, res, reason)
		}
	case PhaseRollingBack:
		if !st.Trial && st.Booted != s.Target {
			return res, u.rolledBack(ctx, st, s, res, s.Error)
		}
		// Still on the failed trial: the reboot did not happen. Try again.
		res.Outcome, res.Reason = PhaseRollingBack, s.Error
		res.Reboot, err = u.rebootFlagless(ctx)
		return res, err
	}
	if st.Trial {
		// A trial nobody armed through the updater (bootctl try by hand):
		// leave it to the operator.
		res.Reason = fmt.Sprintf("slot %s is on a trial the updater did not arm; use bootctl commit or reboot", st.Booted)
	}
	u.report(ctx, s, st, report.PhaseIdle, "", 0)
	return res, nil
}

func (u *Updater) judgeTrial(ctx context.Context, st *bootctl.Status, s *State, res *ConfirmResult) (*ConfirmResult, error) {
	u.report(ctx, s, st, report.PhaseTrying, "", 0)
	var checks = s.Manifest
	if checks == nil {
		return res, u.failTrial(ctx, st, s, res, "the journal holds no manifest for the trial")
	}
	deadline := time.Duration(checks.HealthDeadline)
	restoreContainers, cerr := u.trialContainers(ctx, checks) // containers hook: start the set, wait for its health
	var hr health.Result
	if cerr == nil {
		// Unhealthy containers decide the trial: the OS checks would only
		// keep it going up to their deadline.
		hr = health.Run(ctx, checks.HealthChecks, deadline, health.Options{Root: u.cfg.Root, Logf: u.cfg.Logf, Units: u.unitChecker()})
		res.Checks = &hr
	}
	if cerr != nil || !hr.OK {
		reason := "health checks failed: " + hr.Reason()
		if cerr != nil {
			reason = "containers: " + cerr.Error()
		}
		if err := restoreContainers(ctx); err != nil {
			u.cfg.Logf("containers: restore: %v", err)
		}
		return res, u.failTrial(ctx, st, s, res, reason)
	}
	if _, err := u.boot.Commit(); err != nil {
		return res, u.failTrial(ctx, st, s, res, "commit: "+err.Error())
	}
	st2, err := u.boot.Status()
	if err != nil {
		return res, err
	}
	return res, u.committed(ctx, st2, s, res)
}

func (u *Updater) committed(ctx context.Context, st *bootctl.Status, s *State, res *ConfirmResult) error {
	u.containersCommitted(ctx, s.Manifest) // containers hook: drop the old set, prune images
	s.Phase, s.Error = PhaseCommitted, ""
	s.Floor = max(s.Floor, s.Counter)
	delete(s.Failed, s.Version)
	if err := saveState(u.statePath(), s); err != nil {
		return err
	}
	res.Outcome = PhaseCommitted
	u.report(ctx, s, st, PhaseCommitted, "", 1)
	return nil
}

func (u *Updater) rolledBack(ctx context.Context, st *bootctl.Status, s *State, res *ConfirmResult, reason string) error {
	u.restoreContainers(ctx) // containers hook: the committed slot's set comes back
	s.Phase, s.Error = PhaseRolledBack, reason
	if s.Failed == nil {
		s.Failed = map[string]string{}
	}
	s.Failed[s.Version] = reason
	if err := saveState(u.statePath(), s); err != nil {
		return err
	}
	res.Outcome, res.Reason = PhaseRolledBack, reason
	u.report(ctx, s, st, PhaseRolledBack, reason, 0)
	return nil
}

// failTrial records a failed trial and reboots without the flag.
func (u *Updater) failTrial(ctx context.Context, st *bootctl.Status, s *State, res *ConfirmResult, reason string) error {
	s.Phase, s.Error = PhaseRollingBack, reason
	if s.Failed == nil {
		s.Failed = map[string]string{}
	}
	s.Failed[s.Version] = reason
	if err := saveState(u.statePath(), s); err != nil {
		return err
	}
	res.Outcome, res.Reason = PhaseRollingBack, reason
	u.report(ctx, s, st, PhaseFailed, reason, 0)
	var err error
	res.Reboot, err = u.rebootFlagless(ctx)
	return err
}

func (u *Updater) unitChecker() health.UnitChecker {
	if u.isVirtual() {
		return func(ctx context.Context, unit string) (bool, string, error) {
			return false, "", fmt.Errorf("a virtual Pi runs no systemd: unit %s cannot be checked", unit)
		}
	}
	return nil
}

// isVirtual reports whether Root is a virtual Pi's device directory.
func (u *Updater) isVirtual() bool {
	switch u.cfg.Reboot {
	case "virtual":
		return true
	case "auto":
		_, err := os.Stat(filepath.Join(u.cfg.Root, "firmware", "state.json"))
		return err == nil && u.cfg.Root != "/"
	}
	return false
}

// rebootFlagless disarms and reboots, so the committed slot boots.
func (u *Updater) rebootFlagless(ctx context.Context) (string, error) {
	if st, err := u.boot.Status(); err == nil && st.Trial {
		if _, err := u.boot.Rollback(); err != nil {
			u.cfg.Logf("disarm: %v", err)
		}
	}
	return u.doReboot(ctx, false)
}

// doReboot reboots: into the armed trial when trial is set, else plainly.
// systemd's reboot parameter is written for a trial and removed otherwise,
// so a rollback reboot is never a trial.
func (u *Updater) doReboot(ctx context.Context, trial bool) (string, error) {
	switch {
	case u.cfg.Reboot == "none":
		return "reboot required: reboot the device to continue", nil
	case u.isVirtual():
		d, err := pisim.Open(u.cfg.Root)
		if err != nil {
			return "", fmt.Errorf("virtual Pi: %w", err)
		}
		b, err := d.Reboot()
		if err != nil {
			return "", fmt.Errorf("virtual Pi reboot: %w", err)
		}
		return fmt.Sprintf("virtual Pi rebooted: slot %s (partition %d), tryboot=%v", b.Slot, b.Partition, b.Tryboot), nil
	default:
		if len(u.cfg.StopUnits) > 0 {
			if err := systemd.StopUnits(ctx, u.cfg.StopUnits, u.cfg.StopTimeout); err != nil {
				u.cfg.Logf("stop services: %v (rebooting anyway)", err)
			}
		}
		if err := systemd.Reboot(ctx, trial); err != nil {
			return "", fmt.Errorf("reboot: %w", err)
		}
		return "rebooting", nil
	}
}

// onTrial reports whether the device under root is on a trial boot; when
// that cannot be read, it is taken as not.
func onTrial(root string) bool {
	st, err := (&bootctl.Controller{Root: root}).Status()
	return err == nil && st.Trial
}
