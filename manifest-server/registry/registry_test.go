package registry_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/healthguard/gateway-ota/manifest-server/registry"
)

// testLabel marks every image these tests build, for cleanup.
const testLabel = "com.healthguard.ota.test"

func newRegistry(t *testing.T, dir string) *registry.Registry {
	t.Helper()
	r, err := registry.New(dir, registry.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// serve starts r on a loopback port, which Docker treats as an insecure registry.
func serve(t *testing.T, r http.Handler) (host string) {
	t.Helper()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func needDocker(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("skipping: no Docker engine at /var/run/docker.sock")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipping: no docker command in PATH")
	}
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// buildScratch builds an image FROM scratch holding one file with random content,
// tagged ref, and removes it (and every tag the test adds) at cleanup.
func buildScratch(t *testing.T, ref string) {
	t.Helper()
	id := make([]byte, 8)
	rand.Read(id)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello "+hex.EncodeToString(id)+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /hello.txt\n"), 0o644)
	docker(t, "build", "-q", "--label", testLabel+"="+t.Name(), "-t", ref, dir)
	t.Cleanup(func() {
		out, _ := exec.Command("docker", "images", "-q", "--filter", "label="+testLabel+"="+t.Name()).Output()
		for _, id := range strings.Fields(string(out)) {
			exec.Command("docker", "rmi", "-f", id).Run()
		}
	})
}

func TestDockerPushRestartPull(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	host := serve(t, newRegistry(t, dir))
	ref := host + "/healthguard/app:1.2.0"
	buildScratch(t, ref)
	docker(t, "push", ref)
	digest, err := remote.Head(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}

	// A new handler on the same directory: the restart must lose nothing.
	host2 := serve(t, newRegistry(t, dir))
	pinned := host2 + "/healthguard/app@" + digest.Digest.String()
	docker(t, "pull", pinned)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", pinned).Run() })
	got, err := remote.Head(mustRef(t, host2+"/healthguard/app:1.2.0"))
	if err != nil {
		t.Fatalf("tag after restart: %v", err)
	}
	if got.Digest != digest.Digest {
		t.Errorf("tag after restart points at %s, want %s", got.Digest, digest.Digest)
	}
	if err := newRegistry(t, dir).Verify(); err != nil {
		t.Errorf("Verify() = %v, want nil", err)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushRandom writes a random image with go-containerregistry and returns its ref
// by digest.
func pushRandom(t *testing.T, host, repo string) (tag, byDigest string) {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag = host + "/" + repo + ":v1"
	if err := remote.Write(mustRef(t, tag), img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag, host + "/" + repo + "@" + d.String()
}

func TestTamperedBlobRefused(t *testing.T) {
	dir := t.TempDir()
	host := serve(t, newRegistry(t, dir))
	_, byDigest := pushRandom(t, host, "app")
	img, err := remote.Image(mustRef(t, byDigest))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "blobs", "sha256", ld.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}

	r := newRegistry(t, dir)
	if err := r.Verify(); !errors.Is(err, registry.ErrCorrupt) || !strings.Contains(err.Error(), ld.Hex) {
		t.Errorf("Verify() = %v, want ErrCorrupt naming %s", err, ld.Hex)
	}
	host2 := serve(t, r)
	resp, err := http.Get("http://" + host2 + "/v2/app/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusNotFound; got != want {
		t.Errorf("GET tampered blob: status %d, want %d", got, want)
	}
}

func TestTamperedManifestSkipped(t *testing.T) {
	dir := t.TempDir()
	host := serve(t, newRegistry(t, dir))
	tag, byDigest := pushRandom(t, host, "app")
	d := byDigest[strings.LastIndex(byDigest, ":")+1:]
	p := filepath.Join(dir, "manifests", "sha256", d)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, bytes.Replace(b, []byte("{"), []byte("{ "), 1), 0o644)

	host2 := serve(t, newRegistry(t, dir))
	for _, ref := range []string{tag, byDigest} {
		ref = strings.Replace(ref, host, host2, 1)
		if _, err := remote.Head(mustRef(t, ref)); err == nil {
			t.Errorf("HEAD %s of a tampered manifest succeeded", ref)
		}
	}
}

func TestManifestChecks(t *testing.T) {
	dir := t.TempDir()
	host := serve(t, newRegistry(t, dir))
	_, byDigest := pushRandom(t, host, "app")
	mf, err := remote.Get(mustRef(t, byDigest))
	if err != nil {
		t.Fatal(err)
	}
	put := func(path, mediaType string, body []byte) int {
		req, _ := http.NewRequest(http.MethodPut, "http://"+host+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", mediaType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	mt := string(mf.MediaType)
	m, err := v1.ParseManifest(bytes.NewReader(mf.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	m.Layers[0].Digest.Hex = strings.Repeat("0", 64)
	missingBlob, _ := json.Marshal(m)
	wrong := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name, path string
		body       []byte
		want       int
	}{
		{"by its digest", "/v2/other/manifests/" + mf.Digest.String(), mf.Manifest, http.StatusCreated},
		{"by a wrong digest", "/v2/other/manifests/" + wrong, mf.Manifest, http.StatusBadRequest},
		{"missing blob", "/v2/other/manifests/x", missingBlob, http.StatusBadRequest},
		{"not a manifest", "/v2/other/manifests/x", []byte("{"), http.StatusBadRequest},
		{"bad repo", "/v2/Other/manifests/v1", mf.Manifest, http.StatusBadRequest},
		{"repo traversal", "/v2/a/../../manifests/v1", mf.Manifest, http.StatusBadRequest},
		{"bad tag", "/v2/other/manifests/.v1", mf.Manifest, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := put(tt.path, mt, tt.body); got != tt.want {
				t.Errorf("PUT %s: status %d, want %d", tt.path, got, tt.want)
			}
		})
	}
}

func TestWritesOnlyFromAllowedClients(t *testing.T) {
	r, err := registry.New(t.TempDir(), registry.Options{Logf: t.Logf, AllowWrite: func(*http.Request) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	host := serve(t, r)
	img, _ := random.Image(16, 1)
	err = remote.Write(mustRef(t, host+"/app:v1"), img)
	if err == nil || !strings.Contains(fmt.Sprint(err), "DENIED") {
		t.Errorf("push to a read-only registry: %v, want DENIED", err)
	}
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/: %d, want 200", resp.StatusCode)
	}
}
