package updater

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/ulikunitz/xz"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/manifest-server/report"
	"github.com/healthguard/gateway-ota/updater/containers"
	"github.com/healthguard/gateway-ota/updater/health"
	"github.com/healthguard/gateway-ota/updater/payload"
	"github.com/healthguard/gateway-ota/updater/release"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// ContainersConfig configures the container layer. The Docker client is
// made only when a release has a container set, so a gateway without
// Docker still updates its OS.
type ContainersConfig struct {
	// DockerHost is the engine's address ("unix:///var/run/docker.sock",
	// "tcp://..."); empty means the engine's default socket. The command
	// fills it from DOCKER_HOST.
	DockerHost string `mapstructure:"docker_host"`
	// Project names the containers ("<project>-<service>") and their
	// network; default "ota".
	Project string `mapstructure:"project"`
	// KeepReleases is how many committed releases keep their images;
	// default 2.
	KeepReleases int `mapstructure:"keep_releases"`
	// BackupLimit caps the snapshot of one volume marked for backup, in
	// bytes; default 256 MiB. A larger volume refuses the update.
	BackupLimit int64 `mapstructure:"backup_limit"`
	// Labels are put on every container, volume and network created.
	Labels map[string]string `mapstructure:"labels"`
}

// ErrContainersRolledBack: a container-only release was switched to, found
// unhealthy and the previous set restored.
var ErrContainersRolledBack = errors.New("container set rolled back")

// defaultContainerDeadline bounds the health wait of a release without a
// health deadline.
const defaultContainerDeadline = 2 * time.Minute

// containerManager connects to the engine. close releases the client.
func (u *Updater) containerManager() (*containers.Manager, func(), error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if h := u.cfg.Containers.DockerHost; h != "" {
		opts = append(opts, client.WithHost(h))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("docker client: %w", err)
	}
	c := u.cfg.Containers
	return &containers.Manager{Client: cli, Dir: u.containersDir(), Project: c.Project, Labels: c.Labels,
		KeepReleases: c.KeepReleases, BackupLimit: c.BackupLimit, Logf: u.cfg.Logf}, func() { cli.Close() }, nil
}

func (u *Updater) containersDir() string { return u.dataPath("containers") }

// usesContainers reports whether the device ever ran a container set, read
// from the data partition alone (no engine needed).
func (u *Updater) usesContainers() bool {
	_, err := os.Stat(u.containersDir())
	return err == nil
}

// fetchImages brings the images of m's set to the engine: the embedded
// images payload when the release has one (downloaded, verified against
// its signed hash and length, loaded), then a pull by digest of whatever
// is still missing, each checked against its pinned digest. Nothing
// running is touched (C2).
func (u *Updater) fetchImages(ctx context.Context, tc *trust.Client, mgr *containers.Manager, m *release.Manifest) error {
	for _, p := range m.Payloads {
		if p.Kind != release.KindImages {
			continue
		}
		dst, err := u.fetchPayload(ctx, tc, &p)
		if err != nil {
			return err
		}
		err = func() error {
			f, err := os.Open(dst)
			if err != nil {
				return err
			}
			defer f.Close()
			// Hash while reading the same open file (P5).
			cr, err := payload.CheckedReader(f, p.Size, p.SHA256)
			if err != nil {
				return err
			}
			xr, err := xz.NewReader(cr)
			if err != nil {
				return fmt.Errorf("images payload: %w", err)
			}
			return mgr.Load(ctx, xr)
		}()
		os.Remove(dst)
		if err != nil {
			return err
		}
	}
	return mgr.Ensure(ctx, m.Containers)
}

// stageContainers is the container step of an OS update, between the slot
// write and arming: the new set's images must all be present, or nothing
// is armed.
func (u *Updater) stageContainers(ctx context.Context, tc *trust.Client, m *release.Manifest) error {
	if m.Containers == nil {
		return nil
	}
	mgr, done, err := u.containerManager()
	if err != nil {
		return err
	}
	defer done()
	if err := os.MkdirAll(u.containersDir(), 0o755); err != nil {
		return err
	}
	return u.fetchImages(ctx, tc, mgr, m)
}

// committedFrom is the committed set as the release Apply switches from.
func committedFrom(mgr *containers.Manager) (*release.Manifest, error) {
	cur, err := mgr.Current()
	if err != nil || cur == nil {
		return nil, err
	}
	return &release.Manifest{Version: cur.Version, Counter: cur.Counter, Containers: cur.Containers}, nil
}

// trialContainers starts the trial release's set on the trial boot and
// waits for its health. restore brings the committed set back; it is never
// nil.
func (u *Updater) trialContainers(ctx context.Context, m *release.Manifest) (restore func(context.Context) error, err error) {
	restore = func(context.Context) error { return nil }
	if m == nil || m.Containers == nil {
		return restore, nil
	}
	mgr, done, err := u.containerManager()
	if err != nil {
		return restore, err
	}
	defer done()
	from, err := committedFrom(mgr)
	if err != nil {
		return restore, err
	}
	if _, err := mgr.Apply(ctx, from, m, release.StrategyDownloadThenKill); err != nil {
		return restore, fmt.Errorf("start the container set: %w", err)
	}
	restore = func(ctx context.Context) error {
		mgr, done, err := u.containerManager()
		if err != nil {
			return err
		}
		defer done()
		return mgr.Rollback(ctx)
	}
	deadline := time.Duration(m.HealthDeadline)
	if deadline <= 0 {
		deadline = defaultContainerDeadline
	}
	if err := mgr.WaitHealthy(ctx, m.Containers, deadline); err != nil {
		return restore, err
	}
	return restore, nil
}

// containersCommitted finishes a committed release's switch: old
// containers and backups go, old images are pruned.
func (u *Updater) containersCommitted(ctx context.Context, m *release.Manifest) {
	if m == nil || m.Containers == nil {
		return
	}
	mgr, done, err := u.containerManager()
	if err != nil {
		u.cfg.Logf("containers: %v", err)
		return
	}
	defer done()
	if err := mgr.Committed(ctx, m); err != nil {
		u.cfg.Logf("containers: commit: %v", err)
	}
}

// restoreContainers brings back the committed set after a failed trial or
// an interrupted switch: a journalled switch is rolled back.
func (u *Updater) restoreContainers(ctx context.Context) {
	if !u.usesContainers() {
		return
	}
	mgr, done, err := u.containerManager()
	if err != nil {
		u.cfg.Logf("containers: %v", err)
		return
	}
	defer done()
	if pending, to, err := mgr.Pending(); err != nil || !pending {
		return
	} else {
		u.cfg.Logf("containers: the switch to %s did not commit: restoring the committed set", to)
	}
	if err := mgr.Rollback(ctx); err != nil {
		u.cfg.Logf("containers: restore: %v", err)
	}
}

// containerSwitchPending reports whether a container switch was left
// neither committed nor rolled back.
func (u *Updater) containerSwitchPending() bool {
	if !u.usesContainers() {
		return false
	}
	mgr, done, err := u.containerManager()
	if err != nil {
		u.cfg.Logf("containers: %v", err)
		return false
	}
	defer done()
	pending, _, err := mgr.Pending()
	return err == nil && pending
}

// containerStatus is what status shows of the containers; nil on a device
// that never ran a set.
func (u *Updater) containerStatus(ctx context.Context) []containers.ServiceStatus {
	if !u.usesContainers() {
		return nil
	}
	mgr, done, err := u.containerManager()
	if err != nil {
		return []containers.ServiceStatus{{Name: "?", State: err.Error()}}
	}
	defer done()
	var desired *release.ContainerSet
	if cur, err := mgr.Current(); err == nil && cur != nil {
		desired = cur.Containers
	}
	st, err := mgr.Status(ctx, desired)
	if err != nil {
		return []containers.ServiceStatus{{Name: "?", State: err.Error()}}
	}
	return st
}

// updateContainers installs a container-only release: no slot write, no
// reboot. Images first (C2), then the switch with the release's strategy,
// the health wait, and commit or restore (C3). C4: the running OS must be
// at least the release's MinOSCounter.
func (u *Updater) updateContainers(ctx context.Context, tc *trust.Client, st *bootctl.Status, s *State, m *release.Manifest, res *UpdateResult) (*UpdateResult, error) {
	res.Slot = st.Booted
	fail := func(phase string, err error) (*UpdateResult, error) {
		s.Phase, s.Error = PhaseFailed, fmt.Sprintf("%s: %v", phase, err)
		if serr := saveState(u.statePath(), s); serr != nil {
			u.cfg.Logf("save state: %v", serr)
		}
		u.report(ctx, s, st, PhaseFailed, s.Error, 0)
		return nil, err
	}
	if osCounter := st.Slot(st.Booted).Counter; m.MinOSCounter > osCounter {
		return fail("check", fmt.Errorf("release %s needs an OS release with counter %d or more; slot %s runs counter %d: %w",
			m.Version, m.MinOSCounter, st.Booted, osCounter, ErrIncompatible))
	}
	mgr, done, err := u.containerManager()
	if err != nil {
		return fail("check", err)
	}
	defer done()
	if err := os.MkdirAll(u.containersDir(), 0o755); err != nil {
		return fail("check", err)
	}
	from, err := committedFrom(mgr)
	if err != nil {
		return fail("check", err)
	}
	if from != nil {
		res.From = from.Version
	}
	s.Phase, s.Version, s.Counter, s.From, s.Target, s.Error, s.Manifest = PhaseDownloading, m.Version, m.Counter, res.From, st.Booted, "", m
	if err := saveState(u.statePath(), s); err != nil {
		return nil, err
	}
	u.report(ctx, s, st, PhaseDownloading, "", 0)
	strategy := m.Containers.Strategy
	if strategy != release.StrategyKillThenDownload {
		if err := u.fetchImages(ctx, tc, mgr, m); err != nil {
			return fail("images", err)
		}
	}
	if _, err := mgr.Apply(ctx, from, m, strategy); err != nil {
		return fail("switch", err)
	}
	u.report(ctx, s, st, report.PhaseTrying, "", 0.5)
	deadline := time.Duration(m.HealthDeadline)
	if deadline <= 0 {
		deadline = defaultContainerDeadline
	}
	herr := mgr.WaitHealthy(ctx, m.Containers, deadline)
	if herr == nil && len(m.HealthChecks) > 0 {
		hr := health.Run(ctx, m.HealthChecks, deadline, health.Options{Root: u.cfg.Root, Logf: u.cfg.Logf, Units: u.unitChecker()})
		if !hr.OK {
			herr = errors.New("health checks failed: " + hr.Reason())
		}
	}
	if herr != nil {
		reason := "containers unhealthy: " + herr.Error()
		if rerr := mgr.Rollback(context.WithoutCancel(ctx)); rerr != nil {
			reason += "; restoring the previous set: " + rerr.Error()
		}
		s.Phase, s.Error = PhaseRolledBack, reason
		if s.Failed == nil {
			s.Failed = map[string]string{}
		}
		s.Failed[m.Version] = reason
		if err := saveState(u.statePath(), s); err != nil {
			return nil, err
		}
		u.report(ctx, s, st, PhaseRolledBack, reason, 0)
		return res, fmt.Errorf("release %s: %w: %w", m.Version, ErrContainersRolledBack, herr)
	}
	if err := mgr.Committed(ctx, m); err != nil {
		u.cfg.Logf("containers: %v", err)
	}
	s.Phase, s.Error = PhaseCommitted, ""
	s.Floor = max(s.Floor, m.Counter)
	delete(s.Failed, m.Version)
	if err := saveState(u.statePath(), s); err != nil {
		return nil, err
	}
	u.report(ctx, s, st, PhaseCommitted, "", 1)
	res.Reboot = "container-only release: switched without a reboot"
	return res, nil
}

// humanContainers appends the container lines of `ota-updater status`.
func humanContainers(b *strings.Builder, cs []containers.ServiceStatus) {
	if len(cs) == 0 {
		return
	}
	short := func(d string) string {
		if d == "" {
			return "-"
		}
		return strings.TrimPrefix(d, "sha256:")[:min(12, len(strings.TrimPrefix(d, "sha256:")))]
	}
	b.WriteString("\ncontainers:")
	for _, c := range cs {
		health := c.Health
		if health == "" {
			health = "-"
		}
		mark := ""
		if c.DesiredImage != "" && c.RunningImage != c.DesiredImage {
			mark = "  (differs from the committed release)"
		}
		fmt.Fprintf(b, "\n  %-16s desired %s running %s %s health %s%s", c.Name, short(c.DesiredImage), short(c.RunningImage), c.State, health, mark)
	}
}
