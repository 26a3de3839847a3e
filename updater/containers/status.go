package containers

import (
	"context"
	"sort"

	"github.com/healthguard/gateway-ota/updater/release"
)

// ServiceStatus is one service as `ota-updater status` shows it.
type ServiceStatus struct {
	Name string `json:"name"`
	// DesiredImage is the digest the committed release pins; empty for a
	// container the desired set does not have.
	DesiredImage string `json:"desired_image,omitempty"`
	// RunningImage is the digest of the image the container runs; empty
	// when there is no container.
	RunningImage string `json:"running_image,omitempty"`
	// Release is the release that created the container.
	Release string `json:"release,omitempty"`
	// State is the engine's container state ("running", "exited", ...) or
	// "missing".
	State string `json:"state"`
	// Health is the engine's health status, "" without a HEALTHCHECK.
	Health string `json:"health,omitempty"`
}

// Status compares the desired set with the project's containers.
func (m *Manager) Status(ctx context.Context, desired *release.ContainerSet) ([]ServiceStatus, error) {
	run, err := m.running(ctx)
	if err != nil {
		return nil, err
	}
	idx := map[string]int{}
	var out []ServiceStatus
	if desired != nil {
		for _, s := range desired.Services {
			_, d, _ := release.ImageDigest(s.Image)
			idx[s.Name] = len(out)
			out = append(out, ServiceStatus{Name: s.Name, DesiredImage: d, State: "missing"})
		}
	}
	names := make([]string, 0, len(run))
	for n := range run {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		i, ok := idx[n]
		if !ok {
			i = len(out)
			out = append(out, ServiceStatus{Name: n})
		}
		c := run[n]
		s := &out[i]
		_, s.RunningImage, _ = release.ImageDigest(c.Labels[LabelImage])
		s.Release = c.Labels[LabelRelease]
		s.State = string(c.State)
		if ci, err := m.inspect(ctx, c.ID); err == nil && ci != nil && ci.State != nil && ci.State.Health != nil {
			s.Health = string(ci.State.Health.Status)
		}
	}
	return out, nil
}
