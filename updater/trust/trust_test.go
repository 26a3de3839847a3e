package trust_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/updater/release"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// t0 is the publisher's and the device's clock unless a test moves it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	keys, repo string
	repoObj    *publish.Repo
	srv        *httptest.Server
	requests   atomic.Int64
	store      *trust.Store
	now        time.Time
}

// newFixture: keygen, init-repo, publish release 1.0 (counter 1), serve the
// repository with http.FileServer, and a device store holding the keygen root.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{keys: t.TempDir(), repo: t.TempDir(), now: t0}
	clock := func() time.Time { return f.now }
	if err := publish.Keygen(f.keys, publish.KeygenOptions{Now: clock}); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.repoObj, err = publish.Init(f.repo, f.keys, publish.Options{Now: clock}); err != nil {
		t.Fatal(err)
	}
	f.publish(t, "1.0", 1)
	fs := http.FileServer(http.Dir(f.repo))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.store = &trust.Store{Dir: filepath.Join(t.TempDir(), "data/ota/trust")}
	root, err := os.ReadFile(filepath.Join(f.keys, publish.RootFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.InstallRoot(root); err != nil {
		t.Fatal(err)
	}
	return f
}

// publish adds a release with small fake payloads.
func (f *fixture) publish(t *testing.T, version string, counter uint64) *release.Manifest {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	var payloads []release.Payload
	for _, p := range []struct{ name, forImage string }{{"rootfs.ext4.xz", release.ForRootfs}, {"boot.vfat.xz", release.ForBoot}} {
		content := []byte(p.name + " of " + version)
		local := filepath.Join(dir, p.name)
		if err := os.WriteFile(local, content, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		target := release.PayloadPath(version, p.name)
		files[target] = local
		payloads = append(payloads, release.Payload{Kind: release.KindFull, Target: target, Codec: release.CodecXZ,
			Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), For: p.forImage})
	}
	m := &release.Manifest{
		Schema: release.SchemaVersion, Version: version, Counter: counter, Channel: "stable", Compatible: "rpi4",
		Created: f.now, Rootfs: release.Image{Size: 4096, SHA256: strings.Repeat("a", 64)},
		Boot: release.Image{Size: 4096, SHA256: strings.Repeat("b", 64)}, Payloads: payloads,
		HealthChecks:   []release.HealthCheck{{Kind: release.CheckSystemd, Unit: "app.service"}},
		HealthDeadline: release.Duration(time.Minute),
	}
	if err := f.repoObj.AddRelease(m, files); err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) client() *trust.Client {
	return &trust.Client{BaseURL: f.srv.URL, HTTP: f.srv.Client(), Store: f.store, Now: func() time.Time { return f.now }}
}

func (f *fixture) meta(name string) string { return filepath.Join(f.repo, "metadata", name) }

// editJSON rewrites a metadata file through a generic JSON tree.
func editJSON(t *testing.T, file string, edit func(m map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storeFiles snapshots the device store to show nothing was persisted.
func storeFiles(t *testing.T, s *trust.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// wantRefused runs Refresh and asserts the error and that the store is unchanged.
func wantRefused(t *testing.T, f *fixture, c *trust.Client, sentinel error) error {
	t.Helper()
	before := storeFiles(t, f.store)
	rels, err := c.Refresh(context.Background())
	if !errors.Is(err, sentinel) {
		t.Fatalf("Refresh() = %v, %v; want an error wrapping %v", rels, err, sentinel)
	}
	if after := storeFiles(t, f.store); !sameFiles(before, after) {
		t.Errorf("refused refresh changed the store")
	}
	if len(c.Releases()) != 0 {
		t.Errorf("Releases() after a refused first refresh = %v, want none", c.Releases())
	}
	return err
}

func TestRefreshAndFetchManifest(t *testing.T) {
	f := newFixture(t)
	want := f.publish(t, "2.0", 2)
	c := f.client()
	rels, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(rels); got != 2 {
		t.Fatalf("got %d releases, want 2: %+v", got, rels)
	}
	latest, ok := c.Latest("rpi4", "stable")
	if !ok || latest.Version != "2.0" || latest.Counter != 2 {
		t.Errorf("Latest = %+v, %v; want 2.0 counter 2", latest, ok)
	}
	if _, ok := c.Latest("rpi5", "stable"); ok {
		t.Errorf("Latest found a release for another board")
	}
	m, err := c.FetchManifest(context.Background(), "2.0")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != want.Version || m.Payloads[0].SHA256 != want.Payloads[0].SHA256 {
		t.Errorf("manifest = %+v, want %+v", m, want)
	}
	// The payload URL serves exactly the signed bytes.
	p, _ := m.FullPayload(release.ForRootfs)
	u, err := c.TargetURL(p.Target)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "/targets/releases/2.0/"+p.SHA256+".rootfs.ext4.xz") {
		t.Errorf("TargetURL = %s, want a consistent-snapshot name", u)
	}
	resp, err := f.srv.Client().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != p.Size {
		t.Errorf("GET payload: %s, %d bytes; want 200, %d", resp.Status, resp.ContentLength, p.Size)
	}
	ti, err := c.TargetInfo(p.Target)
	if err != nil || ti.Length != p.Size || ti.SHA256 != p.SHA256 {
		t.Errorf("TargetInfo = %+v, %v", ti, err)
	}
	for _, name := range []string{trust.RootFile, trust.TimestampFile, trust.SnapshotFile, trust.TargetsFile, trust.TimeFile} {
		if _, err := os.Stat(filepath.Join(f.store.Dir, name)); err != nil {
			t.Errorf("store: %v", err)
		}
	}
	// A second device run uses the stored metadata and sees a new release.
	f.publish(t, "3.0", 3)
	c2 := f.client()
	if _, err := c2.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l, _ := c2.Latest("rpi4", "stable"); l.Version != "3.0" {
		t.Errorf("after publishing 3.0, Latest = %s", l.Version)
	}
	if _, err := c2.FetchManifest(context.Background(), "9.9"); !errors.Is(err, trust.ErrUnknownRelease) {
		t.Errorf("FetchManifest(unknown) = %v, want ErrUnknownRelease", err)
	}
}

// S1: a byte flipped in targets.json breaks its snapshot hash.
func TestByteFlippedTargets(t *testing.T) {
	f := newFixture(t)
	file := f.meta("2.targets.json")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "release.json")
	b[i] ^= 0x20
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, f, f.client(), trust.ErrVerify)
}

// S1: metadata signed by the wrong key (targets re-signed with the snapshot key,
// snapshot updated to match so only the signature is wrong).
func TestWrongKeySignature(t *testing.T) {
	f := newFixture(t)
	ks, err := publish.LoadKeys(f.keys)
	if err != nil {
		t.Fatal(err)
	}
	ks.Targets = ks.Snapshot
	resignWith(t, f, ks, func(*metadata.Metadata[metadata.TargetsType]) {})
	err = wantRefused(t, f, f.client(), trust.ErrVerify)
	if !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
		t.Errorf("error %v does not wrap go-tuf's ErrUnsignedMetadata", err)
	}
}

// resignWith writes the next targets (the current one changed by edit), snapshot
// and timestamp signed with ks, the way an attacker holding ks would: the
// publisher refuses keys its root does not name, so this bypasses it.
func resignWith(t *testing.T, f *fixture, ks *publish.Keys, edit func(*metadata.Metadata[metadata.TargetsType])) {
	t.Helper()
	ts, err := metadata.Timestamp().FromFile(f.meta("timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	sv := ts.Signed.Meta["snapshot.json"].Version
	sn, err := metadata.Snapshot().FromFile(f.meta(itoa(sv) + ".snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	tv := sn.Signed.Meta["targets.json"].Version
	tg, err := metadata.Targets().FromFile(f.meta(itoa(tv) + ".targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit(tg)
	tg.Signed.Version = tv + 1
	tg.ClearSignatures()
	if _, err := tg.Sign(ks.Targets.Signer()); err != nil {
		t.Fatal(err)
	}
	tb, _ := tg.ToBytes(true)
	writeFile(t, f.meta(itoa(tv+1)+".targets.json"), tb)
	sum := sha256.Sum256(tb)
	sn.Signed.Version = sv + 1
	sn.Signed.Meta["targets.json"] = &metadata.MetaFiles{Version: tv + 1, Length: int64(len(tb)), Hashes: metadata.Hashes{"sha256": sum[:]}}
	sn.ClearSignatures()
	if _, err := sn.Sign(ks.Snapshot.Signer()); err != nil {
		t.Fatal(err)
	}
	sb, _ := sn.ToBytes(true)
	writeFile(t, f.meta(itoa(sv+1)+".snapshot.json"), sb)
	ssum := sha256.Sum256(sb)
	ts.Signed.Version++
	ts.Signed.Meta["snapshot.json"] = &metadata.MetaFiles{Version: sv + 1, Length: int64(len(sb)), Hashes: metadata.Hashes{"sha256": ssum[:]}}
	ts.ClearSignatures()
	if _, err := ts.Sign(ks.Timestamp.Signer()); err != nil {
		t.Fatal(err)
	}
	b, _ := ts.ToBytes(true)
	writeFile(t, f.meta("timestamp.json"), b)
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// S2: an empty signature list.
func TestEmptySignatures(t *testing.T) {
	f := newFixture(t)
	editJSON(t, f.meta("timestamp.json"), func(m map[string]any) { m["signatures"] = []any{} })
	err := wantRefused(t, f, f.client(), trust.ErrVerify)
	if !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
		t.Errorf("error %v does not wrap go-tuf's ErrUnsignedMetadata", err)
	}
}

// S2: a signature by a key id the root does not know (the real signature is
// relabelled) counts for nothing.
func TestUnknownKeyID(t *testing.T) {
	f := newFixture(t)
	editJSON(t, f.meta("timestamp.json"), func(m map[string]any) {
		sigs := m["signatures"].([]any)
		sigs[0].(map[string]any)["keyid"] = strings.Repeat("ab", 32)
	})
	wantRefused(t, f, f.client(), trust.ErrVerify)
}

// S2/S3: a trusted root with threshold 0 is no trust anchor; a repository root
// rotating to threshold 0 is refused.
func TestThresholdZero(t *testing.T) {
	t.Run("installed root", func(t *testing.T) {
		f := newFixture(t)
		ks, _ := publish.LoadKeys(f.keys)
		root, err := metadata.Root().FromFile(filepath.Join(f.keys, publish.RootFile))
		if err != nil {
			t.Fatal(err)
		}
		root.Signed.Roles[metadata.ROOT].Threshold = 0
		root.ClearSignatures()
		for _, k := range ks.Root {
			root.Sign(k.Signer())
		}
		b, _ := root.ToBytes(true)
		if err := f.store.InstallRoot(b); err == nil {
			t.Errorf("InstallRoot accepted a threshold-0 root")
		}
		os.WriteFile(filepath.Join(f.store.Dir, trust.RootFile), b, 0o644)
		wantRefused(t, f, f.client(), trust.ErrNoTrustedRoot)
	})
	t.Run("rotated root", func(t *testing.T) {
		f := newFixture(t)
		ks, _ := publish.LoadKeys(f.keys)
		root, err := metadata.Root().FromFile(f.meta("1.root.json"))
		if err != nil {
			t.Fatal(err)
		}
		root.Signed.Version = 2
		root.Signed.Roles[metadata.TIMESTAMP].Threshold = 0
		root.ClearSignatures()
		for _, k := range ks.Root {
			root.Sign(k.Signer())
		}
		b, _ := root.ToBytes(true)
		os.WriteFile(f.meta("2.root.json"), b, 0o644)
		err = wantRefused(t, f, f.client(), trust.ErrVerify)
		if !strings.Contains(err.Error(), "threshold") {
			t.Errorf("error %v does not name the threshold", err)
		}
	})
}

// S6: a replayed (frozen) timestamp that is still valid by the device's clock,
// which went back (no RTC), but expired at a time the device has already seen.
func TestFreezeWithClockBehindLastSeen(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The device once saw a time two days on (a later check, persisted).
	if err := f.store.ObserveTime(t0.Add(48 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Now its clock reads t0 again and the attacker replays the same files.
	err := wantRefusedAfterSuccess(t, f, f.client(), trust.ErrExpired)
	if !errors.Is(err, &metadata.ErrExpiredMetadata{}) {
		t.Errorf("error %v does not wrap go-tuf's ErrExpiredMetadata", err)
	}
	// Control: the same files and clock with a store that never saw the later
	// time are accepted, so it was the persisted time that refused them.
	fresh := &trust.Store{Dir: t.TempDir()}
	root, _ := os.ReadFile(filepath.Join(f.keys, publish.RootFile))
	if err := fresh.InstallRoot(root); err != nil {
		t.Fatal(err)
	}
	c3 := &trust.Client{BaseURL: f.srv.URL, Store: fresh, Now: func() time.Time { return f.now }}
	if _, err := c3.Refresh(context.Background()); err != nil {
		t.Fatalf("control refresh: %v", err)
	}
}

// wantRefusedAfterSuccess is wantRefused for a store that already holds metadata.
func wantRefusedAfterSuccess(t *testing.T, f *fixture, c *trust.Client, sentinel error) error {
	t.Helper()
	before := storeFiles(t, f.store)
	_, err := c.Refresh(context.Background())
	if !errors.Is(err, sentinel) {
		t.Fatalf("Refresh() = %v; want an error wrapping %v", err, sentinel)
	}
	if after := storeFiles(t, f.store); !sameFiles(before, after) {
		t.Errorf("refused refresh changed the store")
	}
	return err
}

// S6: plainly expired metadata.
func TestExpired(t *testing.T) {
	f := newFixture(t)
	f.now = t0.Add(publish.DefaultTimestampExpiry + time.Minute)
	wantRefused(t, f, f.client(), trust.ErrExpired)
}

// S8: a server that streams timestamp.json forever is cut off at the cap.
func TestEndlessData(t *testing.T) {
	f := newFixture(t)
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/timestamp.json") {
			chunk := []byte(strings.Repeat(" ", 4096))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
		http.FileServer(http.Dir(f.repo)).ServeHTTP(w, r)
	}))
	defer endless.Close()
	c := f.client()
	c.BaseURL = endless.URL
	c.HTTP = endless.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := storeFiles(t, f.store)
	if _, err := c.Refresh(ctx); !errors.Is(err, trust.ErrTooLarge) {
		t.Fatalf("Refresh = %v, want ErrTooLarge", err)
	}
	if !sameFiles(before, storeFiles(t, f.store)) {
		t.Errorf("store changed")
	}
}

// S8: a targets file longer than its signed length is refused before parsing.
func TestTargetsLongerThanSigned(t *testing.T) {
	f := newFixture(t)
	file := f.meta("2.targets.json")
	b, _ := os.ReadFile(file)
	os.WriteFile(file, append(b, []byte(strings.Repeat(" ", 100))...), 0o644)
	wantRefused(t, f, f.client(), trust.ErrTooLarge)
}

// S3: no trusted root means no network access and no install.
func TestMissingTrustedRoot(t *testing.T) {
	f := newFixture(t)
	os.Remove(filepath.Join(f.store.Dir, trust.RootFile))
	f.requests.Store(0)
	wantRefused(t, f, f.client(), trust.ErrNoTrustedRoot)
	if n := f.requests.Load(); n != 0 {
		t.Errorf("%d HTTP requests without a trusted root, want 0", n)
	}
	// Unreadable (garbage) root.
	os.WriteFile(filepath.Join(f.store.Dir, trust.RootFile), []byte("{not json"), 0o644)
	wantRefused(t, f, f.client(), trust.ErrNoTrustedRoot)
	// A store with no Dir content at all.
	c := &trust.Client{BaseURL: f.srv.URL, Store: &trust.Store{Dir: filepath.Join(t.TempDir(), "missing")}}
	if _, err := c.Refresh(context.Background()); !errors.Is(err, trust.ErrNoTrustedRoot) {
		t.Errorf("Refresh with empty store = %v", err)
	}
}

// S13: a correctly signed targets metadata naming ../../etc/shadow is refused.
func TestTraversalTargetPath(t *testing.T) {
	f := newFixture(t)
	ks, _ := publish.LoadKeys(f.keys)
	resignWith(t, f, ks, func(tg *metadata.Metadata[metadata.TargetsType]) {
		tg.Signed.Targets["../../etc/shadow"] = &metadata.TargetFiles{Length: 1, Hashes: metadata.Hashes{"sha256": make([]byte, 32)}}
	})
	err := wantRefused(t, f, f.client(), trust.ErrVerify)
	if !strings.Contains(err.Error(), "etc/shadow") {
		t.Errorf("error %v does not name the path", err)
	}
}

// S11: roots 1 -> 2 -> 3 are walked; each rotation replaces all root keys.
func TestRootRotationWalk(t *testing.T) {
	f := newFixture(t)
	old, _ := publish.LoadKeys(f.keys)
	c := f.client()
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	signers := old.Root
	for v := 2; v <= 3; v++ {
		var next []*publish.Key
		for i := 0; i < 3; i++ {
			k, _ := publish.GenerateKey()
			next = append(next, k)
		}
		ts, _ := publish.GenerateKey()
		if err := f.repoObj.RotateRoot(publish.RootChange{RootKeys: next, Timestamp: ts}, append(append([]*publish.Key{}, signers[:2]...), next[:2]...)...); err != nil {
			t.Fatalf("rotate to v%d: %v", v, err)
		}
		signers = next
	}
	f.publish(t, "2.0", 2)
	rels, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) != 2 {
		t.Errorf("got %d releases, want 2", len(rels))
	}
	root, _ := metadata.Root().FromFile(filepath.Join(f.store.Dir, trust.RootFile))
	if root.Signed.Version != 3 {
		t.Errorf("stored root version %d, want 3", root.Signed.Version)
	}
	// A device freshly flashed with root v1 walks the chain too.
	fresh := &trust.Store{Dir: t.TempDir()}
	r1, _ := os.ReadFile(filepath.Join(f.keys, publish.RootFile))
	fresh.InstallRoot(r1)
	if _, err := (&trust.Client{BaseURL: f.srv.URL, Store: fresh, Now: func() time.Time { return f.now }}).Refresh(context.Background()); err != nil {
		t.Errorf("fresh device: %v", err)
	}
}

// S11: a root v2 signed only by the new keys is refused by the device, and the
// publisher refuses to write one.
func TestRotationSignedOnlyByNewKeys(t *testing.T) {
	f := newFixture(t)
	var next []*publish.Key
	for i := 0; i < 3; i++ {
		k, _ := publish.GenerateKey()
		next = append(next, k)
	}
	if err := f.repoObj.RotateRoot(publish.RootChange{RootKeys: next}, next...); err == nil {
		t.Fatal("RotateRoot accepted a root signed only by the new keys")
	}
	root, _ := metadata.Root().FromFile(f.meta("1.root.json"))
	root.Signed.Version = 2
	for _, id := range append([]string{}, root.Signed.Roles[metadata.ROOT].KeyIDs...) {
		root.Signed.RevokeKey(id, metadata.ROOT)
	}
	for _, k := range next {
		root.Signed.AddKey(k.Public, metadata.ROOT)
	}
	root.ClearSignatures()
	for _, k := range next {
		root.Sign(k.Signer())
	}
	b, _ := root.ToBytes(true)
	os.WriteFile(f.meta("2.root.json"), b, 0o644)
	err := wantRefused(t, f, f.client(), trust.ErrVerify)
	if !strings.Contains(err.Error(), "2.root.json") {
		t.Errorf("error %v does not name 2.root.json", err)
	}
}

// S4/S7: a release manifest whose bytes do not match its signed hash and length.
func TestManifestHashMismatch(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rel, _ := c.Latest("rpi4", "stable")
	u, _ := c.TargetURL(rel.Manifest)
	file := filepath.Join(f.repo, "targets", strings.TrimPrefix(u, f.srv.URL+"/targets/"))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Same length, other counter: only the hash catches it.
	b2 := []byte(strings.Replace(string(b), `"counter": 1,`, `"counter": 9,`, 1))
	if string(b2) == string(b) || len(b2) != len(b) {
		t.Fatal("tamper did not apply")
	}
	os.WriteFile(file, b2, 0o644)
	if _, err := c.FetchManifest(context.Background(), rel.Version); !errors.Is(err, trust.ErrVerify) {
		t.Errorf("FetchManifest(tampered) = %v, want ErrVerify", err)
	}
	// Longer than signed: cut off.
	os.WriteFile(file, append(b, ' '), 0o644)
	if _, err := c.FetchManifest(context.Background(), rel.Version); !errors.Is(err, trust.ErrTooLarge) {
		t.Errorf("FetchManifest(longer) = %v, want ErrTooLarge", err)
	}
}

// S7: a manifest whose payload disagrees with the payload's own signed target
// entry (both signed by the real release key) is refused.
func TestManifestPayloadMismatch(t *testing.T) {
	f := newFixture(t)
	m := f.publish(t, "2.0", 2)
	ks, _ := publish.LoadKeys(f.keys)
	resignWith(t, f, ks, func(tg *metadata.Metadata[metadata.TargetsType]) {
		tg.Signed.Targets[m.Payloads[0].Target].Length++
	})
	c := f.client()
	if _, err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FetchManifest(context.Background(), "2.0"); !errors.Is(err, trust.ErrVerify) {
		t.Errorf("FetchManifest = %v, want ErrVerify", err)
	}
	if _, err := c.FetchManifest(context.Background(), "1.0"); err != nil {
		t.Errorf("FetchManifest(1.0) = %v, want nil", err)
	}
}

// Rollback of the timestamp version (an old, validly signed timestamp) is refused
// once the device has seen a newer one.
func TestTimestampRollback(t *testing.T) {
	f := newFixture(t)
	old, _ := os.ReadFile(f.meta("timestamp.json"))
	f.publish(t, "2.0", 2)
	if _, err := f.client().Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.meta("timestamp.json"), old, 0o644)
	err := wantRefusedAfterSuccess(t, f, f.client(), trust.ErrVerify)
	if !errors.Is(err, &metadata.ErrBadVersionNumber{}) {
		t.Errorf("error %v does not wrap ErrBadVersionNumber", err)
	}
}
