// Package devicedb is the manifest server's record of its devices: an
// embedded SQLite database (pure Go, modernc.org/sqlite) in WAL mode, so
// `manifest-server devices` can read it while the server writes.
//
// The model: a device is registered by its first accepted report, which
// binds its id to its ed25519 public key (trust on first use). Every later
// report must come with the same key and a sequence number above the last
// one accepted; Accept checks both inside the transaction that stores the
// report, so two reports racing for the same device cannot both win. The
// devices table holds the latest state of each device; the events table
// holds every accepted report (the newest MaxEventsPerDevice per device),
// for history and monitoring.
//
// The schema is versioned: schema_version holds the number of migrations
// applied, and Open applies the missing ones in order.
package devicedb

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/healthguard/gateway-ota/manifest-server/report"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// MaxEventsPerDevice is how many events per device the database keeps.
const MaxEventsPerDevice = 1000

// Sentinels Accept returns; the server maps them to HTTP statuses.
var (
	// ErrKeyMismatch: the report's key is not the one the device registered.
	ErrKeyMismatch = errors.New("public key differs from the registered one")
	// ErrReplay: the report's sequence number is not above the last one.
	ErrReplay = errors.New("sequence number not above the last accepted one")
	// ErrUnknownDevice: a first report without a public key.
	ErrUnknownDevice = errors.New("unknown device and no public key to register")
	// ErrNotFound: no device with that id.
	ErrNotFound = errors.New("no such device")
)

// ReplayError is the ErrReplay refusal with the last accepted number.
type ReplayError struct{ Seq, LastSeq uint64 }

func (e *ReplayError) Error() string {
	return fmt.Sprintf("sequence number %d not above the last accepted %d", e.Seq, e.LastSeq)
}

// Is makes errors.Is(err, ErrReplay) true.
func (e *ReplayError) Is(target error) bool { return target == ErrReplay }

// Device is the latest state of one device.
type Device struct {
	ID        string            `json:"id"`
	PublicKey ed25519.PublicKey `json:"public_key"`
	FirstSeen time.Time         `json:"first_seen"`
	LastSeen  time.Time         `json:"last_seen"`
	Release   string            `json:"release"`
	Counter   uint64            `json:"counter"`
	Slot      string            `json:"slot"`
	Phase     string            `json:"phase"`
	// LastError is the newest non-empty error the device reported; a
	// report in the committed phase clears it.
	LastError string `json:"last_error"`
	LastSeq   uint64 `json:"last_seq"`
}

// Event is one accepted report.
type Event struct {
	ID       int64     `json:"id"`
	Device   string    `json:"device"`
	Received time.Time `json:"received"`
	Remote   string    `json:"remote,omitempty"`
	// DeviceTime is the time the device wrote into the report.
	DeviceTime time.Time `json:"device_time"`
	Seq        uint64    `json:"seq"`
	Release    string    `json:"release"`
	Counter    uint64    `json:"counter"`
	Slot       string    `json:"slot"`
	Phase      string    `json:"phase"`
	Error      string    `json:"error"`
	Progress   float64   `json:"progress"`
}

// DB is an open device database. It is safe for concurrent use.
type DB struct {
	sql *sql.DB
}

// Open opens (creating if needed) the database file at path and brings its
// schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open device database: unusable path %q", path)
	}
	// _txlock=immediate takes the write lock at BEGIN, so concurrent
	// writers wait for each other (busy_timeout) instead of failing on a
	// read-to-write upgrade.
	dsn := "file:" + path + "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate&_foreign_keys=1"
	s, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open device database %s: %w", path, err)
	}
	s.SetMaxOpenConns(4)
	db := &DB{sql: s}
	if err := db.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open device database %s: %w", path, err)
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// migrations[i] brings the schema from version i to i+1. Append only.
var migrations = []string{
	`CREATE TABLE devices (
		id         TEXT PRIMARY KEY,
		pubkey     BLOB NOT NULL,
		first_seen INTEGER NOT NULL, -- unix nanoseconds, server clock
		last_seen  INTEGER NOT NULL,
		release    TEXT NOT NULL DEFAULT '',
		counter    INTEGER NOT NULL DEFAULT 0,
		slot       TEXT NOT NULL DEFAULT '',
		phase      TEXT NOT NULL DEFAULT '',
		last_error TEXT NOT NULL DEFAULT '',
		last_seq   INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE events (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		device      TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
		received    INTEGER NOT NULL,
		remote      TEXT NOT NULL DEFAULT '',
		device_time INTEGER NOT NULL,
		seq         INTEGER NOT NULL,
		release     TEXT NOT NULL DEFAULT '',
		counter     INTEGER NOT NULL DEFAULT 0,
		slot        TEXT NOT NULL DEFAULT '',
		phase       TEXT NOT NULL DEFAULT '',
		error       TEXT NOT NULL DEFAULT '',
		progress    REAL NOT NULL DEFAULT 0
	);
	CREATE INDEX events_device ON events(device, id);`,
}

func (db *DB) migrate(ctx context.Context) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("schema version table: %w", err)
	}
	var v int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("schema version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program's %d", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	return tx.Commit()
}

// SchemaVersion returns the number of migrations applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := db.sql.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	return v, err
}

// Accept stores a report whose signature the caller verified against key.
// key must be the device's registered key; for an unknown device it is
// registered. It returns ErrKeyMismatch, a *ReplayError (ErrReplay) or
// ErrUnknownDevice when the report must be refused; nothing is stored then.
func (db *DB) Accept(ctx context.Context, r report.Report, key ed25519.PublicKey, received time.Time, remote string) error {
	if len(key) != ed25519.PublicKeySize {
		return ErrUnknownDevice
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("accept report: %w", err)
	}
	defer tx.Rollback()
	var (
		pub     []byte
		lastSeq int64
	)
	now := received.UnixNano()
	err = tx.QueryRowContext(ctx, `SELECT pubkey, last_seq FROM devices WHERE id = ?`, r.Device).Scan(&pub, &lastSeq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, `INSERT INTO devices (id, pubkey, first_seen, last_seen) VALUES (?, ?, ?, ?)`,
			r.Device, []byte(key), now, now)
		if err != nil {
			return fmt.Errorf("register device %s: %w", r.Device, err)
		}
	case err != nil:
		return fmt.Errorf("look up device %s: %w", r.Device, err)
	default:
		if !bytes.Equal(pub, key) {
			return ErrKeyMismatch
		}
		if r.Seq <= uint64(lastSeq) {
			return &ReplayError{Seq: r.Seq, LastSeq: uint64(lastSeq)}
		}
	}
	if r.Seq > 1<<63-1 {
		return fmt.Errorf("accept report: %w: seq %d too large", report.ErrInvalid, r.Seq)
	}
	lastErr := `last_error`
	switch {
	case r.Error != "":
		lastErr = `:err`
	case r.Phase == report.PhaseCommitted:
		lastErr = `''`
	}
	_, err = tx.ExecContext(ctx, `UPDATE devices SET last_seen = :now, release = :release, counter = :counter,
		slot = :slot, phase = :phase, last_error = `+lastErr+`, last_seq = :seq WHERE id = :id`,
		sql.Named("now", now), sql.Named("release", r.Release), sql.Named("counter", int64(r.Counter)),
		sql.Named("slot", r.Slot), sql.Named("phase", r.Phase), sql.Named("err", r.Error),
		sql.Named("seq", int64(r.Seq)), sql.Named("id", r.Device))
	if err != nil {
		return fmt.Errorf("update device %s: %w", r.Device, err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO events (device, received, remote, device_time, seq, release, counter, slot, phase, error, progress)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Device, now, remote, unixNano(r.Time), int64(r.Seq), r.Release, int64(r.Counter), r.Slot, r.Phase, r.Error, r.Progress)
	if err != nil {
		return fmt.Errorf("record event of %s: %w", r.Device, err)
	}
	if id, err := res.LastInsertId(); err == nil && id%100 == 0 {
		// Now and then, drop the oldest events of this device.
		_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE device = ? AND id <
			(SELECT id FROM events WHERE device = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
			r.Device, r.Device, MaxEventsPerDevice-1)
		if err != nil {
			return fmt.Errorf("prune events of %s: %w", r.Device, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("accept report: %w", err)
	}
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
