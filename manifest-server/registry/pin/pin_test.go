package pin_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/manifest-server/registry"
	"github.com/healthguard/gateway-ota/manifest-server/registry/pin"
	"github.com/healthguard/gateway-ota/updater/release"
)

func newRegistry(t *testing.T) string {
	t.Helper()
	r, err := registry.New(t.TempDir(), registry.Options{Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func engine(t *testing.T) *client.Client {
	t.Helper()
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("skipping: no Docker engine at /var/run/docker.sock")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipping: no docker command to build the test image")
	}
	c, err := client.New(client.WithHost("unix:///var/run/docker.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// buildScratch builds an image FROM scratch with random content as ref and
// removes it at cleanup.
func buildScratch(t *testing.T, ref string) {
	t.Helper()
	id := make([]byte, 8)
	rand.Read(id)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "id"), []byte(hex.EncodeToString(id)), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY id /id\n"), 0o644)
	label := "com.healthguard.ota.test=" + hex.EncodeToString(id)
	if out, err := exec.Command("docker", "build", "-q", "--label", label, "-t", ref, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "images", "-q", "--filter", "label="+label).Output()
		for _, id := range strings.Fields(string(out)) {
			exec.Command("docker", "rmi", "-f", id).Run()
		}
	})
}

func TestPinPushesLocalImage(t *testing.T) {
	c := engine(t)
	host := newRegistry(t)
	rnd := make([]byte, 4)
	rand.Read(rnd)
	local := "healthguard/pin-test-" + hex.EncodeToString(rnd) + ":1.2.0"
	buildScratch(t, local)

	r := &pin.Resolver{PushTo: host, Engine: c, Logf: t.Logf}
	p, err := r.Pin(context.Background(), local)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Pushed {
		t.Errorf("Pushed = false, want true for an image only in the engine")
	}
	wantPrefix := host + "/" + strings.TrimSuffix(local, ":1.2.0") + ":1.2.0@sha256:"
	if !strings.HasPrefix(p.Ref, wantPrefix) {
		t.Errorf("Ref = %q, want prefix %q", p.Ref, wantPrefix)
	}
	if err := release.ValidImageRef(p.Ref); err != nil {
		t.Errorf("pinned ref does not validate: %v", err)
	}
	// Pinning the pinned reference again checks the registry holds it.
	again, err := r.Pin(context.Background(), p.Ref)
	if err != nil || again.Ref != p.Ref || again.Pushed {
		t.Errorf("Pin(pinned) = %+v, %v; want the same ref, not pushed", again, err)
	}
}

// TestMovedTag (threat C1): after a release pinned app:1.0, the registry serves a
// different image for the same tag. Resolving the tag now gives another digest, and
// the pinned reference still names, and gets, exactly the signed image.
func TestMovedTag(t *testing.T) {
	host := newRegistry(t)
	tag := host + "/app:1.0"
	first, _ := random.Image(512, 1)
	if err := remote.Write(mustTag(t, tag), first); err != nil {
		t.Fatal(err)
	}
	r := &pin.Resolver{PushTo: host}
	signed, err := r.Pin(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := first.Digest()
	if signed.Digest != d1.String() || !strings.HasSuffix(signed.Ref, "@"+d1.String()) {
		t.Fatalf("pinned %+v, want digest %s", signed, d1)
	}

	second, _ := random.Image(512, 1)
	if err := remote.Write(mustTag(t, tag), second); err != nil {
		t.Fatal(err)
	}
	moved, err := r.Pin(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Digest == signed.Digest {
		t.Fatalf("moved tag resolves to the signed digest %s", moved.Digest)
	}
	ref, err := name.NewDigest(strings.Replace(signed.Ref, ":1.0@", "@", 1))
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := img.Digest(); got != d1 {
		t.Errorf("the pinned reference fetches %s, want %s", got, d1)
	}
}

func TestPinRefusesUnknownDigest(t *testing.T) {
	host := newRegistry(t)
	r := &pin.Resolver{PushTo: host}
	if _, err := r.Pin(context.Background(), host+"/app@sha256:"+strings.Repeat("a", 64)); err == nil {
		t.Errorf("Pin of a digest the registry does not hold succeeded")
	}
	if _, err := r.Pin(context.Background(), host+"/app:missing"); err == nil {
		t.Errorf("Pin of a missing tag succeeded")
	}
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// TestSaveLoads: the embedded images payload loads into the real engine under
// release.ImagesTag, as the image whose config the pinned manifest names.
func TestSaveLoads(t *testing.T) {
	c := engine(t)
	host := newRegistry(t)
	img, _ := random.Image(256, 1)
	rnd := make([]byte, 4)
	rand.Read(rnd)
	tag := host + "/save-test-" + hex.EncodeToString(rnd) + ":1.0"
	if err := remote.Write(mustTag(t, tag), img); err != nil {
		t.Fatal(err)
	}
	r := &pin.Resolver{PushTo: host}
	p, err := r.Pin(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "images.tar")
	f, _ := os.Create(tarPath)
	if err := r.Save(context.Background(), f, []string{p.Ref}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("docker", "load", "-i", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	loaded, _ := release.ImagesTag(p.Ref)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", loaded).Run() })
	got, err := c.ImageInspect(context.Background(), loaded)
	if err != nil {
		t.Fatalf("inspect %s after load: %v", loaded, err)
	}
	cfg, _ := img.ConfigName()
	if got.ID != cfg.String() {
		t.Errorf("loaded image ID %s, want the config digest %s", got.ID, cfg)
	}
	if err := r.Save(context.Background(), io.Discard, []string{tag}); err == nil {
		t.Errorf("Save of an unpinned reference succeeded")
	}
}
