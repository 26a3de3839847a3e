package updater_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater"
	"github.com/healthguard/gateway-ota/updater/release"
)

// requestLog serves a repository and records the paths asked for.
type requestLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *requestLog) handler(dir string) http.Handler {
	fs := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.paths = append(l.paths, r.URL.Path)
		l.mu.Unlock()
		fs.ServeHTTP(w, r)
	})
}

// fetched reports whether a path ending in suffix was requested, and resets
// the log.
func (l *requestLog) fetched(suffix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	found := false
	for _, p := range l.paths {
		if strings.HasSuffix(p, suffix) {
			found = true
		}
	}
	return found
}

func (l *requestLog) reset() {
	l.mu.Lock()
	l.paths = nil
	l.mu.Unlock()
}

// publishWithDeltas publishes release v with root deltas from the newest
// earlier release.
func (w *world) publishWithDeltas(t *testing.T, v string, n uint64) *release.Manifest {
	t.Helper()
	rootfs, boot := tree(t, w.dir, v)
	m, err := imagebuilder.BuildRelease(context.Background(), imagebuilder.ReleaseOptions{
		Repo: w.repo, Keys: w.keys, RootFS: rootfs, BootDir: boot, Version: v, Counter: n,
		RootSize: testLayout.RootSize, BootSize: testLayout.BootSize, HealthDeadline: 5 * time.Second,
		Epoch: epoch, WorkDir: w.dir, DeltaFrom: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUpdateByDelta: the card runs 1.0.0; 2.0.0 has a root delta from it,
// and the device downloads the delta, not the full root payload. A second
// device whose running slot has one byte flipped refuses the delta before
// writing and installs the full payload, with the same result (P3).
func TestUpdateByDelta(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var log requestLog
	srv := httptest.NewServer(log.handler(w.repo))
	defer srv.Close()

	// 1.0.0 in the repository is the image the card was made with.
	m1 := w.publish(t, "1.0.0", 1)
	m2 := w.publishWithDeltas(t, "2.0.0", 2)
	dp, ok := m2.DeltaPayload(release.ForRootfs, m1.Rootfs.SHA256)
	if !ok {
		t.Fatalf("2.0.0 has no root delta from 1.0.0: %+v", m2.Payloads)
	}
	full, _ := m2.FullPayload(release.ForRootfs)
	if dp.Size >= full.Size {
		t.Errorf("delta of %d bytes, full payload %d", dp.Size, full.Size)
	}

	install := func(t *testing.T, d *pisim.Device) {
		t.Helper()
		u := w.updater(t, d, func(c *updater.Config) { c.Server = srv.URL })
		ur, err := u.Update(ctx, updater.UpdateOptions{NoReboot: true})
		if err != nil {
			t.Fatal(err)
		}
		if !ur.Armed || ur.Slot != sdcard.SlotB {
			t.Fatalf("update: %+v", ur)
		}
		if got := partHash(t, d, sdcard.PartRootB, m2.Rootfs.Size); got != m2.Rootfs.SHA256 {
			t.Fatal("slot B root differs from the signed image")
		}
	}

	t.Run("delta", func(t *testing.T) {
		d := w.device(t)
		if got := bootStatus(t, d).Slot(sdcard.SlotA).Version; got != "1.0.0" {
			t.Fatalf("card runs %q", got)
		}
		log.reset()
		install(t, d)
		if !log.fetched(imagebuilder.DeltaPayloadName("1.0.0")) {
			t.Error("the delta was not downloaded")
		}
		if log.fetched("rootfs.ext4.xz") {
			t.Error("the full root payload was downloaded although the delta applies")
		}
	})

	t.Run("modified source", func(t *testing.T) {
		d := w.device(t)
		flipInRoot(t, d, sdcard.PartRootA, []byte("service service "))
		untouchedA := partHash(t, d, sdcard.PartRootA, 0)
		log.reset()
		install(t, d)
		if !log.fetched(imagebuilder.DeltaPayloadName("1.0.0")) || !log.fetched("rootfs.ext4.xz") {
			t.Error("want the delta tried, then the full root payload")
		}
		if got := partHash(t, d, sdcard.PartRootA, 0); got != untouchedA {
			t.Error("the running slot was written")
		}
	})
}

// flipInRoot flips one byte of the first occurrence of pattern in partition
// part of the device's card.
func flipInRoot(t *testing.T, d *pisim.Device, part int, pattern []byte) {
	t.Helper()
	c, err := sdcard.Open(d.Image(), false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Partition(part)
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(d.Image(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, p.Size)
	if _, err := f.ReadAt(buf, p.Start); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(buf, pattern)
	if i < 0 {
		t.Fatalf("%q not in partition %d", pattern, part)
	}
	if _, err := f.WriteAt([]byte{buf[i] ^ 0x20}, p.Start+int64(i)); err != nil {
		t.Fatal(err)
	}
}
