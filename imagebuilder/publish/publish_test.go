package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/healthguard/gateway-ota/imagebuilder/publish/publishtest"
	"github.com/healthguard/gateway-ota/updater/release"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newRepo(t *testing.T) (keys, repo string, r *Repo, now *time.Time) {
	t.Helper()
	keys, repo = t.TempDir(), t.TempDir()
	clock := t0
	now = &clock
	if err := Keygen(keys, KeygenOptions{Now: func() time.Time { return *now }}); err != nil {
		t.Fatal(err)
	}
	r, err := Init(repo, keys, Options{Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return keys, repo, r, now
}

func TestKeygenFiles(t *testing.T) {
	dir := t.TempDir()
	if err := Keygen(dir, KeygenOptions{RootKeys: 4, RootThreshold: 3}); err != nil {
		t.Fatal(err)
	}
	want := []string{"root-1.key", "root-2.key", "root-3.key", "root-4.key", "targets.key", "snapshot.key", "timestamp.key"}
	for _, name := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode %o, want 600", name, got)
		}
	}
	root, err := metadata.Root().FromFile(filepath.Join(dir, RootFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := root.Signed.Roles[metadata.ROOT].Threshold, 3; got != want {
		t.Errorf("root threshold %d, want %d", got, want)
	}
	if got := len(root.Signed.Roles[metadata.ROOT].KeyIDs); got != 4 {
		t.Errorf("%d root keys, want 4", got)
	}
	if !root.Signed.ConsistentSnapshot || root.Signed.Version != 1 {
		t.Errorf("root: consistent_snapshot %v version %d", root.Signed.ConsistentSnapshot, root.Signed.Version)
	}
	if err := root.VerifyDelegate(metadata.ROOT, root); err != nil {
		t.Errorf("root.json does not verify: %v", err)
	}
	ks, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Root) != 4 || ks.Targets == nil || ks.Snapshot == nil || ks.Timestamp == nil {
		t.Fatalf("LoadKeys = %+v", ks)
	}
	if got, want := root.Signed.Roles[metadata.TARGETS].KeyIDs[0], ks.Targets.ID(); got != want {
		t.Errorf("targets key id in root %s, loaded %s", got, want)
	}
	if err := Keygen(dir, KeygenOptions{}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second Keygen = %v, want a refusal", err)
	}
	if err := Keygen(t.TempDir(), KeygenOptions{RootKeys: 2, RootThreshold: 3}); err == nil {
		t.Errorf("Keygen with threshold > keys succeeded")
	}
	if err := Keygen(t.TempDir(), KeygenOptions{RootKeys: 2, RootThreshold: -1}); err == nil {
		t.Errorf("Keygen with threshold -1 succeeded")
	}
}

func TestLoadKeyRejectsTampered(t *testing.T) {
	dir := t.TempDir()
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	p := filepath.Join(dir, "k.key")
	if err := k.Save(p); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(p)
	if err != nil || got.ID() != k.ID() {
		t.Fatalf("LoadKey = %v, %v", got, err)
	}
	b, _ := os.ReadFile(p)
	b = []byte(strings.Replace(string(b), k.Public.Value.PublicKey, other.Public.Value.PublicKey, 1))
	os.WriteFile(p, b, 0o600)
	if _, err := LoadKey(p); err == nil {
		t.Errorf("LoadKey accepted a key file whose public part does not match")
	}
	if err := k.Save(p); err == nil {
		t.Errorf("Save overwrote an existing file")
	}
}

// publishRelease writes payload files and adds a release.
func publishRelease(t *testing.T, r *Repo, version string, counter uint64) *release.Manifest {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	var payloads []release.Payload
	for _, p := range []struct{ name, forImage string }{{"rootfs.ext4.xz", release.ForRootfs}, {"boot.vfat.xz", release.ForBoot}} {
		content := []byte(strings.Repeat(p.name+version, 1000))
		local := filepath.Join(dir, p.name)
		os.WriteFile(local, content, 0o644)
		sum := sha256.Sum256(content)
		target := release.PayloadPath(version, p.name)
		files[target] = local
		payloads = append(payloads, release.Payload{Kind: release.KindFull, Target: target, Codec: release.CodecXZ,
			Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), For: p.forImage})
	}
	m := &release.Manifest{
		Schema: release.SchemaVersion, Version: version, Counter: counter, Channel: "stable", Compatible: "rpi4",
		Created: t0, Rootfs: release.Image{Size: 1 << 20, SHA256: strings.Repeat("a", 64)},
		Boot: release.Image{Size: 1 << 20, SHA256: strings.Repeat("b", 64)}, Payloads: payloads,
	}
	if err := r.AddRelease(m, files); err != nil {
		t.Fatal(err)
	}
	return m
}

// referenceClient serves repo over HTTP and refreshes go-tuf's updater,
// trusting the root in keys, with its clock at at.
func referenceClient(t *testing.T, keys, repo string, at time.Time) (*updater.Updater, error) {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	t.Cleanup(srv.Close)
	root, err := os.ReadFile(filepath.Join(keys, RootFile))
	if err != nil {
		t.Fatal(err)
	}
	up := publishtest.ReferenceClient(t, srv.URL, root, "")
	up.UnsafeSetRefTime(at)
	return up, up.Refresh()
}

// The reference client (go-tuf's updater) is the oracle: it must accept the
// repository and download every payload by its consistent-snapshot name.
func TestReferenceClientAcceptsRepository(t *testing.T) {
	keys, repo, r, _ := newRepo(t)
	m1 := publishRelease(t, r, "1.0", 1)
	m2 := publishRelease(t, r, "2.0", 2)
	up, err := referenceClient(t, keys, repo, t0.Add(time.Hour))
	if err != nil {
		t.Fatalf("reference client refresh: %v", err)
	}
	for _, m := range []*release.Manifest{m1, m2} {
		for _, target := range []string{release.ManifestPath(m.Version), m.Payloads[0].Target, m.Payloads[1].Target} {
			ti, err := up.GetTargetInfo(target)
			if err != nil {
				t.Fatalf("GetTargetInfo(%s): %v", target, err)
			}
			if _, _, err := up.DownloadTarget(ti, filepath.Join(t.TempDir(), "x"), ""); err != nil {
				t.Errorf("DownloadTarget(%s): %v", target, err)
			}
		}
		ti, _ := up.GetTargetInfo(release.ManifestPath(m.Version))
		s, err := release.ParseSummary(*ti.Custom)
		if err != nil || s != m.Summary() {
			t.Errorf("custom of %s = %+v, %v; want %+v", m.Version, s, err, m.Summary())
		}
	}
}

// Every file timestamp.json (transitively) names exists: the publish order leaves
// no dangling reference, and versions advance by one per publish.
func TestPublishLayoutAndVersions(t *testing.T) {
	_, repo, r, _ := newRepo(t)
	publishRelease(t, r, "1.0", 1)
	md := filepath.Join(repo, MetadataDir)
	for _, name := range []string{"1.root.json", "root.json", "1.targets.json", "1.snapshot.json", "2.targets.json", "2.snapshot.json", "timestamp.json"} {
		if _, err := os.Stat(filepath.Join(md, name)); err != nil {
			t.Errorf("missing %s: %v", name, err)
		}
	}
	ts, _ := metadata.Timestamp().FromFile(filepath.Join(md, "timestamp.json"))
	if got := ts.Signed.Version; got != 2 {
		t.Errorf("timestamp version %d, want 2", got)
	}
	targets, err := r.Targets()
	if err != nil {
		t.Fatal(err)
	}
	for p, tf := range targets {
		name := filepath.Join(repo, TargetsDir, TargetFileName(p, hex.EncodeToString(tf.Hashes["sha256"])))
		b, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("target %s: %v", p, err)
			continue
		}
		if err := tf.VerifyLengthHashes(b); err != nil {
			t.Errorf("target %s: %v", p, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(repo, TargetsDir, "releases", "1.0", ".tmp-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	if _, err := Init(repo, t.TempDir(), Options{}); err == nil {
		t.Errorf("Init over an existing repository succeeded")
	}
}

func TestRepublish(t *testing.T) {
	_, _, r, _ := newRepo(t)
	publishRelease(t, r, "1.0", 1)
	other := filepath.Join(t.TempDir(), "other")
	os.WriteFile(other, []byte("different"), 0o644)
	err := r.AddTargets(map[string]string{release.PayloadPath("1.0", "rootfs.ext4.xz"): other}, nil)
	if !errors.Is(err, ErrExists) {
		t.Errorf("republish with other content = %v, want ErrExists", err)
	}
	if err := r.AddTargets(map[string]string{"../../etc/shadow": other}, nil); !errors.Is(err, release.ErrInvalid) {
		t.Errorf("AddTargets(../../etc/shadow) = %v, want release.ErrInvalid", err)
	}
}

func TestAddReleaseChecksPayloads(t *testing.T) {
	_, _, r, _ := newRepo(t)
	m := publishRelease(t, r, "1.0", 1)
	m.Version, m.Counter = "1.1", 2
	dir := t.TempDir()
	files := map[string]string{}
	for i := range m.Payloads {
		m.Payloads[i].Target = release.PayloadPath("1.1", filepath.Base(m.Payloads[i].Target))
		local := filepath.Join(dir, filepath.Base(m.Payloads[i].Target))
		os.WriteFile(local, []byte("not what the manifest says"), 0o644)
		files[m.Payloads[i].Target] = local
	}
	if err := r.AddRelease(m, files); err == nil || !strings.Contains(err.Error(), "the manifest says") {
		t.Errorf("AddRelease with mismatching payloads = %v", err)
	}
	targets, _ := r.Targets()
	if _, ok := targets[release.ManifestPath("1.1")]; ok {
		t.Errorf("a refused release was signed")
	}
}

// The manifest server holds only the online keys: it can re-sign the timestamp
// (and renew the snapshot) but not publish releases.
func TestResignTimestampWithOnlineKeys(t *testing.T) {
	keys, repo, r, now := newRepo(t)
	publishRelease(t, r, "1.0", 1)
	online := t.TempDir()
	for _, name := range []string{TimestampKeyFile, SnapshotKeyFile} {
		b, _ := os.ReadFile(filepath.Join(keys, name))
		os.WriteFile(filepath.Join(online, name), b, 0o600)
	}
	srv, err := Open(repo, online, Options{Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := srv.TimestampExpires()
	*now = t0.Add(12 * time.Hour)
	if err := srv.ResignTimestamp(0); err != nil {
		t.Fatal(err)
	}
	after, _ := srv.TimestampExpires()
	if want := t0.Add(36 * time.Hour); !after.Equal(want) || !after.After(before) {
		t.Errorf("timestamp expires %v (was %v), want %v", after, before, want)
	}
	ts, _ := metadata.Timestamp().FromFile(filepath.Join(repo, MetadataDir, "timestamp.json"))
	if ts.Signed.Version != 3 || ts.Signed.Meta["snapshot.json"].Version != 2 {
		t.Errorf("timestamp v%d names snapshot v%d, want v3 naming v2", ts.Signed.Version, ts.Signed.Meta["snapshot.json"].Version)
	}
	// Six and a half days on, the snapshot would expire before the new
	// timestamp: it is renewed.
	*now = t0.Add(6*24*time.Hour + 12*time.Hour)
	if err := srv.ResignTimestamp(0); err != nil {
		t.Fatal(err)
	}
	ts, _ = metadata.Timestamp().FromFile(filepath.Join(repo, MetadataDir, "timestamp.json"))
	if got := ts.Signed.Meta["snapshot.json"].Version; got != 3 {
		t.Errorf("snapshot version %d after renewal, want 3", got)
	}
	sn, _ := metadata.Snapshot().FromFile(filepath.Join(repo, MetadataDir, "3.snapshot.json"))
	if !sn.Signed.Expires.After(ts.Signed.Expires) {
		t.Errorf("renewed snapshot expires %v, not after the timestamp %v", sn.Signed.Expires, ts.Signed.Expires)
	}
	err = srv.AddTargets(map[string]string{"x/y": filepath.Join(keys, RootFile)}, nil)
	if err == nil || !strings.Contains(err.Error(), "no targets key") {
		t.Errorf("AddTargets with only online keys = %v", err)
	}
}

// A keys directory whose keys the root does not name is refused before writing.
func TestForeignKeysRefused(t *testing.T) {
	_, repo, _, _ := newRepo(t)
	foreign := t.TempDir()
	if err := Keygen(foreign, KeygenOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(repo, foreign, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ResignTimestamp(0); err == nil || !strings.Contains(err.Error(), "is not a") {
		t.Errorf("ResignTimestamp with a foreign key = %v", err)
	}
}

func TestSummaryCustomIsCompact(t *testing.T) {
	_, _, r, _ := newRepo(t)
	m := publishRelease(t, r, "1.0", 1)
	targets, _ := r.Targets()
	tf := targets[release.ManifestPath("1.0")]
	want, _ := json.Marshal(m.Summary())
	var got bytes.Buffer
	if tf.Custom == nil || json.Compact(&got, *tf.Custom) != nil || got.String() != string(want) {
		t.Errorf("custom = %s, want %s", got.String(), want)
	}
	// Publishing the same release again is a no-op, not ErrExists.
	dir := t.TempDir()
	files := map[string]string{}
	for _, p := range m.Payloads {
		local := filepath.Join(dir, filepath.Base(p.Target))
		os.WriteFile(local, []byte(strings.Repeat(filepath.Base(p.Target)+"1.0", 1000)), 0o644)
		files[p.Target] = local
	}
	if err := r.AddRelease(m, files); err != nil {
		t.Errorf("republishing the identical release = %v, want nil", err)
	}
}

// A repository that published nothing for longer than the targets expiry is
// refused by the reference client; re-signed before then, it is accepted
// with the same releases.
func TestResignTargets(t *testing.T) {
	keys, repo, r, now := newRepo(t)
	m := publishRelease(t, r, "1.0", 1)
	refresh := func(at time.Time) (*updater.Updater, error) { return referenceClient(t, keys, repo, at) }
	late := t0.Add(DefaultTargetsExpiry + 10*24*time.Hour)
	// The timestamp and snapshot are kept fresh (the manifest server's job);
	// only targets.json is old.
	*now = late.Add(-time.Hour)
	if err := r.ResignTimestamp(0); err != nil {
		t.Fatal(err)
	}
	if _, err := refresh(late); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("refresh with an expired targets.json: %v, want it refused as expired", err)
	}
	before, _, _, _ := r.Expires()
	if err := r.ResignTargets(); err != nil {
		t.Fatal(err)
	}
	after, _, _, err := r.Expires()
	if err != nil || !after.Equal(now.Add(DefaultTargetsExpiry).UTC().Truncate(time.Second)) || !after.After(before) {
		t.Fatalf("targets expire %v after re-signing (was %v), %v", after, before, err)
	}
	up, err := refresh(late)
	if err != nil {
		t.Fatalf("refresh after re-signing: %v", err)
	}
	if _, err := up.GetTargetInfo(release.ManifestPath(m.Version)); err != nil {
		t.Errorf("release %s after re-signing: %v", m.Version, err)
	}
	tg, _ := metadata.Targets().FromFile(filepath.Join(repo, MetadataDir, "3.targets.json"))
	if tg == nil || len(tg.Signed.Targets) != 1+len(m.Payloads) {
		t.Errorf("re-signed targets.json lists %v", tg)
	}
}
