package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
)

// Files of a Store.
const (
	RootFile      = "root.json"
	TimestampFile = "timestamp.json"
	SnapshotFile  = "snapshot.json"
	TargetsFile   = "targets.json"
	TimeFile      = "time.json"
)

// Store is the device's trust state in one directory on the data partition:
// root.json (the trusted root: installed with the card image, replaced only by a
// verified rotation), the last verified timestamp.json, snapshot.json and
// targets.json, and time.json, the newest time the device has trusted. Files are
// replaced with temp file, fsync, rename and a directory fsync.
type Store struct {
	Dir string
}

// InstallRoot validates data as a self-signed root (a threshold of its own root
// keys) and installs it as the trusted root. Image building calls it to put the
// trust anchor onto a card.
func (s *Store) InstallRoot(data []byte) error {
	root, err := metadata.Root().FromBytes(data)
	if err != nil {
		return fmt.Errorf("install root: %w", err)
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return fmt.Errorf("install root: %w", err)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("install root: %w", err)
	}
	return s.write(RootFile, data)
}

// TrustedRoot returns the trusted root's bytes; an error wrapping ErrNoTrustedRoot
// when it is missing or unreadable.
func (s *Store) TrustedRoot() ([]byte, error) {
	b, err := s.read(RootFile, maxRootDefault)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoTrustedRoot, err)
	}
	return b, nil
}

// LastTime returns the newest time the device has trusted (zero if none).
func (s *Store) LastTime() (time.Time, error) {
	b, err := s.read(TimeFile, 4096)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	var v struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", TimeFile, err)
	}
	return v.Time, nil
}

// ObserveTime raises time.json to t if t is newer. The updater may call it with a
// time it trusts (for example after a committed boot); Refresh calls it with its
// reference time after a successful verification.
func (s *Store) ObserveTime(t time.Time) error {
	last, err := s.LastTime()
	if err == nil && !t.After(last) {
		return nil
	}
	b, err := json.Marshal(struct {
		Time time.Time `json:"time"`
	}{t.UTC()})
	if err != nil {
		return err
	}
	return s.write(TimeFile, b)
}

// read reads a store file, refusing more than max bytes.
func (s *Store) read(name string, max int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(s.Dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes: %w", name, max, ErrTooLarge)
	}
	return b, nil
}

func (s *Store) write(name string, data []byte) error {
	if err := atomicfile.Write(filepath.Join(s.Dir, name), data, 0o644); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	return nil
}
