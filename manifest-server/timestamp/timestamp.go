// Package timestamp keeps a repository's timestamp metadata from expiring.
//
// The model: in The Update Framework the timestamp role is short-lived and
// signed with an online key; devices refuse it once it has expired (threat
// S6, freeze attacks). A Keeper looks at metadata/timestamp.json every
// Every, and when its expiry is less than Before away it calls Resign,
// which signs a new version with the online key and replaces the file
// (write a temporary file, then rename, so readers always see a whole
// file). A failed Resign is logged and tried again on the next look.
// Publishing a release also writes a fresh timestamp; the Keeper notices
// the later expiry and waits.
package timestamp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// maxSize bounds the timestamp file the Keeper reads.
const maxSize = 1 << 20

// Expires returns the signed.expires time of a TUF metadata file.
func Expires(path string) (time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxSize {
		return time.Time{}, fmt.Errorf("%s: larger than %d bytes", path, maxSize)
	}
	var md struct {
		Signed struct {
			Type    string    `json:"_type"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return time.Time{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if md.Signed.Expires.IsZero() {
		return time.Time{}, fmt.Errorf("%s: no signed.expires", path)
	}
	return md.Signed.Expires, nil
}

// Keeper re-signs the timestamp metadata before it expires.
type Keeper struct {
	// Path is the timestamp metadata file (metadata/timestamp.json of the
	// repository).
	Path string
	// Resign signs a new timestamp with the online key and stores it at
	// Path. Required.
	Resign func(context.Context) error
	// Before is how long before expiry to re-sign. Zero means 6 hours.
	Before time.Duration
	// Every is how often to look at the file. Zero means 1 minute.
	Every time.Duration
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives one line per re-signing and per failure. Nil means
	// slog.Default().
	Logger *slog.Logger
}

func (k *Keeper) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keeper) logger() *slog.Logger {
	if k.Logger != nil {
		return k.Logger
	}
	return slog.Default()
}

// Check looks at the timestamp once and re-signs it if it expires within
// Before (or cannot be read: a missing or broken timestamp is one devices
// cannot use either). It reports whether it called Resign.
func (k *Keeper) Check(ctx context.Context) (bool, error) {
	if k.Resign == nil {
		return false, errors.New("timestamp keeper has no Resign func")
	}
	before := k.Before
	if before <= 0 {
		before = 6 * time.Hour
	}
	exp, err := Expires(k.Path)
	if err == nil && k.now().Add(before).Before(exp) {
		return false, nil
	}
	reason := "expires " + exp.UTC().Format(time.RFC3339)
	if err != nil {
		reason = err.Error()
	}
	if err := k.Resign(ctx); err != nil {
		return true, fmt.Errorf("re-sign timestamp (%s): %w", reason, err)
	}
	next, err := Expires(k.Path)
	if err != nil {
		return true, fmt.Errorf("re-signed timestamp unreadable: %w", err)
	}
	k.logger().Info("re-signed timestamp", "was", reason, "expires", next.UTC().Format(time.RFC3339))
	return true, nil
}

// Run calls Check at once and then every Every until ctx is done; it
// returns ctx's error.
func (k *Keeper) Run(ctx context.Context) error {
	every := k.Every
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := k.Check(ctx); err != nil && ctx.Err() == nil {
			k.logger().Error("timestamp keeper", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
