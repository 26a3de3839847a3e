package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
)

// Cache-Control values.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// smallFile is the size up to which a file is read whole and served from
// memory with its content hash as ETag (metadata is small). Reading it
// whole also means the bytes served are the bytes hashed even if the
// publisher renames a new version into place meanwhile.
const smallFile = 1 << 20

var (
	// hashName is a consistent-snapshot target name: <sha256 or sha512 hex>.<name>.
	hashName = regexp.MustCompile(`^([0-9a-f]{64}|[0-9a-f]{128})\.`)
	// versionedName is consistent-snapshot metadata: <N>.<role>.json.
	versionedName = regexp.MustCompile(`^[0-9]+\.[^/]+\.json$`)
)

func (s *Server) serveRepo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := repoName(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, err := s.root.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}

	h := w.Header()
	base := path.Base(name)
	etag := ""
	immutable := false
	if m := hashName.FindStringSubmatch(base); m != nil {
		etag, immutable = m[1], true
	} else if versionedName.MatchString(base) {
		immutable = true
	}
	var content io.ReadSeeker = f
	if st.Size() <= smallFile {
		b, err := io.ReadAll(io.LimitReader(f, smallFile+1))
		if err != nil || len(b) > smallFile {
			http.Error(w, "read error", http.StatusInternalServerError)
			note(w, "", fmt.Sprintf("read %s: %v", name, err))
			return
		}
		content = bytes.NewReader(b)
		if etag == "" {
			sum := sha256.Sum256(b)
			etag = hex.EncodeToString(sum[:])
		}
	} else if etag == "" {
		etag = fmt.Sprintf("%x-%x", st.Size(), st.ModTime().UnixNano())
	}
	h.Set("ETag", `"`+etag+`"`)
	if immutable {
		h.Set("Cache-Control", cacheImmutable)
	} else {
		h.Set("Cache-Control", cacheRevalidate)
	}
	if strings.HasSuffix(base, ".json") {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", st.ModTime(), content)
}

// repoName turns a URL path into a name inside the repository, refusing
// the root, directories, "..", empty elements and hidden files.
func repoName(urlPath string) (string, bool) {
	name := strings.TrimPrefix(urlPath, "/")
	if name == "" || strings.HasSuffix(name, "/") || !fs.ValidPath(name) || strings.ContainsRune(name, '\\') {
		return "", false
	}
	for _, el := range strings.Split(name, "/") {
		if strings.HasPrefix(el, ".") {
			return "", false
		}
	}
	return name, true
}
