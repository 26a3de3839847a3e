package main

import (
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/healthguard/gateway-ota/manifest-server/registry"
	"github.com/healthguard/gateway-ota/updater/release"
)

// TestReleaseWithComposeAndEmbeddedImages builds an OS release whose container set
// comes from a compose file naming an image built on this host only: the image is
// pushed to the registry and pinned, and --embed-images carries it as the images
// payload, which the real engine loads under release.ImagesTag.
func TestReleaseWithComposeAndEmbeddedImages(t *testing.T) {
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("skipping: no Docker engine at /var/run/docker.sock")
	}
	for _, tool := range []string{"docker", "mkfs.vfat", "mcopy", "mkfs.ext4", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not in PATH", tool)
		}
	}
	dir := t.TempDir()
	keys, repo := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	if out, err := runImagebuilder(t, "keygen", "--out", keys); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	if out, err := runImagebuilder(t, "init-repo", "--keys", keys, "--repo", repo); err != nil {
		t.Fatalf("init-repo: %v\n%s", err, out)
	}
	rootfs, boot := filepath.Join(dir, "rootfs"), filepath.Join(dir, "boot")
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc", "os-release"), []byte("ID=test\n"), 0o644)
	os.MkdirAll(boot, 0o755)
	os.WriteFile(filepath.Join(boot, "cmdline.txt"), []byte("console=tty1 root=PARTUUID=00000000-00 rootwait\n"), 0o644)

	reg, err := registry.New(filepath.Join(dir, "registry"), registry.Options{Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()

	rnd := make([]byte, 4)
	rand.Read(rnd)
	image := "healthguard/embed-test-" + hex.EncodeToString(rnd) + ":1.0"
	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "id"), rnd, 0o644)
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY id /id\n"), 0o644)
	if out, err := exec.Command("docker", "build", "-q", "--label", "com.healthguard.ota.test="+hex.EncodeToString(rnd), "-t", image, ctxDir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })
	composeFile := filepath.Join(dir, "compose.yaml")
	os.WriteFile(composeFile, []byte("services:\n  app:\n    image: ${IMAGE}\n    healthcheck:\n      interval: 5s\n"), 0o644)

	out, err := runImagebuilder(t, "release", "--repo", repo, "--keys", keys, "--rootfs", rootfs, "--boot", boot,
		"--version", "1.0.0", "--counter", "1", "--root-size", "64M", "--boot-size", "40M", "-q",
		"--compose", composeFile, "--env", "IMAGE="+image, "--registry-url", srv.URL, "--embed-images")
	relFlags.composeFile, relFlags.env, relFlags.embedImages = "", nil, false
	if err != nil {
		t.Fatalf("release: %v\n%s", err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(repo, "targets", "releases", "1.0.0", "*.release.json"))
	if len(matches) != 1 {
		t.Fatalf("%d manifests published", len(matches))
	}
	data, _ := os.ReadFile(matches[0])
	m, err := release.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Containers == nil || len(m.Containers.Services) != 1 {
		t.Fatalf("containers = %+v", m.Containers)
	}
	svc := m.Containers.Services[0]
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(svc.Image, host+"/"+strings.TrimSuffix(image, ":1.0")+":1.0@sha256:") {
		t.Errorf("image %s is not pinned on the registry", svc.Image)
	}
	if svc.Health == nil || svc.Health.Kind != release.ContainerHealthDocker {
		t.Errorf("health = %+v, want the image's docker healthcheck", svc.Health)
	}
	var images *release.Payload
	for i, p := range m.Payloads {
		if p.Kind == release.KindImages {
			images = &m.Payloads[i]
		}
	}
	if images == nil || images.Target != release.PayloadPath("1.0.0", release.ImagesPayloadName) || images.For != release.ForImages {
		t.Fatalf("images payload = %+v", images)
	}

	// The device's side: decompress and load with the real engine.
	xzFiles, _ := filepath.Glob(filepath.Join(repo, "targets", "releases", "1.0.0", "*."+release.ImagesPayloadName))
	if len(xzFiles) != 1 {
		t.Fatalf("images payload files: %v", xzFiles)
	}
	f, err := os.Open(xzFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := xz.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	load := exec.Command("docker", "load")
	load.Stdin = zr
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	loaded, _ := release.ImagesTag(svc.Image)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", loaded).Run() })
	if out, err := exec.Command("docker", "image", "inspect", loaded).CombinedOutput(); err != nil {
		t.Errorf("image %s after load: %v\n%s", loaded, err, out)
	}
}
