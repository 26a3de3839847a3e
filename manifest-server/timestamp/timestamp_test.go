package timestamp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func writeTimestamp(t *testing.T, path string, version int, expires time.Time) {
	t.Helper()
	doc := fmt.Sprintf(`{"signatures":[],"signed":{"_type":"timestamp","spec_version":"1.0.31","version":%d,"expires":%q,"meta":{}}}`,
		version, expires.UTC().Format(time.RFC3339))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fakeResign stands in for publish.(*Repo).ResignTimestamp: it writes a
// timestamp valid for one more day, as the real one does with the key.
func fakeResign(t *testing.T, path string, calls *atomic.Int32) func(context.Context) error {
	return func(context.Context) error {
		n := calls.Add(1)
		writeTimestamp(t, path, 100+int(n), now.Add(24*time.Hour))
		return nil
	}
}

func TestExpires(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timestamp.json")
	writeTimestamp(t, path, 1, now)
	got, err := Expires(path)
	if err != nil || !got.Equal(now) {
		t.Errorf("Expires: got %v, %v; want %v", got, err, now)
	}
	for name, doc := range map[string]string{
		"not json":   `nope`,
		"no expires": `{"signed":{"_type":"timestamp"}}`,
		"bad time":   `{"signed":{"expires":"tomorrow"}}`,
	} {
		os.WriteFile(path, []byte(doc), 0o644)
		if _, err := Expires(path); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name       string
		expires    time.Time // zero: no file
		broken     bool
		wantResign bool
	}{
		{"fresh", now.Add(7 * time.Hour), false, false},
		{"within before", now.Add(5 * time.Hour), false, true},
		{"expired", now.Add(-time.Hour), false, true},
		{"missing", time.Time{}, false, true},
		{"unreadable", now.Add(48 * time.Hour), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "timestamp.json")
			if !tt.expires.IsZero() {
				writeTimestamp(t, path, 1, tt.expires)
			}
			if tt.broken {
				os.WriteFile(path, []byte("{"), 0o644)
			}
			var calls atomic.Int32
			k := &Keeper{Path: path, Resign: fakeResign(t, path, &calls), Before: 6 * time.Hour, Now: func() time.Time { return now }}
			got, err := k.Check(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.wantResign || (calls.Load() == 1) != tt.wantResign {
				t.Errorf("got resigned=%v (%d calls), want %v", got, calls.Load(), tt.wantResign)
			}
			if tt.wantResign {
				if exp, _ := Expires(path); !exp.Equal(now.Add(24 * time.Hour)) {
					t.Errorf("after re-signing: expiry %v, want %v", exp, now.Add(24*time.Hour))
				}
			}
		})
	}
}

func TestCheckFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timestamp.json")
	writeTimestamp(t, path, 1, now.Add(time.Hour))
	boom := errors.New("key unavailable")
	k := &Keeper{Path: path, Resign: func(context.Context) error { return boom }, Now: func() time.Time { return now }}
	if _, err := k.Check(context.Background()); !errors.Is(err, boom) {
		t.Errorf("got %v, want the Resign error", err)
	}
	if _, err := (&Keeper{Path: path}).Check(context.Background()); err == nil {
		t.Errorf("no Resign: got no error")
	}
}

// TestRun: the keeper re-signs once when the timestamp runs short, not on
// every look, and stops with its context.
func TestRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timestamp.json")
	writeTimestamp(t, path, 1, now.Add(time.Hour))
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	k := &Keeper{Path: path, Resign: fakeResign(t, path, &calls), Every: time.Millisecond, Now: func() time.Time { return now }}
	done := make(chan error)
	go func() { done <- k.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: got %v, want context.Canceled", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("Resign calls: got %d, want 1", got)
	}
}
