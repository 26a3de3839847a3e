package registry_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/healthguard/gateway-ota/manifest-server/registry"
)

// TestLeftoverTempFilesIgnored: a power cut during a write leaves
// atomicfile's temporary files (".<name>.tmp-*"); Verify does not call them
// corrupt and the replay on restart skips them without complaint.
func TestLeftoverTempFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	host := serve(t, newRegistry(t, dir))
	tag, byDigest := pushRandom(t, host, "app")
	d := byDigest[strings.LastIndex(byDigest, ":")+1:]
	for _, p := range []string{
		filepath.Join(dir, "manifests", "sha256", "."+d+".tmp-123"),
		filepath.Join(dir, "manifests", "sha256", "."+d+".type.tmp-456"),
		filepath.Join(dir, "repos", "app", "_digests", "."+d+".tmp-789"),
		filepath.Join(dir, "repos", "app", "_tags", ".v1.tmp-1"),
	} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var skipped []string
	r, err := registry.New(dir, registry.Options{Logf: func(f string, a ...any) {
		if msg := fmt.Sprintf(f, a...); strings.Contains(msg, "skipping") {
			skipped = append(skipped, msg)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) > 0 {
		t.Errorf("replay complained about temporary files: %q", skipped)
	}
	if err := r.Verify(); err != nil {
		t.Errorf("Verify() = %v, want nil", err)
	}
	host2 := serve(t, r)
	for _, ref := range []string{tag, byDigest} {
		ref = strings.Replace(ref, host, host2, 1)
		if _, err := remote.Head(mustRef(t, ref)); err != nil {
			t.Errorf("HEAD %s after restart: %v", ref, err)
		}
	}
}
