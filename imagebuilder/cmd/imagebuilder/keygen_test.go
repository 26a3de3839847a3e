package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runImagebuilder(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	return out.String(), err
}

func TestKeygenAndInitRepo(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	repo := filepath.Join(t.TempDir(), "repo")
	if out, err := runImagebuilder(t, "keygen", "--out", keys, "--root-keys", "2", "--threshold", "2"); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	for _, name := range []string{"root-1.key", "root-2.key", "targets.key", "snapshot.key", "timestamp.key", "root.json"} {
		if _, err := os.Stat(filepath.Join(keys, name)); err != nil {
			t.Errorf("keygen: %v", err)
		}
	}
	if out, err := runImagebuilder(t, "init-repo", "--keys", keys, "--repo", repo); err != nil {
		t.Fatalf("init-repo: %v\n%s", err, out)
	}
	for _, name := range []string{"1.root.json", "1.targets.json", "1.snapshot.json", "timestamp.json"} {
		if _, err := os.Stat(filepath.Join(repo, "metadata", name)); err != nil {
			t.Errorf("init-repo: %v", err)
		}
	}
	_, err := runImagebuilder(t, "keygen", "--out", keys)
	if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second keygen = %v, want a refusal", err)
	}
	keygenFlags.out = ""
	if _, err := runImagebuilder(t, "keygen", "--out", ""); exitCode(err) != 2 {
		t.Errorf("keygen without --out: exit %d (%v), want 2", exitCode(err), err)
	}
}

func TestResign(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	repo := filepath.Join(t.TempDir(), "repo")
	if out, err := runImagebuilder(t, "keygen", "--out", keys); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	if out, err := runImagebuilder(t, "init-repo", "--keys", keys, "--repo", repo); err != nil {
		t.Fatalf("init-repo: %v\n%s", err, out)
	}
	out, err := runImagebuilder(t, "resign", "--keys", keys, "--repo", repo, "--within", "24h")
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("resign --within 24h of a new repository: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(repo, "metadata", "2.targets.json")); err == nil {
		t.Fatal("resign --within wrote targets although they expire later")
	}
	out, err = runImagebuilder(t, "resign", "--keys", keys, "--repo", repo, "--within", "0")
	if err != nil || !strings.Contains(out, "re-signed: targets.json expires") {
		t.Fatalf("resign: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(repo, "metadata", "2.targets.json")); err != nil {
		t.Fatalf("resign wrote no new targets.json: %v", err)
	}
	resignFlags.keys = ""
	if _, err := runImagebuilder(t, "resign", "--keys", "", "--repo", repo); exitCode(err) != 2 {
		t.Errorf("resign without --keys: exit %d (%v), want 2", exitCode(err), err)
	}
	if _, err := runImagebuilder(t, "resign", "--keys", t.TempDir(), "--repo", repo); exitCode(err) != 1 || err == nil {
		t.Errorf("resign with no keys in --keys: exit %d (%v), want 1", exitCode(err), err)
	}
}
