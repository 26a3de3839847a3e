package containers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
	"github.com/healthguard/gateway-ota/updater/release"
)

// Apply switches the running set to release to's set with strategy (empty:
// the set's own, else download-then-kill); see the package doc for the
// steps. from is the release that runs now (nil: none known; only its
// version is used for the journal). On success the new set runs and
// Apply returns Rollback bound to this switch: the caller judges health
// (WaitHealthy) and then calls Committed or the returned restore. On error
// the previous set has already been restored, as far as it could be.
func (m *Manager) Apply(ctx context.Context, from, to *release.Manifest, strategy string) (restore func(context.Context) error, err error) {
	if to == nil || to.Containers == nil {
		return nil, errors.New("apply: the release has no container set")
	}
	set := to.Containers
	if strategy == "" {
		strategy = set.Strategy
	}
	if strategy == "" {
		strategy = release.StrategyDownloadThenKill
	}
	switch strategy {
	case release.StrategyDownloadThenKill, release.StrategyKillThenDownload, release.StrategyHandOver:
	default:
		return nil, fmt.Errorf("apply: unknown strategy %q", strategy)
	}
	if j, err := m.loadJournal(); err != nil {
		return nil, err
	} else if j != nil {
		return nil, fmt.Errorf("apply: the switch to %s is neither committed nor rolled back", j.To)
	}
	for _, s := range set.Services {
		for _, v := range s.Volumes {
			if v.Backup && strings.HasPrefix(v.Source, "/") {
				return nil, fmt.Errorf("service %s: backup of bind mount %s is not supported; use a named volume", s.Name, v.Source)
			}
		}
	}
	run, err := m.running(ctx)
	if err != nil {
		return nil, err
	}
	// Services whose container changes: new spec, removed, or not running.
	want := map[string]release.Service{}
	var changed []string
	for _, s := range set.Services {
		want[s.Name] = s
		c, ok := run[s.Name]
		if !ok || c.Labels[LabelSpec] != SpecHash(s) || c.State != container.StateRunning {
			changed = append(changed, s.Name)
		}
	}
	for svc := range run {
		if _, ok := want[svc]; !ok {
			changed = append(changed, svc)
		}
	}
	sort.Strings(changed)

	var ids map[string]string
	if strategy != release.StrategyKillThenDownload {
		if ids, err = m.ensure(ctx, set); err != nil {
			return nil, err // C2: nothing was touched
		}
	}
	if err := m.network(ctx); err != nil {
		return nil, err
	}
	fromVersion := ""
	if from != nil {
		fromVersion = from.Version
	}
	j := &journal{From: fromVersion, To: to.Version, Services: changed, Backups: map[string]string{}}
	if len(changed) == 0 {
		m.logf("container set of %s already runs", to.Version)
		return func(context.Context) error { return nil }, m.saveJournal(j)
	}
	if err := m.saveJournal(j); err != nil {
		return nil, err
	}
	fail := func(err error) (func(context.Context) error, error) {
		if rerr := m.Rollback(context.WithoutCancel(ctx)); rerr != nil {
			return nil, fmt.Errorf("%w (and restoring the previous set: %v)", err, rerr)
		}
		return nil, err
	}

	handOver := map[string]bool{}
	if strategy == release.StrategyHandOver {
		for _, name := range changed {
			s, ok := want[name]
			if !ok || !s.HandOver {
				continue
			}
			if c, ok := run[name]; ok && c.State == container.StateRunning && !portsCollide(c, s) {
				handOver[name] = true
			}
		}
		// Snapshot first: the old containers keep running (hand-over
		// services tolerate that by definition).
		if err := m.backupAll(ctx, set, changed, ids, j); err != nil {
			return fail(err)
		}
		for _, name := range changed {
			if !handOver[name] {
				continue
			}
			if err := m.handOver(ctx, to, want[name], ids[name]); err != nil {
				return fail(err)
			}
		}
	}
	if strategy == release.StrategyKillThenDownload {
		return m.killThenDownload(ctx, to, set, changed, want, j, fail)
	}
	// Download-then-kill, and the services a hand-over cannot hand over:
	// the new containers are created before the old ones stop, so that
	// once an old one has exited only its successor's start remains.
	next := map[string]string{}
	old := map[string]*container.InspectResponse{}
	for _, name := range changed {
		if handOver[name] {
			continue
		}
		c, err := m.current(ctx, name)
		if err != nil {
			return fail(err)
		}
		old[name] = c
		s, ok := want[name]
		if !ok {
			continue
		}
		id, err := m.createBeside(ctx, to.Version, s, ids[name])
		if err != nil {
			return fail(err)
		}
		next[name] = id
	}
	if !hasBackup(set, changed) || strategy == release.StrategyHandOver {
		// Nothing to snapshot between the stop and the start (a hand-over
		// snapshotted before): each service switches on its own.
		for _, name := range changed {
			if handOver[name] {
				continue
			}
			if err := m.retireContainer(ctx, name, old[name]); err != nil {
				return fail(err)
			}
			if err := m.startNext(ctx, name, next[name]); err != nil {
				return fail(err)
			}
		}
		return m.Rollback, nil
	}
	for _, name := range changed {
		if err := m.retireContainer(ctx, name, old[name]); err != nil {
			return fail(err)
		}
	}
	if err := m.backupAll(ctx, set, changed, ids, j); err != nil {
		return fail(err)
	}
	for _, name := range changed {
		if err := m.startNext(ctx, name, next[name]); err != nil {
			return fail(err)
		}
	}
	return m.Rollback, nil
}

// killThenDownload stops the changed services first, then pulls the new
// images (removing the old ones if space runs out), snapshots and starts.
func (m *Manager) killThenDownload(ctx context.Context, to *release.Manifest, set *release.ContainerSet, changed []string, want map[string]release.Service, j *journal, fail func(error) (func(context.Context) error, error)) (func(context.Context) error, error) {
	for _, name := range changed {
		if err := m.retire(ctx, name); err != nil {
			return fail(err)
		}
	}
	ids, err := m.ensure(ctx, set)
	if err != nil && errors.Is(err, syscall.ENOSPC) || err != nil && strings.Contains(err.Error(), "no space left") {
		m.logf("out of space while pulling: removing the old images and retrying")
		m.removeImagesOf(ctx, changed)
		ids, err = m.ensure(ctx, set)
	}
	if err != nil {
		return fail(err)
	}
	if err := m.backupAll(ctx, set, changed, ids, j); err != nil {
		return fail(err)
	}
	for _, name := range changed {
		s, ok := want[name]
		if !ok {
			continue
		}
		id, err := m.create(ctx, to.Version, s, ids[name], m.Name(name), []string{s.Name})
		if err != nil {
			return fail(err)
		}
		if err := m.startNext(ctx, name, id); err != nil {
			return fail(err)
		}
	}
	return m.Rollback, nil
}

// hasBackup reports whether a changed service of set has a Backup volume.
func hasBackup(set *release.ContainerSet, changed []string) bool {
	for _, s := range set.Services {
		if !slices.Contains(changed, s.Name) {
			continue
		}
		for _, v := range s.Volumes {
			if v.Backup {
				return true
			}
		}
	}
	return false
}

// createBeside creates (does not start) the new container of s while the
// old one may still run: under whichever of the service's two container
// names the old one does not hold, with the service name as alias (a
// created container has no endpoint yet, so the name does not resolve to
// it before it starts).
func (m *Manager) createBeside(ctx context.Context, version string, s release.Service, imageID string) (string, error) {
	name, err := m.freeName(ctx, s.Name)
	if err != nil {
		return "", err
	}
	return m.create(ctx, version, s, imageID, name, []string{s.Name})
}

// freeName returns the one of the service's two container names its
// current container does not hold, removing a leftover container of an
// earlier attempt under it.
func (m *Manager) freeName(ctx context.Context, svc string) (string, error) {
	cur, err := m.current(ctx, svc)
	if err != nil {
		return "", err
	}
	name := m.nextName(svc)
	if cur != nil && strings.TrimPrefix(cur.Name, "/") == name {
		name = m.Name(svc)
	}
	if old, err := m.inspect(ctx, name); err != nil {
		return "", err
	} else if old != nil {
		m.Client.ContainerRemove(ctx, old.ID, client.ContainerRemoveOptions{Force: true})
	}
	return name, nil
}

// startNext starts the created container id of svc once its predecessor
// is retired: renamed to the service's plain name if it was created under
// the other one and that is free now (renaming a container that does not
// run touches no network), then started and announced.
func (m *Manager) startNext(ctx context.Context, svc, id string) error {
	if id == "" {
		return nil // a removed service
	}
	if c, err := m.current(ctx, svc); err != nil {
		return err
	} else if c == nil || c.ID != id {
		return fmt.Errorf("start %s: its container is gone", m.Name(svc))
	} else if strings.TrimPrefix(c.Name, "/") != m.Name(svc) {
		if _, err := m.Client.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: m.Name(svc)}); err != nil {
			return fmt.Errorf("rename %s: %w", c.Name, err)
		}
	}
	if _, err := m.Client.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", m.Name(svc), err)
	}
	// Clients that resolved the name while the engine was still plugging
	// the interface in get its address now, not a second later (see
	// handOver).
	m.announce(ctx, id)
	return nil
}

// portsCollide reports whether s publishes a host port the running
// container c holds.
func portsCollide(c container.Summary, s release.Service) bool {
	for _, p := range c.Ports {
		for _, q := range s.Ports {
			if int(p.PublicPort) == q.Host && p.PublicPort != 0 {
				return true
			}
		}
	}
	return false
}

// handOver starts the new container of s beside the old one, under the
// other of the two names, and moves the service's name to it without a
// failed connection:
//
//  1. the new container joins the project network under its container
//     name only, so the service name does not resolve to it yet;
//  2. once it is healthy it is reconnected with the service name as alias.
//     The engine publishes the name as the endpoint is made, a moment
//     before the interface answers ARP, and a client that asks in that
//     moment would wait a second for the kernel's next ARP attempt; so
//     the container's address is announced (gratuitous ARP) right after,
//     which answers those clients at once;
//  3. the old container is drained: its network namespace refuses new
//     connections (a refused address makes clients try the next one the
//     name resolves to, the new container's), and the connections its
//     listeners had queued are let be accepted;
//  4. it is stopped gracefully: it finishes the requests in flight and
//     exits, and its name goes with it. The new container answers the
//     old address from the moment the old process exits until the name
//     lets go of it (takeOver).
func (m *Manager) handOver(ctx context.Context, to *release.Manifest, s release.Service, imageID string) error {
	cur, err := m.current(ctx, s.Name)
	if err != nil {
		return err
	}
	next, err := m.freeName(ctx, s.Name)
	if err != nil {
		return err
	}
	id, err := m.create(ctx, to.Version, s, imageID, next, nil)
	if err != nil {
		return err
	}
	if _, err := m.Client.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", next, err)
	}
	deadline := time.Duration(to.HealthDeadline)
	if deadline <= 0 {
		deadline = 2 * time.Minute
	}
	if err := m.waitService(ctx, s, next, time.Now().Add(deadline)); err != nil {
		return fmt.Errorf("hand-over of %s: %w", s.Name, err)
	}
	if _, err := m.Client.NetworkDisconnect(ctx, m.project(), client.NetworkDisconnectOptions{Container: id}); err != nil {
		return fmt.Errorf("hand-over of %s: disconnect %s: %w", s.Name, next, err)
	}
	ep := &network.EndpointSettings{Aliases: []string{s.Name}}
	if _, err := m.Client.NetworkConnect(ctx, m.project(), client.NetworkConnectOptions{Container: id, EndpointConfig: ep}); err != nil {
		return fmt.Errorf("hand-over of %s: connect %s as %s: %w", s.Name, next, s.Name, err)
	}
	m.announce(ctx, id)
	m.logf("hand-over of %s: %s answers to the name; stopping the old container", s.Name, next)
	undrain := m.drain(cur)
	giveBack := m.takeOver(ctx, cur, id)
	err = m.retireContainer(ctx, s.Name, cur)
	giveBack()
	if err != nil {
		// The old container may still run: it takes connections again.
		undrain()
	}
	return err
}

// drainWait bounds how long a hand-over waits for the old container's
// listeners to accept the connections already queued for them.
const drainWait = time.Second

// drain has the old container c refuse new connections, so that clients
// go to the new one, and waits for its listeners' queues to empty before
// it is stopped (step 3 of handOver; see drainNetNS). The returned undrain
// lifts the refusal. Without root on the engine's host, or without
// nf_tables, it is skipped: the stop is still graceful, but a connection
// queued as the old service closes its listener is reset.
func (m *Manager) drain(c *container.InspectResponse) (undrain func()) {
	nothing := func() {}
	if c == nil || c.State == nil || c.State.Pid <= 0 {
		return nothing
	}
	name := strings.TrimPrefix(c.Name, "/")
	undo, err := drainNetNS(c.State.Pid, drainWait)
	if err != nil {
		m.logf("%s: %v", name, err)
	}
	if undo == nil {
		return nothing
	}
	if err == nil {
		m.logf("%s refuses new connections; its queued ones are accepted", name)
	}
	return func() {
		if err := undo(); err != nil {
			m.logf("%v", err)
		}
	}
}

// takeOver has the new container id take the old container's address the
// moment the old one's process exits (step 4 of handOver). The engine
// removes the old address from the name only after it has torn the old
// interface down, and a connection attempt to the address in between would
// go unanswered (no refusal, so the client waits out its timeout instead
// of trying the next address). Taken over, the address is answered by the
// new container until the name no longer resolves to it. The returned
// giveBack, called once the old container is stopped, waits for that and
// gives the address back. Without root on the engine's host nothing is
// taken over.
func (m *Manager) takeOver(ctx context.Context, old *container.InspectResponse, id string) (giveBack func()) {
	nothing := func() {}
	c, err := m.inspect(ctx, id)
	if err != nil || c == nil || c.State == nil || c.NetworkSettings == nil || old == nil || old.State == nil || old.NetworkSettings == nil {
		return nothing
	}
	newEP, oldEP := c.NetworkSettings.Networks[m.project()], old.NetworkSettings.Networks[m.project()]
	if newEP == nil || oldEP == nil || !oldEP.IPAddress.Is4() || old.State.Pid <= 0 {
		return nothing
	}
	pid, own, addr := c.State.Pid, newEP.IPAddress, oldEP.IPAddress
	taken := make(chan bool, 1)
	// Who decides first: the goroutine when the old process exits (it
	// takes the address), or a giveBack that stopped waiting (the old
	// process may exit much later, after a failed or cancelled stop, and
	// nothing would give the address back: it is not taken then).
	const waiting, taking, abandoned = 0, 1, 2
	var decided atomic.Int32
	go func() {
		exited, err := waitExit(old.State.Pid, time.Duration(release.DefaultStopTimeout)+time.Minute)
		if !decided.CompareAndSwap(waiting, taking) {
			return
		}
		if err != nil || !exited {
			taken <- false
			return
		}
		if err := setAddr(pid, own, addr, true); err != nil {
			m.logf("take over %v: %v", addr, err)
			taken <- false
			return
		}
		err = announce(pid, addr, 1, 0)
		taken <- true
		m.logf("%s took over %v", strings.TrimPrefix(c.Name, "/"), addr)
		if err != nil {
			m.logf("announce %v: %v", addr, err)
		}
		announce(pid, addr, 2, 100*time.Millisecond)
	}()
	return func() {
		var ok bool
		select {
		case ok = <-taken:
		case <-time.After(time.Second):
			if !decided.CompareAndSwap(waiting, abandoned) {
				ok = <-taken // being taken right now: wait, and give it back
			}
		}
		if !ok {
			return
		}
		// The name lets go of the address with the old endpoint.
		for range 100 {
			n, err := m.Client.NetworkInspect(ctx, m.project(), client.NetworkInspectOptions{})
			if err != nil {
				break
			}
			if _, ok := n.Network.Containers[old.ID]; !ok {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		if err := setAddr(pid, own, addr, false); err != nil {
			m.logf("give back %v: %v", addr, err)
		}
	}
}

// announce has the container's address on the project network announced
// from its network namespace (see announce). Without root on the engine's
// host (a remote engine) it is skipped.
func (m *Manager) announce(ctx context.Context, id string) {
	c, err := m.inspect(ctx, id)
	if err != nil || c == nil || c.State == nil || c.NetworkSettings == nil {
		return
	}
	ep := c.NetworkSettings.Networks[m.project()]
	if ep == nil {
		return
	}
	pid, ip := c.State.Pid, ep.IPAddress
	m.logf("announce %s at %v", strings.TrimPrefix(c.Name, "/"), ip)
	// Three announcements 100 ms apart: the first answers the clients
	// that asked while the interface was plugged in, the others those
	// whose request crossed it.
	go func() {
		if err := announce(pid, ip, 3, 100*time.Millisecond); err != nil {
			m.logf("announce %v: %v (clients that resolved the name early may wait up to a second)", ip, err)
		}
	}()
}

// retire stops the service's running container gracefully, switches its
// restart policy off (so a reboot does not start it) and renames it
// "-prev". A "-prev" left by an earlier attempt is kept as the one to
// restore.
func (m *Manager) retire(ctx context.Context, svc string) error {
	c, err := m.current(ctx, svc)
	if err != nil {
		return err
	}
	return m.retireContainer(ctx, svc, c)
}

func (m *Manager) retireContainer(ctx context.Context, svc string, c *container.InspectResponse) error {
	if c == nil {
		return nil
	}
	prev, err := m.inspect(ctx, m.prevName(svc))
	if err != nil {
		return err
	}
	if err := m.stop(ctx, c); err != nil {
		return err
	}
	if prev != nil {
		// The container under the name is a new one of an interrupted
		// switch: the "-prev" one is the one to keep.
		_, err := m.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		return err
	}
	no := container.RestartPolicy{Name: container.RestartPolicyDisabled}
	if _, err := m.Client.ContainerUpdate(ctx, c.ID, client.ContainerUpdateOptions{RestartPolicy: &no}); err != nil {
		return fmt.Errorf("update %s: %w", c.Name, err)
	}
	if _, err := m.Client.ContainerRename(ctx, c.ID, client.ContainerRenameOptions{NewName: m.prevName(svc)}); err != nil {
		return fmt.Errorf("rename %s: %w", c.Name, err)
	}
	return nil
}

// stop stops a container: SIGTERM, then SIGKILL after its StopTimeout.
func (m *Manager) stop(ctx context.Context, c *container.InspectResponse) error {
	if c.State == nil || !c.State.Running && !c.State.Restarting {
		return nil
	}
	t := int(release.DefaultStopTimeout / time.Second)
	if c.Config != nil && c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	m.logf("stop %s (timeout %ds)", strings.TrimPrefix(c.Name, "/"), t)
	if _, err := m.Client.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &t}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop %s: %w", c.Name, err)
	}
	return nil
}

// network makes sure the project's network exists.
func (m *Manager) network(ctx context.Context) error {
	_, err := m.Client.NetworkInspect(ctx, m.project(), client.NetworkInspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("network %s: %w", m.project(), err)
	}
	_, err = m.Client.NetworkCreate(ctx, m.project(), client.NetworkCreateOptions{Driver: "bridge", Labels: m.labels(nil)})
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("create network %s: %w", m.project(), err)
	}
	return nil
}

// create creates (does not start) the container of s from the verified
// image ID, on the project network with the given aliases.
func (m *Manager) create(ctx context.Context, version string, s release.Service, imageID, name string, aliases []string) (string, error) {
	if imageID == "" {
		return "", fmt.Errorf("service %s: image not present", s.Name)
	}
	cfg := &container.Config{
		Image:        imageID,
		Cmd:          s.Command,
		Labels:       m.labels(map[string]string{LabelRelease: version, LabelService: s.Name, LabelSpec: SpecHash(s), LabelImage: s.Image, labelRestart: s.Restart}),
		ExposedPorts: network.PortSet{},
	}
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cfg.Env = append(cfg.Env, k+"="+s.Env[k])
	}
	st := int(release.DefaultStopTimeout / time.Second)
	if s.StopTimeout > 0 {
		st = int((time.Duration(s.StopTimeout) + time.Second - 1) / time.Second)
	}
	cfg.StopTimeout = &st
	if h := s.Health; h != nil && h.Kind == release.ContainerHealthDocker && len(h.Command) > 0 {
		cfg.Healthcheck = &container.HealthConfig{Test: h.Command, Interval: time.Duration(h.Interval),
			Timeout: time.Duration(h.Timeout), StartPeriod: time.Duration(h.StartPeriod), Retries: h.Retries}
	}
	hc := &container.HostConfig{PortBindings: network.PortMap{}}
	switch s.Restart {
	case "", release.RestartNo:
	default:
		hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyMode(s.Restart)}
	}
	for _, p := range s.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		port, err := network.ParsePort(strconv.Itoa(p.Container) + "/" + proto)
		if err != nil {
			return "", fmt.Errorf("service %s: %w", s.Name, err)
		}
		cfg.ExposedPorts[port] = struct{}{}
		b := network.PortBinding{HostPort: strconv.Itoa(p.Host)}
		if p.HostIP != "" {
			if b.HostIP, err = netip.ParseAddr(p.HostIP); err != nil {
				return "", fmt.Errorf("service %s: host ip: %w", s.Name, err)
			}
		}
		hc.PortBindings[port] = append(hc.PortBindings[port], b)
	}
	for _, v := range s.Volumes {
		mt := mount.Mount{Type: mount.TypeVolume, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
		if strings.HasPrefix(v.Source, "/") {
			mt.Type = mount.TypeBind
		} else if err := m.volume(ctx, v.Source); err != nil {
			return "", err
		}
		hc.Mounts = append(hc.Mounts, mt)
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		m.project(): {Aliases: aliases},
	}}
	r, err := m.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: hc, NetworkingConfig: nc})
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	return r.ID, nil
}

// volume creates a named volume with the Manager's labels if it is missing.
func (m *Manager) volume(ctx context.Context, name string) error {
	if _, err := m.Client.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if _, err := m.Client.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: m.labels(nil)}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// Rollback undoes the journalled switch: the new containers go, the
// snapshotted volumes are restored and the "-prev" containers come back
// under their names and start. Without a journal it does nothing.
func (m *Manager) Rollback(ctx context.Context) error {
	j, err := m.loadJournal()
	if err != nil || j == nil {
		return err
	}
	m.logf("restore the container set of %s (undo %s)", j.From, j.To)
	var errs []error
	for _, svc := range j.Services {
		for _, n := range []string{m.nextName(svc), m.Name(svc)} {
			c, err := m.inspect(ctx, n)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if c == nil || c.Config.Labels[LabelRelease] != j.To {
				continue
			}
			if _, err := m.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", n, err))
			}
		}
	}
	vols := make([]string, 0, len(j.Backups))
	for v := range j.Backups {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		if err := m.restoreVolume(ctx, v, j.Backups[v]); err != nil {
			errs = append(errs, fmt.Errorf("restore volume %s: %w", v, err))
		}
	}
	for _, svc := range j.Services {
		prev, err := m.inspect(ctx, m.prevName(svc))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		id := ""
		switch cur, err := m.current(ctx, svc); {
		case err != nil:
			errs = append(errs, err)
			continue
		case prev != nil && cur != nil:
			errs = append(errs, fmt.Errorf("both %s and %s exist", m.Name(svc), m.prevName(svc)))
			continue
		case prev != nil:
			if _, err := m.Client.ContainerRename(ctx, prev.ID, client.ContainerRenameOptions{NewName: m.Name(svc)}); err != nil {
				errs = append(errs, fmt.Errorf("rename %s: %w", prev.Name, err))
				continue
			}
			id = prev.ID
			if spec, ok := specRestart(prev); ok {
				if _, err := m.Client.ContainerUpdate(ctx, id, client.ContainerUpdateOptions{RestartPolicy: &spec}); err != nil {
					errs = append(errs, err)
				}
			}
		case cur != nil:
			id = cur.ID // never retired
		default:
			continue // the service is new in the failed release
		}
		if _, err := m.Client.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("start %s: %w", m.Name(svc), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.removeBackups(j)
	return m.dropJournal()
}

// specRestart returns the restart policy a "-prev" container had before
// retire switched it off. The engine keeps no record of it, so create
// stores it in a label.
func specRestart(c *container.InspectResponse) (container.RestartPolicy, bool) {
	p := c.Config.Labels[labelRestart]
	if p == "" {
		return container.RestartPolicy{}, false
	}
	return container.RestartPolicy{Name: container.RestartPolicyMode(p)}, true
}

// labelRestart carries a container's intended restart policy.
const labelRestart = "com.healthguard.ota.restart"

func (m *Manager) dropJournal() error {
	if err := os.Remove(m.journalPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(m.Dir)
}

func (m *Manager) removeBackups(j *journal) {
	if j.To != "" {
		os.RemoveAll(filepath.Join(m.Dir, "backups", j.To))
	}
}

// Committed makes the switch to r final: the "-prev" containers and the
// volume snapshots go, r is recorded in the history and images of releases
// older than the last KeepReleases are pruned.
func (m *Manager) Committed(ctx context.Context, r *release.Manifest) error {
	j, err := m.loadJournal()
	if err != nil {
		return err
	}
	if j != nil {
		for _, svc := range j.Services {
			if c, err := m.inspect(ctx, m.prevName(svc)); err == nil && c != nil {
				if _, err := m.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
					return fmt.Errorf("remove %s: %w", c.Name, err)
				}
			}
		}
		m.removeBackups(j)
	}
	if r != nil && r.Containers != nil {
		if err := m.record(Entry{Version: r.Version, Counter: r.Counter, Containers: r.Containers}); err != nil {
			return err
		}
	}
	if j != nil {
		if err := m.dropJournal(); err != nil {
			return err
		}
	}
	keep := m.KeepReleases
	if keep <= 0 {
		keep = DefaultKeepReleases
	}
	return m.Prune(ctx, keep)
}

// Prune removes the images of committed releases older than the last keep,
// except those a kept release or an existing container still uses.
func (m *Manager) Prune(ctx context.Context, keep int) error {
	h, err := m.History()
	if err != nil || len(h) <= keep {
		return err
	}
	inUse := map[string]bool{}
	for _, e := range h[len(h)-keep:] {
		for _, s := range e.Containers.Services {
			if p, err := parsePinned(s.Image); err == nil {
				inUse[p.canonical()] = true
			}
		}
	}
	f := make(client.Filters).Add("label", LabelProject+"="+m.project())
	cs, err := m.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	for _, c := range cs.Items {
		if p, err := parsePinned(c.Labels[LabelImage]); err == nil {
			inUse[p.canonical()] = true
		}
	}
	for _, e := range h[:len(h)-keep] {
		for _, s := range e.Containers.Services {
			p, err := parsePinned(s.Image)
			if err != nil || inUse[p.canonical()] {
				continue
			}
			m.removeImage(ctx, p)
		}
	}
	return nil
}

func (m *Manager) removeImage(ctx context.Context, p pinned) {
	tag, _ := release.ImagesTag(p.canonical())
	for _, ref := range []string{p.canonical(), tag} {
		if _, err := m.Client.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err == nil {
			m.logf("removed image %s", ref)
		}
	}
}

// removeImagesOf removes the images of the retired containers of the
// services (kill-then-download short of space).
func (m *Manager) removeImagesOf(ctx context.Context, services []string) {
	for _, svc := range services {
		c, err := m.inspect(ctx, m.prevName(svc))
		if err != nil || c == nil {
			continue
		}
		if p, err := parsePinned(c.Config.Labels[LabelImage]); err == nil {
			m.removeImage(ctx, p)
		}
	}
}
