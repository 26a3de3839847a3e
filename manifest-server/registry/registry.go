// Package registry is the manifest server's OCI distribution registry: the cloud
// side's image registry, so `docker push` and `docker pull` work against
// `manifest-server serve` and a container-only release can name images on it.
//
// The model: the protocol is go-containerregistry's pkg/registry handler, which
// keeps manifests in memory and hands blobs to a pluggable BlobHandler. This package
// adds what a server that must survive a restart needs:
//
//   - Blobs live on disk, content-addressed: DIR/blobs/sha256/<hex>. An upload is
//     hashed while it is written to a temporary file, synced and renamed into place
//     only when its digest matches the one the client named. A blob whose bytes no
//     longer hash to its name (tampered or rotted on disk) is answered as unknown,
//     never served.
//   - Manifests are persisted before the push is acknowledged:
//     DIR/manifests/sha256/<hex> holds the bytes, <hex>.type the media type;
//     DIR/repos/<repository>/_digests/<hex> links a digest to a repository and
//     DIR/repos/<repository>/_tags/<tag> names the digest a tag points at (no
//     repository component starts with "_", so these never collide). New replays
//     them into the handler, skipping (and logging) any manifest whose bytes
//     do not hash to their name.
//   - A manifest pushed by digest must hash to that digest, and an image manifest is
//     accepted only when its config and layers are already stored.
//   - Repository names and tags are checked against the distribution grammar before
//     they become paths.
//
// Nothing here decides what a device runs: releases pin images by digest in signed
// metadata (threat C1), so whoever can push can at worst add images or move tags.
// Pushes (POST, PUT, PATCH, DELETE) are allowed only to the clients AllowWrite
// accepts; by default those on a loopback address.
//
// Limits: upload chunks are buffered in memory by the underlying handler until the
// upload completes, so a layer needs that much RAM on the server; the registry has
// no authentication of its own.
package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
)

// MaxManifestSize bounds a pushed manifest (the distribution spec suggests 4 MiB).
const MaxManifestSize = 4 << 20

// Options configures a Registry. The zero value is usable.
type Options struct {
	// Logf receives the protocol log and replay problems. Nil means log.Printf.
	Logf func(format string, args ...any)
	// AllowWrite decides whether a request that changes the registry (POST, PUT,
	// PATCH, DELETE) may proceed. Nil allows clients on a loopback address only.
	AllowWrite func(r *http.Request) bool
}

// Registry is an http.Handler serving the distribution API under /v2/.
type Registry struct {
	dir   string
	h     http.Handler
	logf  func(string, ...any)
	allow func(*http.Request) bool
	mu    sync.Mutex // serialises manifest writes and their persistence
}

// ErrCorrupt is wrapped by Verify's error for every stored object whose bytes do
// not hash to its name.
var ErrCorrupt = errors.New("registry: stored content does not match its digest")

// New opens (creating if needed) the registry stored in dir and replays its
// manifests.
func New(dir string, opts Options) (*Registry, error) {
	for _, d := range []string{"blobs/sha256", "blobs/tmp", "manifests/sha256", "repos"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	r := &Registry{dir: dir, logf: opts.Logf, allow: opts.AllowWrite}
	if r.logf == nil {
		r.logf = log.Printf
	}
	if r.allow == nil {
		r.allow = LoopbackOnly
	}
	r.h = ggcr.New(
		ggcr.WithBlobHandler(&diskBlobs{dir: filepath.Join(dir, "blobs")}),
		ggcr.Logger(log.New(logfWriter(r.logf), "registry: ", 0)),
	)
	if err := r.replay(); err != nil {
		return nil, err
	}
	return r, nil
}

// LoopbackOnly allows requests whose client address is a loopback address.
func LoopbackOnly(req *http.Request) bool {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type logfWriter func(string, ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Distribution grammar (distribution/reference): path components and tags.
var (
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
)

// validRepo checks a repository name before it becomes a directory path.
func validRepo(repo string) bool {
	if repo == "" || len(repo) > 255 {
		return false
	}
	for _, c := range strings.Split(repo, "/") {
		if !componentRE.MatchString(c) {
			return false
		}
	}
	return true
}

// ServeHTTP serves the distribution API. Requests outside /v2/ are 404.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := req.URL.Path
	if p != "/v2" && !strings.HasPrefix(p, "/v2/") {
		http.NotFound(w, req)
		return
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
	default:
		if !r.allow(req) {
			writeError(w, http.StatusForbidden, "DENIED", "this client may not push to the registry")
			return
		}
	}
	elems := strings.Split(strings.Trim(p, "/"), "/")
	// /v2/<name>/(manifests|blobs|tags)/<ref>
	if len(elems) >= 4 {
		kind := elems[len(elems)-2]
		if kind == "uploads" && len(elems) >= 5 {
			kind = elems[len(elems)-3]
		}
		repo := repoOf(elems)
		if (kind == "manifests" || kind == "blobs" || kind == "tags") && !validRepo(repo) {
			writeError(w, http.StatusBadRequest, "NAME_INVALID", fmt.Sprintf("invalid repository name %q", repo))
			return
		}
		if elems[len(elems)-2] == "manifests" {
			r.serveManifest(w, req, repo, elems[len(elems)-1])
			return
		}
	}
	r.h.ServeHTTP(w, req)
}

// repoOf returns the repository of /v2/<name>/<kind>/<ref> or
// /v2/<name>/blobs/uploads/<id>.
func repoOf(elems []string) string {
	end := len(elems) - 2
	if elems[len(elems)-2] == "uploads" && len(elems) >= 5 {
		end = len(elems) - 3
	}
	if elems[len(elems)-1] == "uploads" && elems[len(elems)-2] == "blobs" {
		end = len(elems) - 2
	}
	if end < 1 {
		return ""
	}
	return strings.Join(elems[1:end], "/")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (r *Registry) serveManifest(w http.ResponseWriter, req *http.Request, repo, ref string) {
	var h v1.Hash
	byDigest := strings.HasPrefix(ref, "sha256:")
	if byDigest {
		var err error
		if h, err = v1.NewHash(ref); err != nil {
			writeError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
			return
		}
	} else if !tagRE.MatchString(ref) {
		writeError(w, http.StatusBadRequest, "TAG_INVALID", fmt.Sprintf("invalid tag %q", ref))
		return
	}
	switch req.Method {
	case http.MethodPut:
		r.putManifest(w, req, repo, ref, byDigest, h)
	case http.MethodDelete:
		r.mu.Lock()
		defer r.mu.Unlock()
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, req)
		if rec.Code == http.StatusAccepted {
			var err error
			if byDigest {
				err = os.Remove(r.repoPath(repo, "digests", h.Hex))
			} else {
				err = os.Remove(r.repoPath(repo, "tags", ref))
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
				return
			}
		}
		copyRecorded(w, rec)
	default:
		r.h.ServeHTTP(w, req)
	}
}

func (r *Registry) putManifest(w http.ResponseWriter, req *http.Request, repo, ref string, byDigest bool, want v1.Hash) {
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxManifestSize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", err.Error())
		return
	}
	if len(body) > MaxManifestSize {
		writeError(w, http.StatusRequestEntityTooLarge, "SIZE_INVALID", fmt.Sprintf("manifest larger than %d bytes", MaxManifestSize))
		return
	}
	got, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if byDigest && got != want {
		writeError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("manifest hashes to %s, not %s", got, want))
		return
	}
	mediaType := req.Header.Get("Content-Type")
	if err := r.checkManifest(body, mediaType); err != nil {
		writeError(w, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN", err.Error())
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.forwardPut(repo, ref, mediaType, body)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if rec.Code == http.StatusCreated {
		if err := r.persist(repo, ref, byDigest, got, mediaType, body); err != nil {
			writeError(w, http.StatusInternalServerError, "UNKNOWN", fmt.Sprintf("persist manifest: %v", err))
			return
		}
	}
	copyRecorded(w, rec)
}

// checkManifest refuses an image manifest whose config or layers are not stored.
func (r *Registry) checkManifest(body []byte, mediaType string) error {
	mt := types.MediaType(mediaType)
	if !mt.IsImage() {
		return nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("parse manifest: %w", err)
	}
	descs := append([]v1.Descriptor{m.Config}, m.Layers...)
	for _, d := range descs {
		if !d.MediaType.IsDistributable() {
			continue
		}
		if d.Digest.Algorithm != "sha256" {
			return fmt.Errorf("blob %s: only sha256 is stored", d.Digest)
		}
		st, err := os.Stat(filepath.Join(r.dir, "blobs", "sha256", d.Digest.Hex))
		if err != nil {
			return fmt.Errorf("blob %s is not stored", d.Digest)
		}
		if st.Size() != d.Size {
			return fmt.Errorf("blob %s is %d bytes, the manifest says %d", d.Digest, st.Size(), d.Size)
		}
	}
	return nil
}

func (r *Registry) forwardPut(repo, ref, mediaType string, body []byte) (*httptest.ResponseRecorder, error) {
	req, err := http.NewRequest(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mediaType)
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec, nil
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (r *Registry) repoPath(repo, kind, name string) string {
	return filepath.Join(r.dir, "repos", filepath.FromSlash(repo), "_"+kind, name)
}

func (r *Registry) persist(repo, ref string, byDigest bool, h v1.Hash, mediaType string, body []byte) error {
	mdir := filepath.Join(r.dir, "manifests", "sha256")
	if err := atomicfile.Write(filepath.Join(mdir, h.Hex+".type"), []byte(mediaType), 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(mdir, h.Hex), body, 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(r.repoPath(repo, "digests", h.Hex), nil, 0o600); err != nil {
		return err
	}
	if !byDigest {
		return atomicfile.Write(r.repoPath(repo, "tags", ref), []byte(h.String()), 0o600)
	}
	return nil
}

// storedManifest is one persisted manifest linked to a repository.
type storedManifest struct {
	repo      string
	hash      v1.Hash
	mediaType string
	body      []byte
}

// replay feeds the persisted manifests to the protocol handler: images first, then
// indexes (which need their children), then the tags.
func (r *Registry) replay() error {
	reposDir := filepath.Join(r.dir, "repos")
	var linked []storedManifest
	tags := map[string]map[string]v1.Hash{}
	err := filepath.WalkDir(reposDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		rel, err := filepath.Rel(reposDir, p)
		if err != nil {
			return err
		}
		dir, name := filepath.Split(rel)
		dir = filepath.ToSlash(filepath.Clean(dir))
		repo, kind := splitKind(dir)
		if !validRepo(repo) {
			r.logf("registry: skipping %s: bad repository name", p)
			return nil
		}
		switch kind {
		case "_digests":
			m, err := r.loadManifest(name)
			if err != nil {
				r.logf("registry: skipping manifest sha256:%s of %s: %v", name, repo, err)
				return nil
			}
			m.repo = repo
			linked = append(linked, m)
		case "_tags":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h, err := v1.NewHash(string(b))
			if err != nil || !tagRE.MatchString(name) {
				r.logf("registry: skipping tag %s:%s: bad content", repo, name)
				return nil
			}
			if tags[repo] == nil {
				tags[repo] = map[string]v1.Hash{}
			}
			tags[repo][name] = h
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: replay: %w", err)
	}
	sort.SliceStable(linked, func(i, j int) bool {
		return !types.MediaType(linked[i].mediaType).IsIndex() && types.MediaType(linked[j].mediaType).IsIndex()
	})
	byKey := map[string]storedManifest{}
	for _, m := range linked {
		if err := r.replayPut(m, m.hash.String()); err != nil {
			r.logf("registry: replay %s@%s: %v", m.repo, m.hash, err)
			continue
		}
		byKey[m.repo+"@"+m.hash.String()] = m
	}
	for repo, ts := range tags {
		for tag, h := range ts {
			m, ok := byKey[repo+"@"+h.String()]
			if !ok {
				r.logf("registry: skipping tag %s:%s: manifest %s missing or corrupt", repo, tag, h)
				continue
			}
			if err := r.replayPut(m, tag); err != nil {
				r.logf("registry: replay %s:%s: %v", repo, tag, err)
			}
		}
	}
	return nil
}

func splitKind(dir string) (repo, kind string) {
	i := strings.LastIndexByte(dir, '/')
	if i < 0 {
		return "", dir
	}
	return dir[:i], dir[i+1:]
}

func (r *Registry) loadManifest(hex string) (storedManifest, error) {
	h, err := v1.NewHash("sha256:" + hex)
	if err != nil {
		return storedManifest{}, err
	}
	p := filepath.Join(r.dir, "manifests", "sha256", hex)
	body, err := os.ReadFile(p)
	if err != nil {
		return storedManifest{}, err
	}
	got, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return storedManifest{}, err
	}
	if got != h {
		return storedManifest{}, fmt.Errorf("%w: %s hashes to %s", ErrCorrupt, p, got)
	}
	mt, err := os.ReadFile(p + ".type")
	if err != nil {
		return storedManifest{}, err
	}
	return storedManifest{hash: h, mediaType: string(mt), body: body}, nil
}

func (r *Registry) replayPut(m storedManifest, ref string) error {
	rec, err := r.forwardPut(m.repo, ref, m.mediaType, m.body)
	if err != nil {
		return err
	}
	if rec.Code != http.StatusCreated {
		return fmt.Errorf("status %d: %s", rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return nil
}

// Verify re-hashes every stored blob and manifest and returns an error wrapping
// ErrCorrupt that names each one whose bytes do not match its digest.
func (r *Registry) Verify() error {
	var bad []string
	for _, sub := range []string{"blobs", "manifests"} {
		dir := filepath.Join(r.dir, sub, "sha256")
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("registry: verify: %w", err)
		}
		for _, e := range ents {
			name := e.Name()
			if e.IsDir() || strings.HasSuffix(name, ".type") || strings.HasPrefix(name, ".") {
				continue
			}
			ok, err := fileHasDigest(filepath.Join(dir, name), name)
			if err != nil {
				return fmt.Errorf("registry: verify: %w", err)
			}
			if !ok {
				bad = append(bad, sub+"/sha256:"+name)
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrCorrupt, strings.Join(bad, ", "))
	}
	return nil
}

func fileHasDigest(p, hex string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	got, _, err := v1.SHA256(f)
	if err != nil {
		return false, err
	}
	return got.Hex == hex, nil
}
