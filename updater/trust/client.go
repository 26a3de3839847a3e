// Package trust is the device side of the release repository's trust: it verifies
// The Update Framework metadata published by imagebuilder (package publish) and
// tells the updater which releases are signed, with what hashes and lengths.
//
// The model (TUF client workflow, spec 5.3-5.6, on top of go-tuf's trustedmetadata):
//
//	Store.TrustedRoot           missing, unreadable or not self-signed -> ErrNoTrustedRoot,
//	                            before any network access (S3)
//	N+1.root.json, N+2, ...     each signed by a threshold of the old and of the new
//	                            root keys, at most MaxRootRotations steps (S11)
//	timestamp.json              timestamp key; version never goes back
//	S.snapshot.json             snapshot key; hash and length from the timestamp
//	T.targets.json              release key; hash and length from the snapshot
//	every target path           release.ValidTargetPath (S13); releases' summaries parse
//
// Every download is capped before it is parsed (S8): metadata by Limits, snapshot and
// targets by the signed length in their parent. Expiry is checked against the
// reference time max(Now(), the newest time this Client has seen, the Store's
// time.json) because most Pis have no real-time clock (S6). Nothing is written to the
// Store until every step above has passed (S12); then the final root, the top-level
// metadata and the reference time are persisted.
//
// Payloads are not downloaded here: go-tuf's target download buffers in memory and
// slot images are gigabytes. The updater asks TargetInfo for the signed length and
// sha256 and TargetURL for where to get the bytes, and stream-verifies them itself.
// A release manifest is small and is fetched by FetchManifest, which also checks that
// it agrees with its signed summary and that every payload it names is a target with
// the same signed length and hash (S4, S7).
//
// Typical use by the updater:
//
//	c := &trust.Client{BaseURL: cfg.Server, Store: &trust.Store{Dir: dataDir + "/trust"}}
//	if _, err := c.Refresh(ctx); err != nil { ... }
//	rel, ok := c.Latest(board, channel)
//	if !ok || rel.Counter <= floor { return ErrNoUpdate }
//	m, err := c.FetchManifest(ctx, rel.Version)
//	p, _ := m.FullPayload(release.ForRootfs)
//	url, _ := c.TargetURL(p.Target) // stream, cap at p.Size, compare p.SHA256
//
// A Client is not safe for concurrent use.
package trust

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/healthguard/gateway-ota/updater/release"
)

// Sentinel errors; the errors returned wrap one of them (and go-tuf's own error
// where there is one).
var (
	// ErrNoTrustedRoot: the trusted root is missing, unreadable or invalid. Nothing
	// can be installed; report it, do not retry until the device is repaired.
	ErrNoTrustedRoot = errors.New("no trusted root")
	// ErrExpired: metadata is expired at the reference time (freeze attack or a
	// repository whose online keys stopped re-signing). Retry later.
	ErrExpired = errors.New("metadata expired")
	// ErrTooLarge: a download exceeded its cap (endless data).
	ErrTooLarge = errors.New("download exceeds its limit")
	// ErrVerify: a signature, threshold, hash, length, version or content check
	// failed. Discard and retry later; never install.
	ErrVerify = errors.New("verification failed")
	// ErrUnknownRelease: the version is not among the signed releases.
	ErrUnknownRelease = errors.New("unknown release")
)

// HTTPDoer does HTTP requests; satisfied by *http.Client.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// Limits caps metadata downloads in bytes. Zero fields take the defaults.
type Limits struct {
	MaxRoot      int64 // default 512 KiB
	MaxTimestamp int64 // default 16 KiB
	MaxSnapshot  int64 // default 2 MiB
	MaxTargets   int64 // default 16 MiB
}

const (
	maxRootDefault      = 512 << 10
	maxTimestampDefault = 16 << 10
	maxSnapshotDefault  = 2 << 20
	maxTargetsDefault   = 16 << 20
)

// DefaultMaxRootRotations caps the root versions one Refresh walks.
const DefaultMaxRootRotations = 32

// Client verifies the repository at BaseURL against the trust in Store.
type Client struct {
	// BaseURL is the repository root: metadata under BaseURL/metadata/, payloads
	// under BaseURL/targets/.
	BaseURL string
	// HTTP does the requests; nil means http.DefaultClient. Give it timeouts:
	// the caller's context bounds a whole Refresh.
	HTTP HTTPDoer
	// Store holds the trusted root and the verified metadata.
	Store *Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Limits caps metadata downloads.
	Limits Limits
	// MaxRootRotations; 0 means DefaultMaxRootRotations.
	MaxRootRotations int

	lastSeen time.Time
	trusted  *trustedmetadata.TrustedMetadata
	releases []Release
}

// Release is a signed release as the targets metadata lists it.
type Release struct {
	release.Summary
	// Manifest is the target path of the release manifest; Length and SHA256 its
	// signed length and hash.
	Manifest string
	Length   int64
	SHA256   string
}

// TargetInfo is the signed length and sha256 of a target.
type TargetInfo struct {
	Length int64
	SHA256 string
}

// Refresh runs the client workflow and returns the verified releases, ordered by
// counter. On error nothing is persisted and the Client keeps its previous state.
func (c *Client) Refresh(ctx context.Context) ([]Release, error) {
	if c.Store == nil {
		return nil, fmt.Errorf("refresh: %w: no store configured", ErrNoTrustedRoot)
	}
	rootData, err := c.Store.TrustedRoot()
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	tm, err := trustedmetadata.New(rootData)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w: trusted root does not verify: %w", ErrNoTrustedRoot, err)
	}
	ref := c.refTime()
	tm.RefTime = ref

	// Root chain (5.3).
	var newRoot []byte
	maxRot := c.MaxRootRotations
	if maxRot <= 0 {
		maxRot = DefaultMaxRootRotations
	}
	first := tm.Root.Signed.Version + 1
	for v := first; v < first+int64(maxRot); v++ {
		name := strconv.FormatInt(v, 10) + ".root.json"
		data, err := c.fetch(ctx, c.metaURL(name), limit(c.Limits.MaxRoot, maxRootDefault))
		if errors.Is(err, errNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("refresh: %s: %w", name, err)
		}
		if _, err := tm.UpdateRoot(data); err != nil {
			return nil, classify("refresh: "+name, err)
		}
		newRoot = data
	}

	// Timestamp (5.4). A stored timestamp, if it still verifies, guards against
	// version rollback; if it does not, it is ignored.
	var persist []stored
	if local, err := c.Store.read(TimestampFile, limit(c.Limits.MaxTimestamp, maxTimestampDefault)); err == nil {
		// An expired local timestamp is still loaded (for the rollback check) and
		// reported as an error, which is fine here; an invalid one is not loaded.
		_, _ = tm.UpdateTimestamp(local)
	}
	data, err := c.fetch(ctx, c.metaURL("timestamp.json"), limit(c.Limits.MaxTimestamp, maxTimestampDefault))
	if err != nil {
		return nil, fmt.Errorf("refresh: timestamp.json: %w", err)
	}
	if _, err := tm.UpdateTimestamp(data); err != nil {
		if !errors.Is(err, &metadata.ErrEqualVersionNumber{}) {
			return nil, classify("refresh: timestamp.json", err)
		}
	} else {
		persist = append(persist, stored{TimestampFile, data})
	}

	// Snapshot (5.5).
	if tm.Timestamp == nil {
		return nil, fmt.Errorf("refresh: %w: no timestamp", ErrVerify)
	}
	sm, ok := tm.Timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, fmt.Errorf("refresh: %w: timestamp names no snapshot", ErrVerify)
	}
	loaded := false
	if local, err := c.Store.read(SnapshotFile, limit(c.Limits.MaxSnapshot, maxSnapshotDefault)); err == nil {
		if _, err := tm.UpdateSnapshot(local, true); err == nil {
			loaded = true
		}
	}
	if !loaded {
		// A failed local load may have left an intermediate snapshot; only its
		// versions are used, for rollback checks, by UpdateSnapshot below.
		max, err := signedLimit(sm.Length, limit(c.Limits.MaxSnapshot, maxSnapshotDefault))
		if err != nil {
			return nil, fmt.Errorf("refresh: snapshot: %w", err)
		}
		name := c.versioned(tm, sm.Version, "snapshot.json")
		data, err := c.fetch(ctx, c.metaURL(name), max)
		if err != nil {
			return nil, fmt.Errorf("refresh: %s: %w", name, err)
		}
		if _, err := tm.UpdateSnapshot(data, false); err != nil {
			return nil, classify("refresh: "+name, err)
		}
		persist = append(persist, stored{SnapshotFile, data})
	}

	// Targets (5.6).
	tmeta, ok := tm.Snapshot.Signed.Meta["targets.json"]
	if !ok {
		return nil, fmt.Errorf("refresh: %w: snapshot names no targets", ErrVerify)
	}
	loaded = false
	if local, err := c.Store.read(TargetsFile, limit(c.Limits.MaxTargets, maxTargetsDefault)); err == nil {
		if _, err := tm.UpdateTargets(local); err == nil {
			loaded = true
		}
	}
	if !loaded {
		max, err := signedLimit(tmeta.Length, limit(c.Limits.MaxTargets, maxTargetsDefault))
		if err != nil {
			return nil, fmt.Errorf("refresh: targets: %w", err)
		}
		name := c.versioned(tm, tmeta.Version, "targets.json")
		data, err := c.fetch(ctx, c.metaURL(name), max)
		if err != nil {
			return nil, fmt.Errorf("refresh: %s: %w", name, err)
		}
		if _, err := tm.UpdateTargets(data); err != nil {
			return nil, classify("refresh: "+name, err)
		}
		persist = append(persist, stored{TargetsFile, data})
	}
	releases, err := listReleases(tm.Targets[metadata.TARGETS].Signed.Targets)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w: %w", ErrVerify, err)
	}

	// Everything verified: persist (S12). The root goes first: metadata signed
	// by its keys must not be stored next to an older root.
	if newRoot != nil {
		persist = append([]stored{{RootFile, newRoot}}, persist...)
	}
	for _, p := range persist {
		if err := c.Store.write(p.name, p.data); err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
	}
	if err := c.Store.ObserveTime(ref); err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	c.lastSeen = ref
	c.trusted = tm
	c.releases = releases
	return append([]Release(nil), releases...), nil
}

type stored struct {
	name string
	data []byte
}

// Releases returns the releases of the last successful Refresh, ordered by counter.
func (c *Client) Releases() []Release {
	return append([]Release(nil), c.releases...)
}

// Latest returns the release with the highest counter for the board and channel.
func (c *Client) Latest(compatible, channel string) (Release, bool) {
	var best Release
	found := false
	for _, r := range c.releases {
		if r.Compatible == compatible && r.Channel == channel && (!found || r.Counter > best.Counter) {
			best, found = r, true
		}
	}
	return best, found
}

// TargetInfo returns the signed length and sha256 of a target path.
func (c *Client) TargetInfo(targetPath string) (TargetInfo, error) {
	if c.trusted == nil {
		return TargetInfo{}, errors.New("target info: no verified metadata: call Refresh first")
	}
	tf, ok := c.trusted.Targets[metadata.TARGETS].Signed.Targets[targetPath]
	if !ok {
		return TargetInfo{}, fmt.Errorf("target info: %q is not a signed target", targetPath)
	}
	return targetInfo(tf)
}

// TargetURL returns the URL of a target's consistent-snapshot file:
// BaseURL/targets/<dir>/<sha256>.<base>.
func (c *Client) TargetURL(targetPath string) (string, error) {
	ti, err := c.TargetInfo(targetPath)
	if err != nil {
		return "", err
	}
	dir, base := path.Split(targetPath)
	name := dir + base
	if c.trusted.Root.Signed.ConsistentSnapshot {
		name = dir + ti.SHA256 + "." + base
	}
	return c.url("targets/" + name), nil
}

// FetchManifest downloads the manifest of a signed release, bounded by its signed
// length, verifies its length and hash, parses and validates it, and checks that it
// matches its signed summary and that each payload it names is a signed target with
// the same length and sha256.
func (c *Client) FetchManifest(ctx context.Context, version string) (*release.Manifest, error) {
	var rel *Release
	for i := range c.releases {
		if c.releases[i].Version == version {
			rel = &c.releases[i]
		}
	}
	if rel == nil {
		return nil, fmt.Errorf("fetch manifest %q: %w", version, ErrUnknownRelease)
	}
	if rel.Length > release.MaxManifestSize {
		return nil, fmt.Errorf("fetch manifest %q: signed length %d: %w", version, rel.Length, ErrTooLarge)
	}
	u, err := c.TargetURL(rel.Manifest)
	if err != nil {
		return nil, err
	}
	data, err := c.fetch(ctx, u, rel.Length)
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %q: %w", version, err)
	}
	tf := c.trusted.Targets[metadata.TARGETS].Signed.Targets[rel.Manifest]
	if err := tf.VerifyLengthHashes(data); err != nil {
		return nil, fmt.Errorf("fetch manifest %q: %w: %w", version, ErrVerify, err)
	}
	m, err := release.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("fetch manifest %q: %w: %w", version, ErrVerify, err)
	}
	if err := rel.Summary.Matches(m); err != nil {
		return nil, fmt.Errorf("fetch manifest %q: %w: %w", version, ErrVerify, err)
	}
	for _, p := range m.Payloads {
		ti, err := c.TargetInfo(p.Target)
		if err != nil {
			return nil, fmt.Errorf("fetch manifest %q: %w: %w", version, ErrVerify, err)
		}
		if ti.Length != p.Size || ti.SHA256 != p.SHA256 {
			return nil, fmt.Errorf("fetch manifest %q: %w: payload %q is signed as %d bytes sha256 %s, the manifest says %d bytes sha256 %s",
				version, ErrVerify, p.Target, ti.Length, ti.SHA256, p.Size, p.SHA256)
		}
	}
	return m, nil
}

// listReleases checks every target path and collects the releases.
func listReleases(targets map[string]*metadata.TargetFiles) ([]Release, error) {
	var out []Release
	for p, tf := range targets {
		if err := release.ValidTargetPath(p); err != nil {
			return nil, err
		}
		ti, err := targetInfo(tf)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", p, err)
		}
		elems := strings.Split(p, "/")
		if len(elems) != 3 || elems[0] != "releases" || elems[2] != "release.json" {
			continue
		}
		if tf.Custom == nil {
			return nil, fmt.Errorf("release target %q has no summary", p)
		}
		s, err := release.ParseSummary(*tf.Custom)
		if err != nil {
			return nil, fmt.Errorf("release target %q: %w", p, err)
		}
		if s.Version != elems[1] {
			return nil, fmt.Errorf("release target %q: summary names version %q", p, s.Version)
		}
		out = append(out, Release{Summary: s, Manifest: p, Length: ti.Length, SHA256: ti.SHA256})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Counter != out[j].Counter {
			return out[i].Counter < out[j].Counter
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

func targetInfo(tf *metadata.TargetFiles) (TargetInfo, error) {
	h, ok := tf.Hashes["sha256"]
	if !ok || len(h) != 32 {
		return TargetInfo{}, fmt.Errorf("%w: target has no sha256", ErrVerify)
	}
	if tf.Length <= 0 {
		return TargetInfo{}, fmt.Errorf("%w: target length %d", ErrVerify, tf.Length)
	}
	return TargetInfo{Length: tf.Length, SHA256: hex.EncodeToString(h)}, nil
}

// classify wraps an error of go-tuf's verification with our sentinel.
func classify(what string, err error) error {
	if errors.Is(err, &metadata.ErrExpiredMetadata{}) {
		return fmt.Errorf("%s: %w: %w", what, ErrExpired, err)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrVerify, err)
}

// refTime is max(Now(), last seen, persisted).
func (c *Client) refTime() time.Time {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ref := now().UTC()
	if c.lastSeen.After(ref) {
		ref = c.lastSeen
	}
	// An unreadable time.json is overwritten after the next successful refresh;
	// treating it as zero only loses what the clock already provides.
	if t, err := c.Store.LastTime(); err == nil && t.After(ref) {
		ref = t
	}
	return ref
}

func (c *Client) versioned(tm *trustedmetadata.TrustedMetadata, version int64, name string) string {
	if tm.Root.Signed.ConsistentSnapshot {
		return strconv.FormatInt(version, 10) + "." + name
	}
	return name
}

func (c *Client) metaURL(name string) string { return c.url("metadata/" + name) }

func (c *Client) url(p string) string {
	elems := strings.Split(p, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	return strings.TrimSuffix(c.BaseURL, "/") + "/" + strings.Join(elems, "/")
}

func limit(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}

// signedLimit is the cap for a file whose parent may sign its length.
func signedLimit(signed, max int64) (int64, error) {
	if signed == 0 {
		return max, nil
	}
	if signed < 0 || signed > max {
		return 0, fmt.Errorf("signed length %d, limit %d: %w", signed, max, ErrTooLarge)
	}
	return signed, nil
}

var errNotFound = errors.New("not found")

// fetch GETs u and returns at most max bytes; more is ErrTooLarge. 404 and 403 (what
// S3 answers for a missing key) wrap errNotFound.
func (c *Client) fetch(ctx context.Context, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	doer := c.HTTP
	if doer == nil {
		doer = http.DefaultClient
	}
	resp, err := doer.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("GET %s: %s: %w", u, resp.Status, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("GET %s: content length %d, limit %d: %w", u, resp.ContentLength, max, ErrTooLarge)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, max+1))
	if n > max {
		return nil, fmt.Errorf("GET %s: more than %d bytes: %w", u, max, ErrTooLarge)
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return buf.Bytes(), nil
}
