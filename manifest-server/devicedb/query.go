package devicedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

const deviceColumns = `id, pubkey, first_seen, last_seen, release, counter, slot, phase, last_error, last_seq`

func scanDevice(row interface{ Scan(...any) error }) (Device, error) {
	var (
		d                Device
		pub              []byte
		first, last      int64
		counter, lastSeq int64
	)
	if err := row.Scan(&d.ID, &pub, &first, &last, &d.Release, &counter, &d.Slot, &d.Phase, &d.LastError, &lastSeq); err != nil {
		return Device{}, err
	}
	d.PublicKey = pub
	d.FirstSeen, d.LastSeen = fromNano(first), fromNano(last)
	d.Counter, d.LastSeq = uint64(counter), uint64(lastSeq)
	return d, nil
}

// Device returns one device, or ErrNotFound.
func (db *DB) Device(ctx context.Context, id string) (Device, error) {
	d, err := scanDevice(db.sql.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM devices WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("device %s: %w", id, err)
	}
	return d, nil
}

// Devices returns every device, ordered by id.
func (db *DB) Devices(ctx context.Context) ([]Device, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+deviceColumns+` FROM devices ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// Events returns the newest events of a device, newest first, at most
// limit of them (all kept ones if limit <= 0). It returns ErrNotFound for
// an unknown device.
func (db *DB) Events(ctx context.Context, id string, limit int) ([]Event, error) {
	if _, err := db.Device(ctx, id); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT id, device, received, remote, device_time, seq, release, counter, slot, phase, error, progress
		FROM events WHERE device = ? ORDER BY id DESC LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("events of %s: %w", id, err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e             Event
			recv, devTime int64
			seq, counter  int64
		)
		if err := rows.Scan(&e.ID, &e.Device, &recv, &e.Remote, &devTime, &seq, &e.Release, &counter, &e.Slot, &e.Phase, &e.Error, &e.Progress); err != nil {
			return nil, fmt.Errorf("events of %s: %w", id, err)
		}
		e.Received, e.DeviceTime = fromNano(recv), fromNano(devTime)
		e.Seq, e.Counter = uint64(seq), uint64(counter)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of %s: %w", id, err)
	}
	return out, nil
}
