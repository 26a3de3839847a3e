package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/imagebuilder/publish/publishtest"
)

// TestRotateRoot replaces every key of a repository. A gateway that trusts
// only the first root (go-tuf's reference client here) walks to the new
// one, and from then on only the new keys can publish.
func TestRotateRoot(t *testing.T) {
	dir := t.TempDir()
	oldKeys, newKeys, repo := filepath.Join(dir, "keys"), filepath.Join(dir, "keys-2"), filepath.Join(dir, "repo")
	for _, args := range [][]string{
		{"keygen", "--out", oldKeys, "--root-keys", "3", "--threshold", "2"},
		{"init-repo", "--keys", oldKeys, "--repo", repo},
		{"keygen", "--out", newKeys, "--root-keys", "3", "--threshold", "2"},
	} {
		if out, err := runImagebuilder(t, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	second := filepath.Join(repo, publish.MetadataDir, "2.root.json")

	// One of the three old root keys is below the threshold of two: refused,
	// nothing written.
	partial := filepath.Join(dir, "partial")
	os.Mkdir(partial, 0o700)
	b, _ := os.ReadFile(filepath.Join(oldKeys, publish.RootKeyFile(1)))
	os.WriteFile(filepath.Join(partial, publish.RootKeyFile(1)), b, 0o600)
	out, err := runImagebuilder(t, "rotate-root", "--repo", repo, "--keys", partial, "--new-keys", newKeys)
	if err == nil || !strings.Contains(err.Error(), "threshold") || exitCode(err) != 1 {
		t.Fatalf("rotate-root with one old root key: %v (exit %d)\n%s", err, exitCode(err), out)
	}
	if _, err := os.Stat(second); err == nil {
		t.Fatal("a refused rotation wrote 2.root.json")
	}
	// A new timestamp key means re-signing targets and snapshot too: with
	// the root keys alone at hand, refused before anything is written.
	rootsOnly, tsOnly := filepath.Join(dir, "roots-only"), filepath.Join(dir, "timestamp-only")
	os.Mkdir(rootsOnly, 0o700)
	os.Mkdir(tsOnly, 0o700)
	for i := 1; i <= 3; i++ {
		b, _ := os.ReadFile(filepath.Join(oldKeys, publish.RootKeyFile(i)))
		os.WriteFile(filepath.Join(rootsOnly, publish.RootKeyFile(i)), b, 0o600)
	}
	b, _ = os.ReadFile(filepath.Join(newKeys, publish.TimestampKeyFile))
	os.WriteFile(filepath.Join(tsOnly, publish.TimestampKeyFile), b, 0o600)
	out, err = runImagebuilder(t, "rotate-root", "--repo", repo, "--keys", rootsOnly, "--new-keys", tsOnly)
	if err == nil || !strings.Contains(err.Error(), "no targets key") {
		t.Fatalf("rotate-root of the timestamp key without the targets key: %v\n%s", err, out)
	}
	if _, err := os.Stat(second); err == nil {
		t.Fatal("a refused rotation wrote 2.root.json")
	}
	if _, err := runImagebuilder(t, "rotate-root", "--repo", repo, "--keys", oldKeys, "--new-keys", oldKeys); exitCode(err) != 2 {
		t.Errorf("rotate-root to the same keys: exit %d (%v), want 2", exitCode(err), err)
	}

	out, err = runImagebuilder(t, "rotate-root", "--repo", repo, "--keys", oldKeys, "--new-keys", newKeys)
	if err != nil || !strings.Contains(out, "keys replaced: root (3 keys), targets, snapshot, timestamp") {
		t.Fatalf("rotate-root: %v\n%s", err, out)
	}
	if _, err := os.Stat(second); err != nil {
		t.Fatal(err)
	}

	// A gateway that trusts root v1 walks to v2 and accepts the metadata
	// re-signed with the new keys.
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	defer srv.Close()
	root1, _ := os.ReadFile(filepath.Join(oldKeys, publish.RootFile))
	up := publishtest.ReferenceClient(t, srv.URL, root1, "")
	if err := up.Refresh(); err != nil {
		t.Fatalf("a gateway trusting root v1: %v", err)
	}
	trusted := up.GetTrustedMetadataSet()
	newTargets, err := publish.LoadKey(filepath.Join(newKeys, publish.TargetsKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if v := trusted.Root.Signed.Version; v != 2 {
		t.Errorf("trusted root version %d, want 2", v)
	}
	if ids := trusted.Root.Signed.Roles["targets"].KeyIDs; len(ids) != 1 || ids[0] != newTargets.ID() {
		t.Errorf("targets keys of the trusted root: %v, want the new %s", ids, newTargets.ID())
	}

	// Only the new keys sign from now on.
	if _, err := runImagebuilder(t, "resign", "--keys", oldKeys, "--repo", repo, "--within", "0"); err == nil {
		t.Error("resign with the replaced targets key succeeded")
	}
	if out, err := runImagebuilder(t, "resign", "--keys", newKeys, "--repo", repo, "--within", "0"); err != nil {
		t.Errorf("resign with the new keys: %v\n%s", err, out)
	}
}
