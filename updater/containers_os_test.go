package updater_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater"
	"github.com/healthguard/gateway-ota/updater/containers"
	"github.com/healthguard/gateway-ota/updater/containers/containerstest"
	"github.com/healthguard/gateway-ota/updater/release"
)

// engine is the Docker engine with a registry on the loopback holding the
// test service: "good" answers its health check, "bad" does not. The
// engine's local copies are removed after the push, so the updater pulls
// by digest.
type engine struct {
	cli  *client.Client
	reg  *containerstest.Registry
	id   string
	refs map[string]string // "good", "bad" -> pinned reference
}

func newEngine(t *testing.T) *engine {
	t.Helper()
	if why := containerstest.Available(); why != "" {
		t.Skip(why)
	}
	ctx := context.Background()
	cli, err := containerstest.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		t.Skipf("no Docker engine answers: %v", err)
	}
	reg, err := containerstest.StartRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{cli: cli, reg: reg, id: fmt.Sprintf("updater-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6), refs: map[string]string{}}
	var local []string
	t.Cleanup(func() {
		containerstest.Cleanup(context.Background(), cli, e.id, local...)
		reg.Close()
		cli.Close()
	})
	for _, v := range []string{"good", "bad"} {
		env := map[string]string{"VERSION": v}
		if v == "bad" {
			env["UNHEALTHY"] = "1"
		}
		tag := reg.Host + "/svc:" + v
		if err := containerstest.Build(ctx, cli, containerstest.Image{Tag: tag, Env: env, HealthCheck: true, Test: e.id}); err != nil {
			t.Fatal(err)
		}
		ref, err := containerstest.Push(ctx, cli, tag)
		if err != nil {
			t.Fatal(err)
		}
		e.refs[v] = ref
		local = append(local, tag, ref)
	}
	containerstest.Cleanup(ctx, cli, e.id, local...)
	return e
}

// set is a container set of one service "web" running the image v, on
// host port port, with a volume marked for backup.
func (e *engine) set(project, v string, port int) *release.ContainerSet {
	return &release.ContainerSet{Services: []release.Service{{
		Name:        "web",
		Image:       e.refs[v],
		Ports:       []release.Port{{Host: port, Container: 8080, HostIP: "127.0.0.1"}},
		Volumes:     []release.Volume{{Source: project + "-data", Target: "/data", Backup: true}},
		StopTimeout: release.Duration(5 * time.Second),
		Restart:     release.RestartUnlessStopped,
		Health: &release.ContainerHealth{Kind: release.ContainerHealthHTTP, URL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
			Interval: release.Duration(300 * time.Millisecond), Retries: 5},
	}}}
}

// publishWith builds and publishes OS release v with counter n and the
// container set cs.
func (w *world) publishWith(t *testing.T, v string, n uint64, cs *release.ContainerSet) *release.Manifest {
	t.Helper()
	rootfs, boot := tree(t, w.dir, v)
	m, err := imagebuilder.BuildRelease(context.Background(), imagebuilder.ReleaseOptions{
		Repo: w.repo, Keys: w.keys, RootFS: rootfs, BootDir: boot, Version: v, Counter: n,
		RootSize: testLayout.RootSize, BootSize: testLayout.BootSize, Containers: cs,
		HealthDeadline: 20 * time.Second, Epoch: epoch, WorkDir: w.dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// web checks the service's container: it runs the image ref (by the
// engine's own record of the image, not only the label the manager set),
// is healthy, and answers /version with version.
func (e *engine) web(t *testing.T, project, ref, version string, port int) {
	t.Helper()
	ctx := context.Background()
	c, err := e.cli.ContainerInspect(ctx, project+"-web", client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("container %s-web: %v", project, err)
	}
	if !c.Container.State.Running {
		t.Fatalf("container %s-web is %s", project, c.Container.State.Status)
	}
	img, err := e.cli.ImageInspect(ctx, c.Container.Image)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.RepoDigests, ref) {
		t.Errorf("container %s-web runs an image with digests %v, want %s", project, img.RepoDigests, ref)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if got := get(t, base+"/version"); got != version {
		t.Errorf("version: got %q, want %q", got, version)
	}
	if got := get(t, base+"/healthz"); got != "ok" {
		t.Errorf("health: got %q, want ok", got)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	var last error
	for range 50 {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.TrimSpace(string(b))
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

func put(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %s", url, resp.Status)
	}
}

// containerStatus returns the status of service "web" once the engine's
// health check (the image's HEALTHCHECK, every second) has left
// "starting", or after 15 seconds.
func containerStatus(t *testing.T, u *updater.Updater) containers.ServiceStatus {
	t.Helper()
	var web *containers.ServiceStatus
	for range 75 {
		si, err := u.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		web = nil
		for _, c := range si.Containers {
			if c.Name == "web" {
				web = &c
			}
		}
		if web == nil {
			t.Fatalf("status shows no container web: %+v", si.Containers)
		}
		if web.Health != "starting" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return *web
}

// TestOSAndContainers: OS releases that carry a container set on the
// virtual Pi and the real engine (S7, C2, C3, F5, F8).
//
//  1. 2.0.0 (OS + the good image): with the registry down nothing is armed;
//     then the images are pulled and checked before tryboot is armed, the set starts on the trial boot, and the slot is
//     committed once the container is healthy.
//  2. 3.0.0 (OS + the bad image): the trial starts the new container, it
//     never becomes healthy, the old container comes back with its volume
//     and the Pi reboots to 2.0.0, whose confirmer records the rollback.
//  3. 3.0.0 again (an explicit update retries it), but the power fails on the trial boot after the new
//     container started and wrote into the volume: the next boot is 2.0.0,
//     and its confirmer brings back the old container and the volume.
func TestOSAndContainers(t *testing.T) {
	e := newEngine(t)
	w := newWorld(t)
	ctx := context.Background()
	d := w.device(t)
	project := fmt.Sprintf("otaos%d", time.Now().UnixNano()%1e9)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	u := w.updater(t, d, func(c *updater.Config) {
		c.Containers.Project = project
		c.Containers.Labels = map[string]string{containerstest.LabelTest: e.id}
	})

	// 1. OS + healthy containers. With the registry down the update stops
	// before arming (C2); once it is back, the trial commits.
	w.publishWith(t, "2.0.0", 2, e.set(project, "good", port))
	e.reg.SetDown(true)
	_, err := u.Update(ctx, updater.UpdateOptions{})
	e.reg.SetDown(false)
	if !errors.Is(err, containers.ErrPull) || updater.ExitCode(err) != updater.ExitFailure {
		t.Fatalf("update with the registry down: got %v (exit %d), want ErrPull (exit %d)", err, updater.ExitCode(err), updater.ExitFailure)
	}
	if st := bootStatus(t, d); st.Armed {
		t.Fatalf("tryboot armed although the images are missing: %+v", st)
	}
	ur, err := u.Update(ctx, updater.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ur.Armed || ur.Slot != sdcard.SlotB {
		t.Fatalf("update: %+v", ur)
	}
	if _, err := e.cli.ImageInspect(ctx, e.refs["good"]); err != nil {
		t.Errorf("the image of 2.0.0 is not present when tryboot is armed: %v", err)
	}
	if _, err := e.cli.ContainerInspect(ctx, project+"-web", client.ContainerInspectOptions{}); err == nil {
		t.Error("the container of 2.0.0 runs before the trial boot")
	}
	cr, err := u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseCommitted {
		t.Fatalf("confirm of 2.0.0: %+v %v", cr, err)
	}
	if st := bootStatus(t, d); st.Committed != sdcard.SlotB || st.Slot(sdcard.SlotB).Version != "2.0.0" {
		t.Fatalf("after confirm of 2.0.0: %+v", st)
	}
	e.web(t, project, e.refs["good"], "good", port)
	put(t, base+"/data/note", "written by 2.0.0")
	cs := containerStatus(t, u)
	_, good, _ := release.ImageDigest(e.refs["good"])
	if cs.DesiredImage != good || cs.RunningImage != good || cs.Health != "healthy" || cs.State != "running" {
		t.Errorf("status after 2.0.0: %+v, want desired = running = %s, healthy", cs, good)
	}
	if _, err := d.Reboot(); err != nil {
		t.Fatal(err)
	}
	if cr, err := u.Confirm(ctx); err != nil || cr.Outcome != "nothing" {
		t.Fatalf("confirm on a normal boot: %+v %v", cr, err)
	}

	// 2. OS + unhealthy containers: the trial fails, the old set returns.
	w.publishWith(t, "3.0.0", 3, e.set(project, "bad", port))
	if ur, err := u.Update(ctx, updater.UpdateOptions{}); err != nil || !ur.Armed || ur.Slot != sdcard.SlotA {
		t.Fatalf("update to 3.0.0: %+v %v", ur, err)
	}
	e.web(t, project, e.refs["good"], "good", port) // untouched until the trial
	cr, err = u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseRollingBack || !strings.Contains(cr.Reason, "containers") {
		t.Fatalf("confirm of 3.0.0: %+v %v, want rolling-back for the containers", cr, err)
	}
	if st := bootStatus(t, d); st.Trial || st.Booted != sdcard.SlotB || st.Committed != sdcard.SlotB {
		t.Fatalf("after the failed trial: %+v", st)
	}
	e.web(t, project, e.refs["good"], "good", port)
	if got := get(t, base+"/data/note"); got != "written by 2.0.0" {
		t.Errorf("volume after the rollback: got %q", got)
	}
	cr, err = u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseRolledBack {
		t.Fatalf("confirm after the rollback: %+v %v", cr, err)
	}
	if got := updater.ExitCode(fmt.Errorf("x: %w", updater.ErrContainersRolledBack)); got != updater.ExitRolledBack {
		t.Errorf("exit code of a container rollback: got %d, want %d", got, updater.ExitRolledBack)
	}
	cs = containerStatus(t, u)
	if cs.DesiredImage != good || cs.RunningImage != good || cs.Health != "healthy" || cs.Release != "2.0.0" {
		t.Errorf("status after the rollback: %+v, want 2.0.0's %s, healthy", cs, good)
	}

	// 3. Power cut on the trial boot after the new set started.
	if ur, err := u.Update(ctx, updater.UpdateOptions{Version: "3.0.0"}); err != nil || !ur.Armed {
		t.Fatalf("update to 3.0.0 again: %+v %v", ur, err)
	}
	mgr := &containers.Manager{Client: e.cli, Dir: d.Root() + "/data/ota/containers", Project: project,
		Labels: map[string]string{containerstest.LabelTest: e.id}, Logf: t.Logf}
	from, err := mgr.Current()
	if err != nil || from == nil || from.Version != "2.0.0" {
		t.Fatalf("committed set: %+v %v", from, err)
	}
	m3 := &release.Manifest{Version: "3.0.0", Counter: 3, Containers: e.set(project, "bad", port)}
	if _, err := mgr.Apply(ctx, &release.Manifest{Version: from.Version, Containers: from.Containers}, m3, ""); err != nil {
		t.Fatal(err)
	}
	if got := get(t, base+"/version"); got != "bad" {
		t.Fatalf("version on the trial: got %q, want bad", got)
	}
	put(t, base+"/data/note", "migrated by 3.0.0")
	if _, err := d.PowerCut(); err != nil {
		t.Fatal(err)
	}
	if st := bootStatus(t, d); st.Trial || st.Booted != sdcard.SlotB {
		t.Fatalf("after the power cut: %+v", st)
	}
	cr, err = u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseRolledBack {
		t.Fatalf("confirm after the power cut: %+v %v", cr, err)
	}
	e.web(t, project, e.refs["good"], "good", port)
	if got := get(t, base+"/data/note"); got != "written by 2.0.0" {
		t.Errorf("volume after the power cut: got %q, want the snapshot", got)
	}
	if pending, _, err := mgr.Pending(); err != nil || pending {
		t.Errorf("switch still pending: %v %v", pending, err)
	}
}
