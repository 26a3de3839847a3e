package containers

import (
	"archive/tar"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/updater/release"
)

// tarOf is a tar of the regular files name -> content.
func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRestoreDirKeepsVolumeOnBadSnapshot: a missing, empty or corrupt
// snapshot fails before the volume is emptied; a good one replaces its
// content.
func TestRestoreDirKeepsVolumeOnBadSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot []byte // nil: no file
		wantErr  bool
		want     map[string]string
	}{
		{name: "missing", wantErr: true, want: map[string]string{"keep": "current"}},
		{name: "empty file", snapshot: []byte{}, wantErr: true, want: map[string]string{"keep": "current"}},
		{name: "corrupt", snapshot: bytes.Repeat([]byte("not a tar "), 100), wantErr: true, want: map[string]string{"keep": "current"}},
		{name: "truncated header", snapshot: tarOf(t, map[string]string{"a": "x"})[:100], wantErr: true, want: map[string]string{"keep": "current"}},
		{name: "good", snapshot: tarOf(t, map[string]string{"note": "before"}), want: map[string]string{"note": "before"}},
		{name: "empty volume", snapshot: tarOf(t, nil), want: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, file := t.TempDir(), filepath.Join(t.TempDir(), "v.tar")
			if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("current"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.snapshot != nil {
				if err := os.WriteFile(file, tc.snapshot, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := restoreDir(dir, file)
			if (err != nil) != tc.wantErr {
				t.Fatalf("restoreDir: %v, want error %v", err, tc.wantErr)
			}
			got := map[string]string{}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				got[e.Name()] = string(b)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("volume holds %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("volume holds %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestBackupAllVolumeInspectErrors: a volume that does not exist is
// skipped (nothing to keep); any other error of the engine fails the
// backup instead of silently skipping the snapshot.
func TestBackupAllVolumeInspectErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/volumes/missing"):
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"get missing: no such volume"}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"message":"engine trouble"}`))
		}
	}))
	defer srv.Close()
	cli, err := client.New(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersion("1.47"))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, tc := range []struct {
		volume  string
		wantErr bool
	}{
		{"missing", false},
		{"broken", true},
	} {
		t.Run(tc.volume, func(t *testing.T) {
			m := &Manager{Client: cli, Dir: t.TempDir(), Logf: t.Logf}
			set := &release.ContainerSet{Services: []release.Service{{Name: "web",
				Volumes: []release.Volume{{Source: tc.volume, Target: "/data", Backup: true}}}}}
			j := &journal{To: "2.0", Services: []string{"web"}, Backups: map[string]string{}}
			err := m.backupAll(context.Background(), set, []string{"web"}, map[string]string{"web": "img"}, j)
			if (err != nil) != tc.wantErr {
				t.Fatalf("backupAll: %v, want error %v", err, tc.wantErr)
			}
			if len(j.Backups) != 0 {
				t.Errorf("backups recorded: %v", j.Backups)
			}
		})
	}
}
