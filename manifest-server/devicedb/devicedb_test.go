package devicedb

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/manifest-server/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "devices.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func newKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestOpenSchema(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v, len(migrations); got != want {
		t.Errorf("schema version: got %d, want %d", got, want)
	}
	var mode string
	if err := db.sql.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if got, want := mode, "wal"; got != want {
		t.Errorf("journal mode: got %q, want %q", got, want)
	}
	key := newKey(t)
	if err := db.Accept(ctx, report.Report{Device: "gw1", Phase: "idle", Seq: 1}, key, t0, ""); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Reopening keeps the data and applies no migration twice.
	db2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := db2.Device(ctx, "gw1"); err != nil {
		t.Errorf("after reopen: %v", err)
	}
	// A database from a newer program is refused, not downgraded.
	if _, err := db2.sql.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	db2.Close()
	if db3, err := Open(ctx, path); err == nil {
		db3.Close()
		t.Errorf("open of a newer schema: got no error, want one")
	}
}

func TestAccept(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	key, other := newKey(t), newKey(t)

	first := report.Report{Device: "gw1", Release: "1.0.0", Counter: 1, Slot: "A", Phase: "idle", Seq: 5, Time: t0.Add(-time.Hour)}
	if err := db.Accept(ctx, first, key, t0, "192.0.2.1"); err != nil {
		t.Fatalf("first report: %v", err)
	}
	// Replays: same and lower sequence numbers.
	for _, seq := range []uint64{5, 4} {
		r := first
		r.Seq = seq
		err := db.Accept(ctx, r, key, t0, "")
		var re *ReplayError
		if !errors.As(err, &re) || !errors.Is(err, ErrReplay) {
			t.Fatalf("seq %d after 5: got %v, want a ReplayError", seq, err)
		}
		if got, want := re.LastSeq, uint64(5); got != want {
			t.Errorf("ReplayError.LastSeq: got %d, want %d", got, want)
		}
	}
	// Another key for a registered device.
	r := first
	r.Seq = 6
	if err := db.Accept(ctx, r, other, t0, ""); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("other key: got %v, want ErrKeyMismatch", err)
	}
	if err := db.Accept(ctx, report.Report{Device: "gw2", Phase: "idle", Seq: 1}, nil, t0, ""); !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("unknown device without key: got %v, want ErrUnknownDevice", err)
	}

	// The error sticks through later reports until a commit.
	steps := []report.Report{
		{Device: "gw1", Release: "3.0.0", Counter: 3, Slot: "B", Phase: "trying", Seq: 10},
		{Device: "gw1", Release: "2.0.0", Counter: 2, Slot: "A", Phase: "rolled-back", Error: "health check tcp 127.0.0.1:1 failed", Seq: 11},
		{Device: "gw1", Release: "2.0.0", Counter: 2, Slot: "A", Phase: "idle", Seq: 12},
	}
	for i, s := range steps {
		if err := db.Accept(ctx, s, key, t0.Add(time.Duration(i+1)*time.Minute), "192.0.2.1"); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got, err := db.Device(ctx, "gw1")
	if err != nil {
		t.Fatal(err)
	}
	want := Device{ID: "gw1", PublicKey: key, FirstSeen: t0, LastSeen: t0.Add(3 * time.Minute),
		Release: "2.0.0", Counter: 2, Slot: "A", Phase: "idle", LastError: "health check tcp 127.0.0.1:1 failed", LastSeq: 12}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("device:\ngot  %+v\nwant %+v", got, want)
	}
	if err := db.Accept(ctx, report.Report{Device: "gw1", Release: "4.0.0", Slot: "B", Phase: "committed", Seq: 13}, key, t0.Add(time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Device(ctx, "gw1"); got.LastError != "" {
		t.Errorf("after commit: got last error %q, want it cleared", got.LastError)
	}

	evs, err := db.Events(ctx, "gw1", 0)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	for _, e := range evs {
		phases = append(phases, e.Phase)
	}
	if got, want := fmt.Sprint(phases), "[committed idle rolled-back trying idle]"; got != want {
		t.Errorf("events newest first: got %s, want %s", got, want)
	}
	if got, want := evs[4].DeviceTime, first.Time; !got.Equal(want) {
		t.Errorf("first event device time: got %v, want %v", got, want)
	}
	if got, want := evs[4].Remote, "192.0.2.1"; got != want {
		t.Errorf("first event remote: got %q, want %q", got, want)
	}
	if evs, _ := db.Events(ctx, "gw1", 2); len(evs) != 2 {
		t.Errorf("events limit 2: got %d", len(evs))
	}
	if _, err := db.Events(ctx, "nobody", 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("events of unknown device: got %v, want ErrNotFound", err)
	}
}

// TestConcurrentAccept has several devices report at once, and two
// reports race for the same sequence number of one device: exactly one
// may win.
func TestConcurrentAccept(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	const devices, reports = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, devices*reports)
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := newKey(t)
			id := fmt.Sprintf("gw%02d", d)
			for s := 1; s <= reports; s++ {
				errs <- db.Accept(ctx, report.Report{Device: id, Phase: "downloading", Progress: float64(s) / reports, Seq: uint64(s)}, key, t0, "")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent accept: %v", err)
		}
	}
	ds, err := db.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ds), devices; got != want {
		t.Fatalf("devices: got %d, want %d", got, want)
	}
	for _, d := range ds {
		if d.LastSeq != reports {
			t.Errorf("%s: got last seq %d, want %d", d.ID, d.LastSeq, reports)
		}
	}

	key := newKey(t)
	if err := db.Accept(ctx, report.Report{Device: "race", Phase: "idle", Seq: 1}, key, t0, ""); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 8)
	for range 8 {
		go func() {
			results <- db.Accept(ctx, report.Report{Device: "race", Phase: "idle", Seq: 2}, key, t0, "")
		}()
	}
	won := 0
	for range 8 {
		err := <-results
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrReplay):
			t.Errorf("racing report: got %v, want nil or ErrReplay", err)
		}
	}
	if won != 1 {
		t.Errorf("racing reports with one seq: %d accepted, want 1", won)
	}
}

func TestPruneEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts more than MaxEventsPerDevice reports")
	}
	ctx := context.Background()
	db, _ := openTemp(t)
	key := newKey(t)
	n := MaxEventsPerDevice + 150
	for s := 1; s <= n; s++ {
		if err := db.Accept(ctx, report.Report{Device: "gw", Phase: "idle", Seq: uint64(s)}, key, t0, ""); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := db.Events(ctx, "gw", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) > MaxEventsPerDevice+100 || len(evs) < MaxEventsPerDevice {
		t.Errorf("events kept: got %d, want between %d and %d", len(evs), MaxEventsPerDevice, MaxEventsPerDevice+100)
	}
	if got, want := evs[0].Seq, uint64(n); got != want {
		t.Errorf("newest event: got seq %d, want %d", got, want)
	}
}

func TestWriteTable(t *testing.T) {
	now := t0.Add(time.Hour)
	ds := []Device{
		{ID: "gw-0001", Release: "2.0.0", Slot: "B", Phase: "committed", LastSeen: now.Add(-12 * time.Second)},
		{ID: "gw-0002", Release: "2.0.0", Slot: "A", Phase: "rolled-back", LastError: "health check\n http://127.0.0.1:8080/healthz: status 503 after 3 attempts within the 60s deadline", LastSeen: now.Add(-5 * time.Minute)},
		{ID: "gw-0003", LastSeen: now.Add(-50 * time.Hour)},
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, ds, now); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "devices.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("table:\ngot\n%s\nwant\n%s", got, want)
	}
}

func TestAgo(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "just now"},
		{0, "0s ago"},
		{12 * time.Second, "12s ago"},
		{90 * time.Second, "1m ago"},
		{3 * time.Hour, "3h ago"},
		{47 * time.Hour, "47h ago"},
		{72 * time.Hour, "3d ago"},
	}
	for _, tt := range tests {
		if got := Ago(tt.d); got != tt.want {
			t.Errorf("Ago(%v): got %q, want %q", tt.d, got, tt.want)
		}
	}
}
