// Package publish writes the signed release repository: keys, The Update Framework's
// metadata and the payload files, as plain files any static web server can serve.
//
// The repository directory:
//
//	metadata/N.root.json         every root version, N = 1, 2, ... (the chain devices walk)
//	metadata/root.json           a copy of the newest root, for installing onto new cards
//	metadata/N.targets.json      consistent-snapshot targets (release key, offline)
//	metadata/N.snapshot.json     consistent-snapshot snapshot (online key)
//	metadata/timestamp.json      the only file rewritten in place (online key)
//	targets/<dir>/<sha256>.<base> payload of target path <dir>/<base>
//
// Publishing never breaks a repository devices are reading: new files are written
// under new names first (payloads, then N.targets.json, then N.snapshot.json), each
// through a temporary file, fsync and rename, and timestamp.json is replaced last. A
// device that read the old timestamp.json finds every file it names still there; a
// publish that dies half-way leaves only unreferenced files. Writers on one host are
// serialised by an flock on metadata/.lock, so the manifest server re-signing the
// timestamp and a release being published do not race.
//
// Who calls what:
//   - `imagebuilder keygen`: Keygen (all keys and the initial root.json).
//   - `imagebuilder init-repo`: Init (root, empty targets, snapshot, timestamp).
//   - `imagebuilder release`: Open(repo, keys) then AddTargets with the payloads and
//     the release manifest, whose custom is the release.Summary (see AddRelease).
//   - manifest-server: Open(repo, keys) with only timestamp.key (and snapshot.key)
//     present, then ResignTimestamp before TimestampExpires.
//   - `imagebuilder resign`: Open(repo, keys) then ResignTargets, before targets.json
//     expires in a repository that published no release for a while.
//   - `imagebuilder rotate-root`: RotateRoot, signed by a threshold of the old and of
//     the new root keys.
package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
	"github.com/healthguard/gateway-ota/updater/release"
)

// Directory names inside a repository.
const (
	MetadataDir = "metadata"
	TargetsDir  = "targets"
)

// ErrExists is returned when a target path is published again with other content:
// a version once published is immutable; publish a new version instead.
var ErrExists = errors.New("target already published with other content")

// Options configures a Repo. Zero values take the defaults.
type Options struct {
	// TargetsExpiry is the lifetime of targets metadata; 0 means DefaultTargetsExpiry.
	TargetsExpiry time.Duration
	// SnapshotExpiry; 0 means DefaultSnapshotExpiry.
	SnapshotExpiry time.Duration
	// TimestampExpiry; 0 means DefaultTimestampExpiry.
	TimestampExpiry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Repo is a repository directory and the keys available to sign it.
type Repo struct {
	Dir  string
	keys *Keys
	opts Options
}

// Open opens an existing repository with the keys found in keysDir. Which keys must
// be present depends on the operation.
func Open(repoDir, keysDir string, opts Options) (*Repo, error) {
	ks, err := LoadKeys(keysDir)
	if err != nil {
		return nil, err
	}
	r := &Repo{Dir: repoDir, keys: ks, opts: opts}
	if _, err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// Init creates a repository in repoDir from keysDir (written by Keygen): the root
// from keysDir/root.json as metadata/1.root.json, an empty targets, a snapshot and a
// timestamp. It refuses a directory that already holds metadata.
func Init(repoDir, keysDir string, opts Options) (*Repo, error) {
	ks, err := LoadKeys(keysDir)
	if err != nil {
		return nil, err
	}
	rootData, err := os.ReadFile(filepath.Join(keysDir, RootFile))
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	root, err := metadata.Root().FromBytes(rootData)
	if err != nil {
		return nil, fmt.Errorf("init: %s: %w", RootFile, err)
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		return nil, fmt.Errorf("init: %s does not verify: %w", RootFile, err)
	}
	r := &Repo{Dir: repoDir, keys: ks, opts: opts}
	mdir := filepath.Join(repoDir, MetadataDir)
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(repoDir, TargetsDir), 0o755); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	unlock, err := lock(mdir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if m, _ := filepath.Glob(filepath.Join(mdir, "*.json")); len(m) > 0 {
		return nil, fmt.Errorf("init: %s already holds metadata", mdir)
	}
	st := &state{root: root}
	for role, k := range map[string]*Key{metadata.TARGETS: ks.Targets, metadata.SNAPSHOT: ks.Snapshot, metadata.TIMESTAMP: ks.Timestamp} {
		if err := r.checkKey(st, role, k); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	name := strconv.FormatInt(root.Signed.Version, 10) + ".root.json"
	if err := writeFileAtomic(mdir, name, rootData, 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(mdir, "root.json", rootData, 0o644); err != nil {
		return nil, err
	}
	st.targets = metadata.Targets()
	st.targets.Signed.Version = 0 // writeTargets bumps it to 1
	st.snapshot = metadata.Snapshot()
	st.snapshot.Signed.Version = 0
	st.timestamp = metadata.Timestamp()
	st.timestamp.Signed.Version = 0
	if err := r.writeTargets(st); err != nil {
		return nil, err
	}
	return r, nil
}

// AddTargets publishes files: files maps a target path (checked by
// release.ValidTargetPath) to a local file, custom optionally maps a target path of
// files to its custom JSON. Each file is stream-copied into targets/ under its
// consistent-snapshot name while it is hashed (never held in memory; it is read once,
// so what is hashed is what is published), then targets, snapshot and timestamp are
// bumped, signed and written, timestamp.json last. Needs targets, snapshot and
// timestamp keys. Republishing a path with identical content and custom is a no-op
// for that path; with other content it fails with ErrExists.
func (r *Repo) AddTargets(files map[string]string, custom map[string]json.RawMessage) error {
	return r.addTargets(files, custom, nil)
}

// addTargets is AddTargets with a check of the copied entries before anything is
// signed.
func (r *Repo) addTargets(files map[string]string, custom map[string]json.RawMessage, check func(map[string]*metadata.TargetFiles) error) error {
	for p := range custom {
		if _, ok := files[p]; !ok {
			return fmt.Errorf("add targets: custom for %q, which is not among the files", p)
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		if err := release.ValidTargetPath(p); err != nil {
			return fmt.Errorf("add targets: %w", err)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	entries := map[string]*metadata.TargetFiles{}
	for _, p := range paths {
		tf, err := r.copyTarget(p, files[p])
		if err != nil {
			return fmt.Errorf("add targets: %w", err)
		}
		if c, ok := custom[p]; ok {
			var compact bytes.Buffer
			if err := json.Compact(&compact, c); err != nil {
				return fmt.Errorf("add targets: custom for %q: %w", p, err)
			}
			raw := json.RawMessage(compact.Bytes())
			tf.Custom = &raw
		}
		entries[p] = tf
	}
	if check != nil {
		if err := check(entries); err != nil {
			return err
		}
	}
	unlock, err := lock(filepath.Join(r.Dir, MetadataDir))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return err
	}
	changed := false
	for _, p := range paths {
		tf := entries[p]
		if old, ok := st.targets.Signed.Targets[p]; ok {
			if sameTarget(old, tf) {
				continue
			}
			return fmt.Errorf("add targets: %q: %w", p, ErrExists)
		}
		st.targets.Signed.Targets[p] = tf
		changed = true
	}
	if !changed {
		return nil
	}
	return r.writeTargets(st)
}

// AddRelease publishes a release: the payload files (target path -> local file, the
// paths the manifest's Payloads name) and the manifest itself as
// release.ManifestPath(m.Version) with the manifest's Summary as custom. Every payload
// the manifest names must be among files with the signed size and hash the manifest
// states.
func (r *Repo) AddRelease(m *release.Manifest, files map[string]string) error {
	data, err := m.Marshal()
	if err != nil {
		return fmt.Errorf("add release: %w", err)
	}
	summary, err := m.Summary().Marshal()
	if err != nil {
		return fmt.Errorf("add release: %w", err)
	}
	for _, p := range m.Payloads {
		if _, ok := files[p.Target]; !ok {
			return fmt.Errorf("add release: payload %q has no file", p.Target)
		}
	}
	tmp, err := os.CreateTemp("", "release-*.json")
	if err != nil {
		return fmt.Errorf("add release: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("add release: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("add release: %w", err)
	}
	all := map[string]string{release.ManifestPath(m.Version): tmp.Name()}
	for p, f := range files {
		all[p] = f
	}
	// Compare what was copied (and hashed while copying, P5) with what the
	// manifest states, before anything is signed.
	check := func(entries map[string]*metadata.TargetFiles) error {
		for _, p := range m.Payloads {
			tf := entries[p.Target]
			sum := hex.EncodeToString(tf.Hashes["sha256"])
			if tf.Length != p.Size || sum != p.SHA256 {
				return fmt.Errorf("add release: payload %q is %d bytes sha256 %s, the manifest says %d bytes sha256 %s", p.Target, tf.Length, sum, p.Size, p.SHA256)
			}
		}
		return nil
	}
	return r.addTargets(all, map[string]json.RawMessage{release.ManifestPath(m.Version): summary}, check)
}

// ResignTimestamp writes a new timestamp.json (version + 1, same snapshot) that
// expires after expiry (0 means Options.TimestampExpiry). If snapshot.key is present
// and snapshot.json would expire before the new timestamp, the snapshot is renewed
// too. Needs timestamp.key. This is the manifest server's periodic job.
func (r *Repo) ResignTimestamp(expiry time.Duration) error {
	if expiry == 0 {
		expiry = r.timestampExpiry()
	}
	return r.locked(func(st *state) error {
		if r.keys.Snapshot != nil && !st.snapshot.Signed.Expires.After(r.now().Add(expiry)) {
			return r.writeSnapshot(st, expiry)
		}
		return r.writeTimestamp(st, expiry)
	})
}

// ResignTargets renews targets.json without changing what it lists: targets
// version+1 expiring after Options.TargetsExpiry, then a new snapshot and
// timestamp. Devices stop trusting a targets.json once it expires, so a
// repository that publishes no release for longer than that needs this
// before the expiry. Needs targets, snapshot and timestamp keys.
func (r *Repo) ResignTargets() error {
	return r.locked(r.writeTargets)
}

// locked runs f on the repository's current state under the metadata lock.
func (r *Repo) locked(f func(*state) error) error {
	unlock, err := lock(filepath.Join(r.Dir, MetadataDir))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return err
	}
	return f(st)
}

// Expires reports when the current targets, snapshot and timestamp metadata
// expire.
func (r *Repo) Expires() (targets, snapshot, timestamp time.Time, err error) {
	st, err := r.load()
	if err != nil {
		return
	}
	return st.targets.Signed.Expires, st.snapshot.Signed.Expires, st.timestamp.Signed.Expires, nil
}

// TimestampExpires reports when the current timestamp.json expires.
func (r *Repo) TimestampExpires() (time.Time, error) {
	_, _, timestamp, err := r.Expires()
	return timestamp, err
}

// Targets returns the currently published target entries, keyed by target path.
func (r *Repo) Targets() (map[string]*metadata.TargetFiles, error) {
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	return st.targets.Signed.Targets, nil
}

// RootChange describes the next root version. Nil or zero fields keep what the
// current root has.
type RootChange struct {
	// RootKeys replace the root role's keys; RootThreshold its threshold.
	RootKeys      []*Key
	RootThreshold int
	// Targets, Snapshot, Timestamp replace that role's key (the private part is
	// then used to re-sign that role's metadata).
	Targets, Snapshot, Timestamp *Key
	// Expiry of the new root; 0 means DefaultRootExpiry.
	Expiry time.Duration
}

// RotateRoot writes root version N+1 with the change, signed by signers, which must
// include a threshold of the current root keys and a threshold of the new ones (S11);
// it checks both before writing. If a top-level role's key changed, targets, snapshot
// and timestamp are re-signed with the new keys.
func (r *Repo) RotateRoot(ch RootChange, signers ...*Key) error {
	unlock, err := lock(filepath.Join(r.Dir, MetadataDir))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return err
	}
	next, err := metadata.Root().FromBytes(st.rootData)
	if err != nil {
		return err
	}
	next.Signed.Version++
	expiry := ch.Expiry
	if expiry == 0 {
		expiry = DefaultRootExpiry
	}
	next.Signed.Expires = r.now().Add(expiry).UTC().Truncate(time.Second)
	replace := func(role string, keys []*Key) error {
		for _, id := range append([]string(nil), next.Signed.Roles[role].KeyIDs...) {
			if err := next.Signed.RevokeKey(id, role); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := next.Signed.AddKey(k.Public, role); err != nil {
				return err
			}
		}
		return nil
	}
	rolesChanged := false
	if ch.RootKeys != nil {
		if err := replace(metadata.ROOT, ch.RootKeys); err != nil {
			return err
		}
	}
	if ch.RootThreshold != 0 {
		next.Signed.Roles[metadata.ROOT].Threshold = ch.RootThreshold
	}
	for role, k := range map[string]*Key{metadata.TARGETS: ch.Targets, metadata.SNAPSHOT: ch.Snapshot, metadata.TIMESTAMP: ch.Timestamp} {
		if k == nil {
			continue
		}
		if err := replace(role, []*Key{k}); err != nil {
			return err
		}
		rolesChanged = true
	}
	// The keys after the change. Under a new role key everything is
	// re-signed at once: each key that takes must be at hand before
	// anything is written.
	keys := *r.keys
	if ch.Targets != nil {
		keys.Targets = ch.Targets
	}
	if ch.Snapshot != nil {
		keys.Snapshot = ch.Snapshot
	}
	if ch.Timestamp != nil {
		keys.Timestamp = ch.Timestamp
	}
	if ch.RootKeys != nil {
		keys.Root = ch.RootKeys
	}
	if rolesChanged {
		roles := []struct {
			name string
			key  *Key
		}{{metadata.TARGETS, keys.Targets}, {metadata.SNAPSHOT, keys.Snapshot}, {metadata.TIMESTAMP, keys.Timestamp}}
		for _, role := range roles {
			if err := r.checkKey(&state{root: next}, role.name, role.key); err != nil {
				return fmt.Errorf("rotate root: re-signing under the new root: %w", err)
			}
		}
	}
	next.ClearSignatures()
	for _, k := range signers {
		if _, err := next.Sign(k.Signer()); err != nil {
			return err
		}
	}
	if err := st.root.VerifyDelegate(metadata.ROOT, next); err != nil {
		return fmt.Errorf("rotate root: not signed by a threshold of root v%d: %w", st.root.Signed.Version, err)
	}
	if err := next.VerifyDelegate(metadata.ROOT, next); err != nil {
		return fmt.Errorf("rotate root: not signed by a threshold of its own keys: %w", err)
	}
	data, err := next.ToBytes(true)
	if err != nil {
		return err
	}
	mdir := filepath.Join(r.Dir, MetadataDir)
	if err := writeFileAtomic(mdir, strconv.FormatInt(next.Signed.Version, 10)+".root.json", data, 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(mdir, "root.json", data, 0o644); err != nil {
		return err
	}
	r.keys = &keys
	if !rolesChanged {
		return nil
	}
	st.root, st.rootData = next, data
	return r.writeTargets(st)
}

// state is the current top-level metadata of the repository.
type state struct {
	root      *metadata.Metadata[metadata.RootType]
	rootData  []byte
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
}

// load reads the newest root, timestamp.json and the snapshot and targets it names.
func (r *Repo) load() (*state, error) {
	mdir := filepath.Join(r.Dir, MetadataDir)
	st := &state{}
	for v := int64(1); ; v++ {
		data, err := os.ReadFile(filepath.Join(mdir, strconv.FormatInt(v, 10)+".root.json"))
		if errors.Is(err, fs.ErrNotExist) && v > 1 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("open repository: %w", err)
		}
		st.rootData = data
	}
	var err error
	if st.root, err = metadata.Root().FromBytes(st.rootData); err != nil {
		return nil, fmt.Errorf("open repository: root: %w", err)
	}
	if st.timestamp, err = metadata.Timestamp().FromFile(filepath.Join(mdir, "timestamp.json")); err != nil {
		return nil, fmt.Errorf("open repository: timestamp: %w", err)
	}
	sm, ok := st.timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, errors.New("open repository: timestamp names no snapshot")
	}
	if st.snapshot, err = metadata.Snapshot().FromFile(filepath.Join(mdir, strconv.FormatInt(sm.Version, 10)+".snapshot.json")); err != nil {
		return nil, fmt.Errorf("open repository: snapshot: %w", err)
	}
	tm, ok := st.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return nil, errors.New("open repository: snapshot names no targets")
	}
	if st.targets, err = metadata.Targets().FromFile(filepath.Join(mdir, strconv.FormatInt(tm.Version, 10)+".targets.json")); err != nil {
		return nil, fmt.Errorf("open repository: targets: %w", err)
	}
	if st.targets.Signed.Targets == nil {
		st.targets.Signed.Targets = map[string]*metadata.TargetFiles{}
	}
	return st, nil
}

// checkKey makes sure key exists and is one the root names for role.
func (r *Repo) checkKey(st *state, role string, key *Key) error {
	if key == nil {
		return fmt.Errorf("no %s key in the keys directory", role)
	}
	for _, id := range st.root.Signed.Roles[role].KeyIDs {
		if id == key.ID() {
			return nil
		}
	}
	return fmt.Errorf("the %s key %s is not a %s key of root version %d", role, key.ID(), role, st.root.Signed.Version)
}

// writeTargets signs and writes targets version+1, then the snapshot and timestamp.
func (r *Repo) writeTargets(st *state) error {
	if err := r.checkKey(st, metadata.TARGETS, r.keys.Targets); err != nil {
		return err
	}
	t := st.targets
	t.Signed.Version++
	t.Signed.Expires = r.expires(r.opts.TargetsExpiry, DefaultTargetsExpiry)
	data, err := signAndWrite(r.Dir, strconv.FormatInt(t.Signed.Version, 10)+".targets.json", t, r.keys.Targets)
	if err != nil {
		return err
	}
	st.snapshot.Signed.Meta["targets.json"] = metaFile(t.Signed.Version, data)
	return r.writeSnapshot(st, r.timestampExpiry())
}

// writeSnapshot signs and writes snapshot version+1, then the timestamp.
func (r *Repo) writeSnapshot(st *state, timestampExpiry time.Duration) error {
	if err := r.checkKey(st, metadata.SNAPSHOT, r.keys.Snapshot); err != nil {
		return err
	}
	s := st.snapshot
	s.Signed.Version++
	s.Signed.Expires = r.expires(r.opts.SnapshotExpiry, DefaultSnapshotExpiry)
	data, err := signAndWrite(r.Dir, strconv.FormatInt(s.Signed.Version, 10)+".snapshot.json", s, r.keys.Snapshot)
	if err != nil {
		return err
	}
	st.timestamp.Signed.Meta["snapshot.json"] = metaFile(s.Signed.Version, data)
	return r.writeTimestamp(st, timestampExpiry)
}

// writeTimestamp signs and replaces timestamp.json: the last write of a publish.
func (r *Repo) writeTimestamp(st *state, expiry time.Duration) error {
	if err := r.checkKey(st, metadata.TIMESTAMP, r.keys.Timestamp); err != nil {
		return err
	}
	ts := st.timestamp
	ts.Signed.Version++
	ts.Signed.Expires = r.now().Add(expiry).UTC().Truncate(time.Second)
	_, err := signAndWrite(r.Dir, "timestamp.json", ts, r.keys.Timestamp)
	return err
}

// signAndWrite signs md with key alone and writes it into the repository
// repoDir as metadata/name, returning the bytes written.
func signAndWrite[T metadata.Roles](repoDir, name string, md *metadata.Metadata[T], key *Key) ([]byte, error) {
	md.ClearSignatures()
	if _, err := md.Sign(key.Signer()); err != nil {
		return nil, err
	}
	data, err := md.ToBytes(true)
	if err != nil {
		return nil, err
	}
	return data, writeFileAtomic(filepath.Join(repoDir, MetadataDir), name, data, 0o644)
}

func metaFile(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	return &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

func (r *Repo) now() time.Time {
	if r.opts.Now != nil {
		return r.opts.Now()
	}
	return time.Now()
}

func (r *Repo) expires(d, def time.Duration) time.Time {
	if d == 0 {
		d = def
	}
	return r.now().Add(d).UTC().Truncate(time.Second)
}

func (r *Repo) timestampExpiry() time.Duration {
	if r.opts.TimestampExpiry != 0 {
		return r.opts.TimestampExpiry
	}
	return DefaultTimestampExpiry
}

// TargetFileName is the consistent-snapshot file name of a target, relative to the
// repository's targets/ directory: "<dir>/<sha256 hex>.<base>".
func TargetFileName(targetPath, sha256Hex string) string {
	dir, base := path.Split(targetPath)
	return dir + sha256Hex + "." + base
}

// copyTarget stream-copies src into targets/ under its consistent-snapshot name,
// hashing what it writes.
func (r *Repo) copyTarget(targetPath, src string) (*metadata.TargetFiles, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	dir := filepath.Join(r.Dir, TargetsDir, filepath.FromSlash(path.Dir(targetPath)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	final := filepath.Join(r.Dir, TargetsDir, filepath.FromSlash(TargetFileName(targetPath, hex.EncodeToString(sum))))
	if err := os.Rename(tmp.Name(), final); err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return &metadata.TargetFiles{Length: n, Hashes: metadata.Hashes{"sha256": sum}, Path: targetPath}, nil
}

func sameTarget(a, b *metadata.TargetFiles) bool {
	if !a.Equal(*b) || len(a.Hashes) != len(b.Hashes) {
		return false
	}
	var ca, cb bytes.Buffer
	if a.Custom != nil {
		json.Compact(&ca, *a.Custom)
	}
	if b.Custom != nil {
		json.Compact(&cb, *b.Custom)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// writeFileAtomic writes dir/name through a temporary file, fsync, rename and a
// directory fsync, so readers see the old or the new content, never a mix.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	if strings.ContainsRune(name, '/') {
		return fmt.Errorf("write %s: not a plain name", name)
	}
	if err := atomicfile.Write(filepath.Join(dir, name), data, perm); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
