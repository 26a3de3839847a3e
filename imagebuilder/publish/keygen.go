package publish

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Default expiries of the roles.
const (
	DefaultRootExpiry      = 365 * 24 * time.Hour
	DefaultTargetsExpiry   = 90 * 24 * time.Hour
	DefaultSnapshotExpiry  = 7 * 24 * time.Hour
	DefaultTimestampExpiry = 24 * time.Hour
)

// KeygenOptions configures Keygen. Zero values take the defaults given per field.
type KeygenOptions struct {
	// RootKeys is the number of root keys; 0 means 3.
	RootKeys int
	// RootThreshold is how many root keys must sign a root; 0 means 2.
	RootThreshold int
	// RootExpiry is the lifetime of the initial root; 0 means DefaultRootExpiry.
	RootExpiry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Keygen creates the keys of the trust model in dir (created if missing, 0700):
// root-1.key ... root-N.key (offline, threshold RootThreshold), targets.key (the
// release key, build pipeline), snapshot.key and timestamp.key (online), each 0600,
// plus root.json: root version 1, signed by every root key, the trust anchor
// `imagebuilder disk` installs on devices. It refuses to overwrite existing files.
func Keygen(dir string, opts KeygenOptions) error {
	n, k := opts.RootKeys, opts.RootThreshold
	if n == 0 {
		n = 3
	}
	if k == 0 {
		k = 2
	}
	if n < 1 || k < 1 || k > n {
		return fmt.Errorf("keygen: threshold %d of %d root keys: want 1 <= threshold <= keys", k, n)
	}
	names := []string{TargetsKeyFile, SnapshotKeyFile, TimestampKeyFile, RootFile}
	for i := 1; i <= n; i++ {
		names = append(names, RootKeyFile(i))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	for _, name := range names {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("keygen: %s already exists in %s; refusing to overwrite keys", name, dir)
		}
	}
	var ks Keys
	for i := 0; i < n; i++ {
		key, err := GenerateKey()
		if err != nil {
			return err
		}
		ks.Root = append(ks.Root, key)
	}
	var err error
	for _, p := range []**Key{&ks.Targets, &ks.Snapshot, &ks.Timestamp} {
		if *p, err = GenerateKey(); err != nil {
			return err
		}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	expiry := opts.RootExpiry
	if expiry == 0 {
		expiry = DefaultRootExpiry
	}
	root, err := NewRoot(&ks, k, now().Add(expiry))
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	data, err := root.ToBytes(true)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	for i, key := range ks.Root {
		if err := key.Save(filepath.Join(dir, RootKeyFile(i+1))); err != nil {
			return err
		}
	}
	for name, key := range map[string]*Key{TargetsKeyFile: ks.Targets, SnapshotKeyFile: ks.Snapshot, TimestampKeyFile: ks.Timestamp} {
		if err := key.Save(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return writeFileAtomic(dir, RootFile, data, 0o644)
}

// NewRoot builds root metadata version 1 naming the keys of ks with the given root
// threshold (1 for the other roles), signed by every root key.
func NewRoot(ks *Keys, threshold int, expires time.Time) (*metadata.Metadata[metadata.RootType], error) {
	if len(ks.Root) == 0 || ks.Targets == nil || ks.Snapshot == nil || ks.Timestamp == nil {
		return nil, errors.New("new root: root, targets, snapshot and timestamp keys are all needed")
	}
	root := metadata.Root(expires.UTC().Truncate(time.Second))
	for _, k := range ks.Root {
		if err := root.Signed.AddKey(k.Public, metadata.ROOT); err != nil {
			return nil, err
		}
	}
	for role, k := range map[string]*Key{metadata.TARGETS: ks.Targets, metadata.SNAPSHOT: ks.Snapshot, metadata.TIMESTAMP: ks.Timestamp} {
		if err := root.Signed.AddKey(k.Public, role); err != nil {
			return nil, err
		}
	}
	root.Signed.Roles[metadata.ROOT].Threshold = threshold
	for _, k := range ks.Root {
		if _, err := root.Sign(k.Signer()); err != nil {
			return nil, err
		}
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return nil, fmt.Errorf("new root does not verify: %w", err)
	}
	return root, nil
}
