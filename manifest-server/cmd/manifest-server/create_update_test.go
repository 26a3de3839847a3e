package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/manifest-server/registry"
	"github.com/healthguard/gateway-ota/updater/release"
)

// TestCreateUpdate runs the quick start: an image built on this host only, pushed
// to the registry, pinned, published as a signed container-only release; then a
// compose release with the next counter.
func TestCreateUpdate(t *testing.T) {
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("skipping: no Docker engine at /var/run/docker.sock")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipping: no docker command to build the test image")
	}
	keys, repoDir := t.TempDir(), t.TempDir()
	if err := publish.Keygen(keys, publish.KeygenOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Init(repoDir, keys, publish.Options{}); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(t.TempDir(), registry.Options{Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()

	rnd := make([]byte, 4)
	rand.Read(rnd)
	image := "healthguard/mqtt-bridge-" + hex.EncodeToString(rnd) + ":1.2.0"
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "id"), rnd, 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY id /id\n"), 0o644)
	label := "com.healthguard.ota.test=" + hex.EncodeToString(rnd)
	if out, err := exec.Command("docker", "build", "-q", "--label", label, "-t", image, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	var out bytes.Buffer
	c := createUpdateConfig{
		version: "1.2.0", images: []string{image}, channel: "stable", compatible: "rpi4",
		healthDeadline: time.Minute, repo: repoDir, keys: keys, registryURL: srv.URL,
		dockerHost: "unix:///var/run/docker.sock",
	}
	if err := createUpdate(context.Background(), c, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("output:\n%s", out.String())
	m := readManifest(t, repoDir, "1.2.0")
	if !m.ContainerOnly() || m.Counter != 1 {
		t.Errorf("release: container-only %v counter %d, want true 1", m.ContainerOnly(), m.Counter)
	}
	svc := m.Containers.Services[0]
	if want := "mqtt-bridge-" + hex.EncodeToString(rnd); svc.Name != want {
		t.Errorf("service name %q, want %q", svc.Name, want)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(svc.Image, host+"/"+strings.TrimSuffix(image, ":1.2.0")+":1.2.0@sha256:") {
		t.Errorf("image %q is not pinned on the registry", svc.Image)
	}
	if !strings.Contains(out.String(), svc.Image) {
		t.Errorf("output does not name the pinned digest %s:\n%s", svc.Image, out.String())
	}
	_, digest, _ := release.ImageDigest(svc.Image)
	name, _, _ := release.ImageDigest(svc.Image)
	ref, err := parseDigest(name + "@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref); err != nil {
		t.Errorf("the registry does not hold the pinned image: %v", err)
	}

	// A compose release referring to the image now on the registry.
	composeFile := filepath.Join(t.TempDir(), "compose.yaml")
	os.WriteFile(composeFile, []byte("x-ota-strategy: hand-over\nservices:\n  bridge:\n    image: ${IMAGE}\n    x-ota-hand-over: true\n    ports: [\"18080:8080\"]\n"), 0o644)
	out.Reset()
	c.version, c.images, c.composeFile = "1.2.1", nil, composeFile
	c.env = []string{"IMAGE=" + host + "/" + image}
	c.minOSCounter = 1
	if err := createUpdate(context.Background(), c, &out); err != nil {
		t.Fatal(err)
	}
	m2 := readManifest(t, repoDir, "1.2.1")
	if m2.Counter != 2 || m2.MinOSCounter != 1 || m2.Containers.Strategy != release.StrategyHandOver {
		t.Errorf("compose release: counter %d min-os %d strategy %q", m2.Counter, m2.MinOSCounter, m2.Containers.Strategy)
	}
	if got := m2.Containers.Services[0].Image; got != svc.Image {
		t.Errorf("compose release pins %s, want the same image %s", got, svc.Image)
	}

	// Neither or both sources.
	c.images = []string{image}
	if err := createUpdate(context.Background(), c, &out); err == nil {
		t.Errorf("create-update with --docker-image and --compose succeeded")
	}
}

func parseDigest(s string) (name.Digest, error) { return name.NewDigest(s, name.Insecure) }

func readManifest(t *testing.T, repoDir, version string) *release.Manifest {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(repoDir, "targets", "releases", version, "*.release.json"))
	if len(matches) != 1 {
		t.Fatalf("release %s: %d manifests in the repository: %v", version, len(matches), matches)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	m, err := release.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
