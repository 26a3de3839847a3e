package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/imagebuilder/publish/publishtest"
	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
	"github.com/healthguard/gateway-ota/manifest-server/server"
)

// TestReferenceClient serves a real published repository and has go-tuf's
// reference client refresh its metadata and download a payload by its
// consistent-snapshot name, before and after the timestamp is re-signed.
func TestReferenceClient(t *testing.T) {
	dir := t.TempDir()
	keys, repo := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	if err := publish.Keygen(keys, publish.KeygenOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := publish.Init(repo, keys, publish.Options{})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 2<<20)
	rand.Read(payload)
	src := filepath.Join(dir, "payload")
	if err := os.WriteFile(src, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	const target = "releases/2.0.0/rootfs.ext4.xz"
	if err := r.AddTargets(map[string]string{target: src}, nil); err != nil {
		t.Fatalf("publish: %v", err)
	}

	db, err := devicedb.Open(context.Background(), filepath.Join(dir, "devices.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err := server.New(server.Config{Repo: repo, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	root, err := os.ReadFile(filepath.Join(keys, publish.RootFile))
	if err != nil {
		t.Fatal(err)
	}
	client := func() *updater.Updater {
		up := publishtest.ReferenceClient(t, srv.URL, root, filepath.Join(dir, "client-metadata"))
		if err := up.Refresh(); err != nil {
			t.Fatalf("reference client refresh: %v", err)
		}
		return up
	}
	up := client()
	ti, err := up.GetTargetInfo(target)
	if err != nil {
		t.Fatalf("GetTargetInfo: %v", err)
	}
	path, got, err := up.DownloadTarget(ti, filepath.Join(t.TempDir(), "p"), "")
	if err != nil {
		t.Fatalf("DownloadTarget via %s: %v", path, err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("downloaded payload differs from the published one")
	}

	// The server's job: a fresh timestamp the client accepts as newer.
	if err := r.ResignTimestamp(0); err != nil {
		t.Fatal(err)
	}
	client()
}
