package updater_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/updater"
)

// A channel whose newest release is below the anti-rollback floor has
// nothing to install: the daemon waits, it does not count a failure.
func TestNewestBelowFloorIsNoUpdate(t *testing.T) {
	w := newWorld(t)
	d := w.device(t)
	w.publish(t, "2.0.0", 2)
	state := filepath.Join(d.Root(), "data/ota/state.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte(`{"schema": 1, "floor": 5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	u := w.updater(t, d)
	if _, err := u.Check(context.Background()); !errors.Is(err, updater.ErrNoUpdate) {
		t.Fatalf("check with the newest release below the floor: %v, want ErrNoUpdate", err)
	}
	if _, err := u.Update(context.Background(), updater.UpdateOptions{Version: "2.0.0"}); !errors.Is(err, updater.ErrRollback) {
		t.Fatalf("explicit update below the floor: %v, want ErrRollback", err)
	}
}

// A release this card cannot hold is refused before anything is written,
// and the daemon does not try it again.
func TestIncompatibleReleaseIsNotRetried(t *testing.T) {
	w := newWorld(t)
	d := w.device(t)
	rootfs, boot := tree(t, w.dir, "2.0.0")
	if _, err := imagebuilder.BuildRelease(context.Background(), imagebuilder.ReleaseOptions{
		Repo: w.repo, Keys: w.keys, RootFS: rootfs, BootDir: boot, Version: "2.0.0", Counter: 2,
		RootSize: 2 * testLayout.RootSize, BootSize: testLayout.BootSize, HealthDeadline: 5 * time.Second, Epoch: epoch, WorkDir: w.dir,
	}); err != nil {
		t.Fatal(err)
	}
	// What an abandoned download left is removed by the next update.
	stale := filepath.Join(d.Root(), "data/ota/downloads", strings.Repeat("0", 64)+".xz.part")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := w.updater(t, d)
	if _, err := u.Update(context.Background(), updater.UpdateOptions{}); !errors.Is(err, updater.ErrIncompatible) {
		t.Fatalf("update to a release too large for the card: %v, want ErrIncompatible", err)
	}
	res, err := u.Check(context.Background())
	if err != nil || !res.Available || res.PreviouslyFailed == "" {
		t.Fatalf("check after the refusal: %+v %v, want the release marked as failed here", res, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale download still there: %v", err)
	}
}
