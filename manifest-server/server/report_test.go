package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
	"github.com/healthguard/gateway-ota/manifest-server/report"
	"github.com/healthguard/gateway-ota/manifest-server/server"
)

func newClient(t *testing.T, url, device string) *report.Client {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &report.Client{URL: url, Key: key, Device: device}
}

// post sends a body with a signature header as it is, for the attacks the
// client cannot be made to commit.
func post(t *testing.T, url string, body []byte, sig string) (int, report.ErrorBody) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+report.Path, bytes.NewReader(body))
	if sig != "" {
		req.Header.Set(report.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb report.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("decode %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func TestReports(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, server.Config{})
	c := newClient(t, f.url, "gw-0001")

	// First contact registers the key.
	if err := c.Send(ctx, report.Report{Release: "1.0.0", Counter: 1, Slot: "A", Phase: report.PhaseIdle}); err != nil {
		t.Fatalf("first report: %v", err)
	}
	if err := c.Send(ctx, report.Report{Release: "2.0.0", Counter: 2, Slot: "B", Phase: report.PhaseCommitted}); err != nil {
		t.Fatalf("second report: %v", err)
	}
	var ds []devicedb.Device
	if getJSON(t, f.url+"/api/v1/devices", &ds) != 200 || len(ds) != 1 {
		t.Fatalf("devices: got %+v, want one device", ds)
	}
	d := ds[0]
	if d.ID != "gw-0001" || d.Release != "2.0.0" || d.Slot != "B" || d.Phase != "committed" || d.LastSeq != 2 ||
		!bytes.Equal(d.PublicKey, c.Key.Public().(ed25519.PublicKey)) {
		t.Errorf("device: got %+v, want gw-0001 on 2.0.0 slot B committed, seq 2, its key", d)
	}

	// Replay: the exact bytes of an accepted report, signature and all.
	old := report.Report{Device: "gw-0001", Phase: "idle", Seq: 2, PublicKey: c.Key.Public().(ed25519.PublicKey)}
	body, _ := json.Marshal(old)
	if status, eb := post(t, f.url, body, report.Sign(c.Key, body)); status != 409 || eb.Code != "replay" || eb.LastSeq != 2 {
		t.Errorf("replay: got %d %+v, want 409 replay last_seq 2", status, eb)
	}
	// An explicit old Seq through the client is refused too.
	err := c.Send(ctx, report.Report{Phase: "idle", Seq: 1})
	if !errors.Is(err, report.ErrReplay) {
		t.Errorf("client with an old seq: got %v, want ErrReplay", err)
	}

	// Forged: signed by another key, claiming the device (with and
	// without the device's public key in the body).
	_, forger, _ := ed25519.GenerateKey(nil)
	for _, withKey := range []bool{true, false} {
		r := report.Report{Device: "gw-0001", Phase: "committed", Release: "6.6.6", Seq: 100}
		if withKey {
			r.PublicKey = c.Key.Public().(ed25519.PublicKey)
		}
		body, _ := json.Marshal(r)
		if status, eb := post(t, f.url, body, report.Sign(forger, body)); status != 401 || eb.Code != "bad-signature" {
			t.Errorf("forged (key in body %v): got %d %+v, want 401 bad-signature", withKey, status, eb)
		}
	}
	// A body changed after signing.
	good := report.Report{Device: "gw-0001", Phase: "idle", Seq: 50}
	body, _ = json.Marshal(good)
	sig := report.Sign(c.Key, body)
	if status, _ := post(t, f.url, bytes.Replace(body, []byte(`"idle"`), []byte(`"fail"`), 1), sig); status != 401 {
		t.Errorf("body changed after signing: got %d, want 401", status)
	}
	if status, _ := post(t, f.url, body, ""); status != 401 {
		t.Errorf("no signature: got %d, want 401", status)
	}

	// Another device key claiming a registered id.
	impostor := newClient(t, f.url, "gw-0001")
	if err := impostor.Send(ctx, report.Report{Phase: "committed", Seq: 1000}); !errors.Is(err, report.ErrRejected) {
		t.Errorf("second key for a registered device: got %v, want ErrRejected", err)
	}

	// Unknown device without a key.
	body, _ = json.Marshal(report.Report{Device: "gw-new", Phase: "idle", Seq: 1})
	if status, eb := post(t, f.url, body, report.Sign(forger, body)); status != 401 || eb.Code != "unknown-device" {
		t.Errorf("unknown device without key: got %d %+v, want 401 unknown-device", status, eb)
	}

	// Oversize and malformed bodies.
	big := []byte(`{"device":"gw-0001","phase":"idle","seq":9,"error":"` + strings.Repeat("x", report.MaxBodySize) + `"}`)
	if status, eb := post(t, f.url, big, report.Sign(c.Key, big)); status != 413 || eb.Code != "too-large" {
		t.Errorf("oversize: got %d %+v, want 413 too-large", status, eb)
	}
	if status, eb := post(t, f.url, []byte(`{"device":"gw-0001"`), "ed25519 x"); status != 400 || eb.Code != "invalid" {
		t.Errorf("malformed: got %d %+v, want 400 invalid", status, eb)
	}

	// None of the refused reports changed the device.
	var after []devicedb.Device
	getJSON(t, f.url+"/api/v1/devices", &after)
	if fmt.Sprint(after) != fmt.Sprint(ds) {
		t.Errorf("after refused reports: got %+v, want unchanged %+v", after, ds)
	}

	// Events, newest first.
	var evs []devicedb.Event
	if status := getJSON(t, f.url+"/api/v1/devices/gw-0001/events?limit=1", &evs); status != 200 || len(evs) != 1 || evs[0].Phase != "committed" {
		t.Errorf("events limit 1: got %d %+v, want the committed report", status, evs)
	}
	if status := getJSON(t, f.url+"/api/v1/devices/nobody/events", &evs); status != 404 {
		t.Errorf("events of unknown device: got %d, want 404", status)
	}
	if status := getJSON(t, f.url+"/api/v1/devices/gw-0001/events?limit=-3", &evs); status != 400 {
		t.Errorf("events with a bad limit: got %d, want 400", status)
	}
}

// TestLostSeq: a device that lost its persisted sequence number (data
// partition reformatted) catches up with the server's number.
func TestLostSeq(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, server.Config{})
	c := newClient(t, f.url, "gw")
	for range 5 {
		if err := c.Send(ctx, report.Report{Phase: "idle"}); err != nil {
			t.Fatal(err)
		}
	}
	c2 := &report.Client{URL: f.url, Key: c.Key, Device: "gw"} // Seq 0 again
	if err := c2.Send(ctx, report.Report{Phase: "checking"}); err != nil {
		t.Fatalf("after losing the seq: %v", err)
	}
	if got, want := c2.LastSeq(), uint64(6); got != want {
		t.Errorf("seq after catching up: got %d, want %d", got, want)
	}
}

func TestRateLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, server.Config{DeviceRate: 0.01, DeviceBurst: 3})
	c := newClient(t, f.url, "noisy")
	for i := range 3 {
		if err := c.Send(ctx, report.Report{Phase: "downloading", Progress: float64(i) / 3}); err != nil {
			t.Fatalf("report %d within the burst: %v", i, err)
		}
	}
	err := c.Send(ctx, report.Report{Phase: "downloading"})
	var se *report.StatusError
	if !errors.Is(err, report.ErrRateLimited) || !errors.As(err, &se) {
		t.Fatalf("report past the burst: got %v, want ErrRateLimited", err)
	}
	if se.Status != http.StatusTooManyRequests || se.RetryAfter < time.Second {
		t.Errorf("got status %d Retry-After %v, want 429 and at least 1s", se.Status, se.RetryAfter)
	}
	// Other devices are not held back by a noisy one.
	if err := newClient(t, f.url, "quiet").Send(ctx, report.Report{Phase: "idle"}); err != nil {
		t.Errorf("another device: %v", err)
	}

	// Per-IP limit, before any parsing.
	g := newFixture(t, server.Config{IPRate: 0.01, IPBurst: 2})
	var statuses []int
	for range 3 {
		status, _ := post(t, g.url, []byte(`{}`), "")
		statuses = append(statuses, status)
	}
	if got, want := fmt.Sprint(statuses), "[400 400 429]"; got != want {
		t.Errorf("per-IP limit: got statuses %s, want %s", got, want)
	}
}

func TestConcurrentDevices(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, server.Config{})
	const devices, reports = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, devices*reports)
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(t, f.url, fmt.Sprintf("gw-%02d", d))
			for i := 1; i <= reports; i++ {
				errs <- c.Send(ctx, report.Report{Release: "2.0.0", Phase: "downloading", Progress: float64(i) / reports})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent report: %v", err)
		}
	}
	var ds []devicedb.Device
	getJSON(t, f.url+"/api/v1/devices", &ds)
	if len(ds) != devices {
		t.Fatalf("devices: got %d, want %d", len(ds), devices)
	}
	for _, d := range ds {
		if d.LastSeq != reports {
			t.Errorf("%s: got last seq %d, want %d", d.ID, d.LastSeq, reports)
		}
	}
}
