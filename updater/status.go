package updater

import (
	"context"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/updater/containers"
)

// StatusInfo is what `ota-updater status` shows.
type StatusInfo struct {
	Device string          `json:"device"`
	Boot   *bootctl.Status `json:"boot"`
	State  *State          `json:"state"`
	// Containers: desired vs running image digest and health per service.
	Containers []containers.ServiceStatus `json:"containers,omitempty"`
}

// Status reads the boot state and the journal.
func (u *Updater) Status(ctx context.Context) (*StatusInfo, error) {
	st, err := u.boot.Status()
	if err != nil {
		return nil, err
	}
	s, err := loadState(u.statePath())
	if err != nil {
		return nil, err
	}
	if s.Manifest != nil {
		m := *s.Manifest
		m.Payloads = nil
		s.Manifest = &m
	}
	return &StatusInfo{Device: u.deviceID(st), Boot: st, State: s, Containers: u.containerStatus(ctx)}, nil
}
