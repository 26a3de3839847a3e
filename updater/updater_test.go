package updater_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater"
	"github.com/healthguard/gateway-ota/updater/payload"
	"github.com/healthguard/gateway-ota/updater/release"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// TestUpdateConfirmRollback runs the whole cycle on a virtual Pi: 2.0.0 is
// installed, tried and committed; 3.0.0 fails its health check on the
// trial, the device reboots to 2.0.0 and records why.
func TestUpdateConfirmRollback(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d := w.device(t)
	u := w.updater(t, d)
	if _, err := u.Check(ctx); !errors.Is(err, updater.ErrNoUpdate) {
		t.Fatalf("check with no release: got %v, want ErrNoUpdate", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m2 := w.publish(t, "2.0.0", 2, release.HealthCheck{Kind: release.CheckTCP, Address: ln.Addr().String()})
	res, err := u.Check(ctx)
	if err != nil || !res.Available || res.Version != "2.0.0" {
		t.Fatalf("check: %+v %v", res, err)
	}
	ur, err := u.Update(ctx, updater.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ur.Armed || ur.Slot != sdcard.SlotB {
		t.Fatalf("update: %+v", ur)
	}
	st := bootStatus(t, d)
	if !st.Trial || st.Booted != sdcard.SlotB || st.Committed != sdcard.SlotA {
		t.Fatalf("after update: %+v", st)
	}
	if got := partHash(t, d, sdcard.PartRootB, m2.Rootfs.Size); got != m2.Rootfs.SHA256 {
		t.Fatal("slot B root differs from the signed image")
	}
	cr, err := u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseCommitted {
		t.Fatalf("confirm: %+v %v", cr, err)
	}
	st = bootStatus(t, d)
	if st.Committed != sdcard.SlotB || st.Slot(sdcard.SlotB).Version != "2.0.0" {
		t.Fatalf("after confirm: %+v", st)
	}
	// The anti-rollback floor is now 2: a release with counter 1 is refused.
	if _, err := d.Reboot(); err != nil {
		t.Fatal(err)
	}
	if cr, err := u.Confirm(ctx); err != nil || cr.Outcome != "nothing" {
		t.Fatalf("confirm on a normal boot: %+v %v", cr, err)
	}

	w.publish(t, "3.0.0", 3, release.HealthCheck{Kind: release.CheckHTTP, URL: "http://127.0.0.1:9/healthz", Timeout: release.Duration(time.Second)})
	if _, err := u.Update(ctx, updater.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	st = bootStatus(t, d)
	if !st.Trial || st.Booted != sdcard.SlotA {
		t.Fatalf("trial of 3.0.0: %+v", st)
	}
	cr, err = u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseRollingBack || !strings.Contains(cr.Reason, "health") {
		t.Fatalf("confirm of a failing release: %+v %v", cr, err)
	}
	st = bootStatus(t, d)
	if st.Trial || st.Booted != sdcard.SlotB || st.Committed != sdcard.SlotB {
		t.Fatalf("after the failed trial: %+v", st)
	}
	cr, err = u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseRolledBack {
		t.Fatalf("confirm after the rollback: %+v %v", cr, err)
	}
	si, err := u.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Floor != 2 || si.State.Failed["3.0.0"] == "" {
		t.Fatalf("state: %+v", si.State)
	}
	// The daemon's check sees 3.0.0 but knows its trial failed.
	res, err = u.Check(ctx)
	if err != nil || res.PreviouslyFailed == "" {
		t.Fatalf("check after the rollback: %+v %v", res, err)
	}
}

// TestTrialDiesEarly: the trial boot never reaches the confirmer (power cut
// during the trial); the next boot is the committed slot and confirm
// records the rollback (F3).
func TestTrialDiesEarly(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d := w.device(t)
	u := w.updater(t, d)
	w.publish(t, "2.0.0", 2)
	if _, err := u.Update(ctx, updater.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.PowerCut(); err != nil {
		t.Fatal(err)
	}
	st := bootStatus(t, d)
	if st.Booted != sdcard.SlotA || st.Trial {
		t.Fatalf("after the power cut: %+v", st)
	}
	cr, err := u.Confirm(ctx)
	if err != nil || cr.Outcome != updater.PhaseRolledBack {
		t.Fatalf("confirm: %+v %v", cr, err)
	}
}

// TestRefusals tampers with real files and conditions and checks that each
// update is refused and slot B is neither written nor armed.
func TestRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	m := w.publish(t, "2.0.0", 2)
	payloadFile := func(forImage string) string {
		p, _ := m.FullPayload(forImage)
		return filepath.Join(w.repo, "targets", filepath.Dir(p.Target), p.SHA256+"."+filepath.Base(p.Target))
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, root string) func()
		mod   func(*updater.Config)
		want  error
	}{
		{"payload byte flipped (S1, P4)", func(t *testing.T, _ string) func() {
			return flipByte(t, payloadFile(release.ForRootfs), 1000)
		}, nil, payload.ErrDigestMismatch},
		{"targets metadata byte flipped (S1)", func(t *testing.T, _ string) func() {
			ms, _ := filepath.Glob(filepath.Join(w.repo, "metadata", "*.targets.json"))
			latest := ms[0]
			for _, f := range ms {
				if f > latest {
					latest = f
				}
			}
			return flipByte(t, latest, 200)
		}, nil, trust.ErrVerify},
		{"no trusted root (S3)", func(t *testing.T, root string) func() {
			if err := os.Remove(filepath.Join(root, "data/ota/trust/root.json")); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, nil, trust.ErrNoTrustedRoot},
		{"expired metadata (S6)", nil, func(c *updater.Config) {
			c.Now = func() time.Time { return time.Now().Add(3 * 24 * time.Hour) }
		}, trust.ErrExpired},
		{"another board (S9)", nil, func(c *updater.Config) { c.Compatible = "rpi5" }, updater.ErrIncompatible},
		{"older than the floor (S5)", func(t *testing.T, root string) func() {
			st := filepath.Join(root, "data/ota/state.json")
			if err := os.WriteFile(st, []byte(`{"schema":1,"phase":"committed","floor":5,"updated":"2026-01-01T00:00:00Z"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, nil, updater.ErrRollback},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := w.device(t)
			check := untouched(t, d)
			if c.setup != nil {
				defer c.setup(t, d.Root())()
			}
			mods := []func(*updater.Config){}
			if c.mod != nil {
				mods = append(mods, c.mod)
			}
			u := w.updater(t, d, mods...)
			_, err := u.Update(ctx, updater.UpdateOptions{Version: versionFor(c.name)})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			check()
		})
	}
}

// versionFor asks for 2.0.0 explicitly where the case needs the refusal of
// that release rather than "nothing newer".
func versionFor(name string) string {
	if strings.Contains(name, "floor") || strings.Contains(name, "board") {
		return "2.0.0"
	}
	return ""
}

// flipByte flips one byte of a file and returns the undo.
func flipByte(t *testing.T, path string, off int64) func() {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	orig := append([]byte(nil), b...)
	b[off%int64(len(b))] ^= 0x55
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() { os.WriteFile(path, orig, 0o644) }
}

// TestStalledDownloadResumes: a server that stops sending mid-payload makes
// the update fail with a stall, changing nothing; the next update resumes
// and completes (S8, F6).
func TestStalledDownloadResumes(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.publish(t, "2.0.0", 2)
	stall := true
	files := http.FileServer(http.Dir(w.repo))
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if stall && strings.Contains(r.URL.Path, "rootfs") && r.Header.Get("Range") == "" {
			b, err := os.ReadFile(filepath.Join(w.repo, filepath.FromSlash(r.URL.Path)))
			if err != nil {
				http.NotFound(rw, r)
				return
			}
			rw.WriteHeader(http.StatusOK)
			rw.Write(b[:len(b)/2])
			rw.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		files.ServeHTTP(rw, r)
	}))
	defer srv.Close()
	d := w.device(t)
	check := untouched(t, d)
	u := w.updater(t, d, func(c *updater.Config) { c.Server = srv.URL; c.StallTimeout = time.Second })
	if _, err := u.Update(ctx, updater.UpdateOptions{}); err == nil {
		t.Fatal("update through a stalling server succeeded")
	}
	check()
	stall = false
	if _, err := u.Update(ctx, updater.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := bootStatus(t, d); !st.Trial || st.Booted != sdcard.SlotB {
		t.Fatalf("after the resumed update: %+v", st)
	}
}
