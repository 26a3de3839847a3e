package containers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/updater/containers"
	"github.com/healthguard/gateway-ota/updater/containers/containerstest"
	"github.com/healthguard/gateway-ota/updater/release"
)

// fixture is the engine, a registry on the loopback and three versions of
// the test service pushed to it: 1 and 2 healthy, 3 unhealthy, 4 pulled by
// no test (the engine keeps manifests it pulled by digest, so only a digest
// it never saw makes it ask the registry). The local
// copies are removed after the push, so the manager has to pull.
type fixture struct {
	cli  *client.Client
	reg  *containerstest.Registry
	refs map[string]string // version -> pinned reference
	id   string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func setup(t *testing.T) *fixture {
	t.Helper()
	if why := containerstest.Available(); why != "" {
		t.Skip(why)
	}
	fixOnce.Do(func() { fix, fixErr = newFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func newFixture() (*fixture, error) {
	ctx := context.Background()
	cli, err := containerstest.Client()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ota-registry-")
	if err != nil {
		return nil, err
	}
	reg, err := containerstest.StartRegistry(dir)
	if err != nil {
		return nil, err
	}
	f := &fixture{cli: cli, reg: reg, refs: map[string]string{}, id: fmt.Sprintf("containers-%d", os.Getpid())}
	for _, v := range []string{"1", "2", "3", "4"} {
		env := map[string]string{"VERSION": v}
		if v == "3" {
			env["UNHEALTHY"] = "1"
		}
		tag := reg.Host + "/svc:" + v
		if err := containerstest.Build(ctx, cli, containerstest.Image{Tag: tag, Env: env, HealthCheck: true, Test: f.id}); err != nil {
			return nil, err
		}
		ref, err := containerstest.Push(ctx, cli, tag)
		if err != nil {
			return nil, err
		}
		f.refs[v] = ref
	}
	f.removeLocal()
	return f, nil
}

// removeLocal removes the engine's copies of the test images.
func (f *fixture) removeLocal() {
	var refs []string
	for v, ref := range f.refs {
		refs = append(refs, ref, f.reg.Host+"/svc:"+v)
	}
	containerstest.Cleanup(context.Background(), f.cli, f.id, refs...)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		fix.removeLocal()
		fix.reg.Close()
	}
	os.Exit(code)
}

// manager makes a Manager with its own project; everything it creates is
// removed when the test ends.
func (f *fixture) manager(t *testing.T) *containers.Manager {
	t.Helper()
	project := fmt.Sprintf("otatest%d", time.Now().UnixNano()%1e9)
	m := &containers.Manager{Client: f.cli, Dir: t.TempDir(), Project: project, Logf: t.Logf,
		Labels: map[string]string{containerstest.LabelTest: f.id + "-" + project}}
	t.Cleanup(func() { containerstest.Cleanup(context.Background(), f.cli, f.id+"-"+project) })
	return m
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// rel is a container-only release of the service at version v.
func (f *fixture) rel(m *containers.Manager, version string, counter uint64, v string, port int) *release.Manifest {
	return &release.Manifest{Version: version, Counter: counter, HealthDeadline: release.Duration(20 * time.Second),
		Containers: &release.ContainerSet{Services: []release.Service{{
			Name:        "web",
			Image:       f.refs[v],
			Ports:       []release.Port{{Host: port, Container: 8080, HostIP: "127.0.0.1"}},
			Volumes:     []release.Volume{{Source: m.Name("data"), Target: "/data", Backup: true}},
			StopTimeout: release.Duration(5 * time.Second),
			Restart:     release.RestartUnlessStopped,
			Health: &release.ContainerHealth{Kind: release.ContainerHealthHTTP, URL: fmt.Sprintf("http://127.0.0.1:%d/healthz", port),
				Interval: release.Duration(300 * time.Millisecond), Retries: 5},
		}}}}
}

func httpDo(t *testing.T, method, url, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; ; i++ {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("%s %s: %s", method, url, resp.Status)
			}
			return strings.TrimSpace(string(b))
		}
		if i == 50 {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// install applies r from nothing, waits for health and commits.
func install(t *testing.T, m *containers.Manager, from, r *release.Manifest, strategy string) {
	t.Helper()
	ctx := context.Background()
	restore, err := m.Apply(ctx, from, r, strategy)
	if err != nil {
		t.Fatalf("apply %s: %v", r.Version, err)
	}
	if err := m.WaitHealthy(ctx, r.Containers, time.Duration(r.HealthDeadline)); err != nil {
		restore(ctx)
		t.Fatalf("%s unhealthy: %v", r.Version, err)
	}
	if err := m.Committed(ctx, r); err != nil {
		t.Fatal(err)
	}
}

func containerID(t *testing.T, m *containers.Manager, f *fixture, name string) string {
	t.Helper()
	r, err := f.cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	return r.Container.ID
}

func gone(t *testing.T, f *fixture, name string) {
	t.Helper()
	if _, err := f.cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{}); err == nil {
		t.Errorf("container %s still exists", name)
	}
}

// TestContainerOnlyUpdate: 1.0 is installed, then 2.0 with download-then-
// kill: the new container runs, the old one is gone, the volume's data
// stayed, and the status shows the desired digest running.
func TestContainerOnlyUpdate(t *testing.T) {
	f := setup(t)
	m := f.manager(t)
	ctx := context.Background()
	port := freePort(t)
	r1, r2 := f.rel(m, "1.0", 1, "1", port), f.rel(m, "2.0", 2, "2", port)
	install(t, m, nil, r1, "")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if got := httpDo(t, "GET", base+"/version", ""); got != "1" {
		t.Fatalf("version: got %q, want 1", got)
	}
	httpDo(t, "PUT", base+"/data/note", "kept")
	install(t, m, r1, r2, release.StrategyDownloadThenKill)
	if got := httpDo(t, "GET", base+"/version", ""); got != "2" {
		t.Fatalf("version after the update: got %q, want 2", got)
	}
	if got := httpDo(t, "GET", base+"/data/note", ""); got != "kept" {
		t.Fatalf("volume data: got %q, want kept", got)
	}
	gone(t, f, m.Name("web")+"-prev")
	st, err := m.Status(ctx, r2.Containers)
	if err != nil {
		t.Fatal(err)
	}
	_, want, _ := release.ImageDigest(f.refs["2"])
	if len(st) != 1 || st[0].DesiredImage != want || st[0].RunningImage != want || st[0].State != "running" || st[0].Release != "2.0" {
		t.Fatalf("status: got %+v, want web running %s", st, want)
	}
	if cur, err := m.Current(); err != nil || cur.Version != "2.0" {
		t.Fatalf("current: got %+v %v, want 2.0", cur, err)
	}
	// Applying the running set again changes nothing.
	id := containerID(t, m, f, m.Name("web"))
	install(t, m, r2, r2, "")
	if got := containerID(t, m, f, m.Name("web")); got != id {
		t.Fatal("re-applying the running set recreated its container")
	}
}

// TestUnhealthyRestoresOldSetAndVolume: 3.0's container is unhealthy and
// writes into the volume; the rollback brings back 1.0's container and the
// volume as it was before the switch (C3, F8).
func TestUnhealthyRestoresOldSetAndVolume(t *testing.T) {
	f := setup(t)
	m := f.manager(t)
	ctx := context.Background()
	port := freePort(t)
	r1, r3 := f.rel(m, "1.0", 1, "1", port), f.rel(m, "3.0", 3, "3", port)
	install(t, m, nil, r1, "")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	httpDo(t, "PUT", base+"/data/note", "before")
	oldID := containerID(t, m, f, m.Name("web"))

	restore, err := m.Apply(ctx, r1, r3, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := httpDo(t, "GET", base+"/version", ""); got != "3" {
		t.Fatalf("version after the switch: got %q, want 3", got)
	}
	httpDo(t, "PUT", base+"/data/note", "migrated by 3.0")
	httpDo(t, "PUT", base+"/data/added", "by 3.0")
	start := time.Now()
	err = m.WaitHealthy(ctx, r3.Containers, time.Duration(r3.HealthDeadline))
	if !errors.Is(err, containers.ErrUnhealthy) {
		t.Fatalf("health of 3.0: got %v, want ErrUnhealthy", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("unhealthy judged after %v: retries should end it early", d)
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	if got := containerID(t, m, f, m.Name("web")); got != oldID {
		t.Errorf("the container running after the rollback is not 1.0's")
	}
	if got := httpDo(t, "GET", base+"/version", ""); got != "1" {
		t.Fatalf("version after the rollback: got %q, want 1", got)
	}
	if got := httpDo(t, "GET", base+"/data/note", ""); got != "before" {
		t.Fatalf("volume after the rollback: got %q, want %q", got, "before")
	}
	resp, err := http.Get(base + "/data/added")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("a file 3.0 added survived the rollback: %s", resp.Status)
	}
	if pending, _, err := m.Pending(); err != nil || pending {
		t.Errorf("switch still pending after the rollback: %v %v", pending, err)
	}
}

// TestRegistryServesOtherImage: the registry answers the pinned digest of
// 2 with the manifest of 1 (a tampered registry). Ensure refuses it (C1)
// and the running set is untouched.
func TestRegistryServesOtherImage(t *testing.T) {
	f := setup(t)
	m := f.manager(t)
	ctx := context.Background()
	port := freePort(t)
	r1, r2 := f.rel(m, "1.0", 1, "1", port), f.rel(m, "4.0", 4, "4", port)
	install(t, m, nil, r1, "")
	oldID := containerID(t, m, f, m.Name("web"))
	_, d1, _ := release.ImageDigest(f.refs["1"])
	_, d2, _ := release.ImageDigest(f.refs["4"])
	f.reg.SetTamper(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/manifests/"+d2) {
			return false
		}
		// Serve 1's manifest under 2's digest, claiming it is 2's.
		req, _ := http.NewRequest(r.Method, "http://"+f.reg.Host+strings.TrimSuffix(r.URL.Path, d2)+d1, nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return true
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Docker-Content-Digest", d2)
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return true
	})
	defer f.reg.SetTamper(nil)
	_, err := m.Apply(ctx, r1, r2, "")
	if !errors.Is(err, containers.ErrDigestMismatch) {
		t.Fatalf("apply from a tampered registry: got %v, want ErrDigestMismatch", err)
	}
	if got := containerID(t, m, f, m.Name("web")); got != oldID {
		t.Fatal("the running container changed")
	}
	if got := httpDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/version", port), ""); got != "1" {
		t.Fatalf("version: got %q, want 1", got)
	}
}

// TestMovedTagIsIgnored: the tag "1" is moved to the image of 2 in the
// registry; a set pinning 1's digest still runs 1.
func TestMovedTagIsIgnored(t *testing.T) {
	f := setup(t)
	m := f.manager(t)
	port := freePort(t)
	ctx := context.Background()
	f.removeLocal()
	// Move the tag: pull 2, tag it as 1, push.
	tag := f.reg.Host + "/svc:1"
	if err := m.Ensure(ctx, f.rel(m, "2.0", 2, "2", port).Containers); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.ImageTag(ctx, client.ImageTagOptions{Source: f.refs["2"], Target: tag}); err != nil {
		t.Fatal(err)
	}
	if _, err := containerstest.Push(ctx, f.cli, tag); err != nil {
		t.Fatal(err)
	}
	f.removeLocal()
	defer func() {
		// Put the tag back for the other tests.
		m.Ensure(ctx, f.rel(m, "1.0", 1, "1", port).Containers)
		f.cli.ImageTag(ctx, client.ImageTagOptions{Source: f.refs["1"], Target: tag})
		containerstest.Push(ctx, f.cli, tag)
		f.removeLocal()
	}()
	r1 := f.rel(m, "1.0", 1, "1", port)
	r1.Containers.Services[0].Image = tag + "@" + strings.SplitN(f.refs["1"], "@", 2)[1]
	install(t, m, nil, r1, "")
	if got := httpDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/version", port), ""); got != "1" {
		t.Fatalf("version: got %q, want 1 (the digest rules, not the tag)", got)
	}
}

// TestRegistryDownLeavesOldSet: with the registry down the pull fails and
// the old container keeps running untouched (C2).
func TestRegistryDownLeavesOldSet(t *testing.T) {
	f := setup(t)
	m := f.manager(t)
	ctx := context.Background()
	port := freePort(t)
	r1, r2 := f.rel(m, "1.0", 1, "1", port), f.rel(m, "2.0", 2, "2", port)
	install(t, m, nil, r1, "")
	oldID := containerID(t, m, f, m.Name("web"))
	f.cli.ImageRemove(ctx, f.refs["2"], client.ImageRemoveOptions{Force: true})
	f.reg.SetDown(true)
	defer f.reg.SetDown(false)
	for _, strategy := range []string{release.StrategyDownloadThenKill, release.StrategyHandOver} {
		_, err := m.Apply(ctx, r1, r2, strategy)
		if !errors.Is(err, containers.ErrPull) {
			t.Fatalf("%s with the registry down: got %v, want ErrPull", strategy, err)
		}
		if got := containerID(t, m, f, m.Name("web")); got != oldID {
			t.Fatal("the running container changed")
		}
		if pending, _, _ := m.Pending(); pending {
			t.Fatal("a switch was journalled")
		}
	}
	// Kill-then-download stops first by definition; a failed pull brings
	// the old container back.
	_, err := m.Apply(ctx, r1, r2, release.StrategyKillThenDownload)
	if !errors.Is(err, containers.ErrPull) {
		t.Fatalf("kill-then-download with the registry down: got %v, want ErrPull", err)
	}
	if got := containerID(t, m, f, m.Name("web")); got != oldID {
		t.Fatal("kill-then-download did not restore the old container")
	}
	if got := httpDo(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/version", port), ""); got != "1" {
		t.Fatalf("version: got %q, want 1", got)
	}
}

// TestHandOver: the service allows hand-over and publishes no host port;
// the new container is healthy before the old one stops.
func TestHandOver(t *testing.T) {
	f := setup(t)
	m := f.manager(t)
	ctx := context.Background()
	mk := func(version string, counter uint64, v string) *release.Manifest {
		return &release.Manifest{Version: version, Counter: counter, HealthDeadline: release.Duration(20 * time.Second),
			Containers: &release.ContainerSet{Strategy: release.StrategyHandOver, Services: []release.Service{{
				Name: "web", Image: f.refs[v], HandOver: true,
				Health: &release.ContainerHealth{Kind: release.ContainerHealthHTTP, URL: "http://web:8080/healthz",
					Interval: release.Duration(200 * time.Millisecond), Retries: 5},
			}}}}
	}
	r1, r2, r3 := mk("1.0", 1, "1"), mk("2.0", 2, "2"), mk("3.0", 3, "3")
	install(t, m, nil, r1, "")
	oldID := currentID(t, m, f)
	install(t, m, r1, r2, "")
	if got := currentID(t, m, f); got == oldID {
		t.Fatal("hand-over left the old container")
	}
	gone(t, f, m.Name("web")+"-prev")
	gone(t, f, m.Name("web")) // the new one keeps its "-next" name
	// An unhealthy new container never replaces the old one.
	id2 := currentID(t, m, f)
	if _, err := m.Apply(ctx, r2, r3, ""); !errors.Is(err, containers.ErrUnhealthy) {
		t.Fatalf("hand-over to an unhealthy release: got %v, want ErrUnhealthy", err)
	}
	if got := currentID(t, m, f); got != id2 {
		t.Fatal("the old container was replaced")
	}
	gone(t, f, m.Name("web"))
	gone(t, f, m.Name("web")+"-prev")
	st, err := m.Status(ctx, r2.Containers)
	if err != nil || len(st) != 1 || st[0].State != "running" || st[0].Release != "2.0" {
		t.Fatalf("status: %+v %v", st, err)
	}
}

// currentID is the ID of the service's current container, under either
// of its names.
func currentID(t *testing.T, m *containers.Manager, f *fixture) string {
	t.Helper()
	for _, n := range []string{m.Name("web"), m.Name("web") + "-next"} {
		if r, err := f.cli.ContainerInspect(context.Background(), n, client.ContainerInspectOptions{}); err == nil {
			return r.Container.ID
		}
	}
	t.Fatal("no container for web")
	return ""
}
