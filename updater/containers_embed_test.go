package updater_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/manifest-server/registry/pin"
	"github.com/healthguard/gateway-ota/updater"
	"github.com/healthguard/gateway-ota/updater/containers/containerstest"
	"github.com/healthguard/gateway-ota/updater/release"
)

// TestEmbeddedImagesAirGapped installs an OS + container release built
// with the images embedded (imagebuilder release --embed-images) on a
// gateway that cannot reach the registry: the images come from the signed
// images payload, loaded with the engine's image load, and the trial
// commits with the container healthy.
func TestEmbeddedImagesAirGapped(t *testing.T) {
	e := newEngine(t)
	w := newWorld(t)
	ctx := context.Background()
	d := w.device(t)
	project := fmt.Sprintf("otaembed%d", time.Now().UnixNano()%1e9)
	port := freePort(t)
	ref := e.refs["good"]
	tag, _ := release.ImagesTag(ref)
	t.Cleanup(func() { containerstest.Cleanup(context.Background(), e.cli, e.id, tag) })

	// The build side saves the pinned image from the registry.
	tarPath := filepath.Join(t.TempDir(), "images.tar")
	tf, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&pin.Resolver{Insecure: []string{e.reg.Host}}).Save(ctx, tf, []string{ref}); err != nil {
		t.Fatal(err)
	}
	if err := tf.Close(); err != nil {
		t.Fatal(err)
	}
	rootfs, boot := tree(t, w.dir, "2.0.0")
	m, err := imagebuilder.BuildRelease(ctx, imagebuilder.ReleaseOptions{
		Repo: w.repo, Keys: w.keys, RootFS: rootfs, BootDir: boot, Version: "2.0.0", Counter: 2,
		RootSize: testLayout.RootSize, BootSize: testLayout.BootSize, Containers: e.set(project, "good", port),
		ImagesTar: tarPath, HealthDeadline: 20 * time.Second, Epoch: epoch, WorkDir: w.dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	embedded := false
	for _, p := range m.Payloads {
		embedded = embedded || p.Kind == release.KindImages
	}
	if !embedded {
		t.Fatalf("release 2.0.0 has no images payload: %+v", m.Payloads)
	}

	// The gateway is air-gapped: the registry is down for the whole update.
	e.reg.SetDown(true)
	t.Cleanup(func() { e.reg.SetDown(false) })
	if _, err := e.cli.ImageInspect(ctx, tag); err == nil {
		t.Fatal("the engine holds the image before the update")
	}
	u := w.updater(t, d, func(c *updater.Config) {
		c.Containers.Project = project
		c.Containers.Labels = map[string]string{containerstest.LabelTest: e.id}
	})
	ur, err := u.Update(ctx, updater.UpdateOptions{})
	if err != nil || !ur.Armed {
		t.Fatalf("air-gapped update: %+v %v", ur, err)
	}
	img, err := e.cli.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatalf("the embedded image is not loaded when tryboot is armed: %v", err)
	}
	cr, err := u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseCommitted {
		t.Fatalf("confirm of 2.0.0: %+v %v", cr, err)
	}
	c, err := e.cli.ContainerInspect(ctx, project+"-web", client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Container.Image != img.ID {
		t.Errorf("the container runs image %s, want the loaded %s", c.Container.Image, img.ID)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if got := get(t, base+"/version"); got != "good" {
		t.Errorf("version: got %q, want good", got)
	}
	_, digest, _ := release.ImageDigest(ref)
	if cs := containerStatus(t, u); cs.DesiredImage != digest || cs.Health != "healthy" {
		t.Errorf("status: %+v, want desired %s, healthy", cs, digest)
	}
	// The images payload is not kept once loaded.
	if left, _ := filepath.Glob(filepath.Join(d.Root(), "data", "ota", "downloads", "*")); len(left) > 0 {
		t.Errorf("downloads left behind: %v", left)
	}
}
