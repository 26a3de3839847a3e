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
