package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
	"github.com/healthguard/gateway-ota/manifest-server/server"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	url     string
	repo    string
	db      *devicedb.DB
	log     *syncBuffer
	payload []byte // the hash-named target
	target  string // its URL path
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newFixture lays out a repository directory as imagebuilder publishes it
// and serves it with the real handler on a real listener.
func newFixture(t *testing.T, cfg server.Config) *fixture {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	payload := make([]byte, 3<<20) // above the in-memory limit: served from the file
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	target := "targets/slot/" + hex.EncodeToString(sum[:]) + ".rootfs.ext4.xz"
	write(t, filepath.Join(repo, target), payload)
	write(t, filepath.Join(repo, "metadata/1.root.json"), []byte(`{"signed":{"_type":"root","version":1}}`))
	write(t, filepath.Join(repo, "metadata/3.snapshot.json"), []byte(`{"signed":{"_type":"snapshot","version":3}}`))
	write(t, filepath.Join(repo, "metadata/timestamp.json"), []byte(`{"signed":{"_type":"timestamp","version":7}}`))
	write(t, filepath.Join(repo, "metadata/.timestamp.json.tmp-123"), []byte(`half-written`))
	write(t, filepath.Join(repo, "targets/big-unhashed.bin"), bytes.Repeat([]byte("x"), 2<<20))
	write(t, filepath.Join(dir, "secret"), []byte("outside the repository"))
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(repo, "metadata", "escape.json")); err != nil {
		t.Fatal(err)
	}

	db, err := devicedb.Open(context.Background(), filepath.Join(dir, "devices.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	logs := &syncBuffer{}
	cfg.Repo, cfg.DB = repo, db
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	h, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &fixture{url: ts.URL, repo: repo, db: db, log: logs, payload: payload, target: "/" + target}
}

func (f *fixture) do(t *testing.T, method, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServeTarget(t *testing.T) {
	f := newFixture(t, server.Config{})
	sum := sha256.Sum256(f.payload)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	n := len(f.payload)

	resp, body := f.do(t, "GET", f.target, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, f.payload) {
		t.Fatalf("GET: got %d and %d bytes, want 200 and the payload", resp.StatusCode, len(body))
	}
	for k, want := range map[string]string{
		"ETag":           etag,
		"Cache-Control":  "public, max-age=31536000, immutable",
		"Content-Length": fmt.Sprint(n),
		"Accept-Ranges":  "bytes",
		"Content-Type":   "application/octet-stream",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET %s: got %q, want %q", k, got, want)
		}
	}
	if resp.Header.Get("Last-Modified") == "" {
		t.Errorf("GET: no Last-Modified")
	}

	tests := []struct {
		name       string
		hdr        map[string]string
		wantStatus int
		wantBody   []byte
		wantRange  string
	}{
		{"range", map[string]string{"Range": "bytes=100-199"}, 206, f.payload[100:200], fmt.Sprintf("bytes 100-199/%d", n)},
		{"resume", map[string]string{"Range": fmt.Sprintf("bytes=%d-", n-1000)}, 206, f.payload[n-1000:], fmt.Sprintf("bytes %d-%d/%d", n-1000, n-1, n)},
		{"suffix", map[string]string{"Range": "bytes=-10"}, 206, f.payload[n-10:], fmt.Sprintf("bytes %d-%d/%d", n-10, n-1, n)},
		{"unsatisfiable", map[string]string{"Range": fmt.Sprintf("bytes=%d-", n)}, 416, nil, ""},
		{"if-none-match", map[string]string{"If-None-Match": etag}, 304, nil, ""},
		{"if-none-match other", map[string]string{"If-None-Match": `"abc"`}, 200, f.payload, ""},
		{"if-range same", map[string]string{"Range": "bytes=0-9", "If-Range": etag}, 206, f.payload[:10], fmt.Sprintf("bytes 0-9/%d", n)},
		{"if-range changed", map[string]string{"Range": "bytes=0-9", "If-Range": `"0000"`}, 200, f.payload, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(t, "GET", f.target, tt.hdr)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("body: got %d bytes, want %d (the requested part)", len(body), len(tt.wantBody))
			}
			if got := resp.Header.Get("Content-Range"); tt.wantRange != "" && got != tt.wantRange {
				t.Errorf("Content-Range: got %q, want %q", got, tt.wantRange)
			}
		})
	}

	resp, body = f.do(t, "HEAD", f.target, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(n) || resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD: got %d, %d body bytes, length %d, ETag %q; want 200, none, %d, %s",
			resp.StatusCode, len(body), resp.ContentLength, resp.Header.Get("ETag"), n, etag)
	}
}

func TestServeMetadata(t *testing.T) {
	f := newFixture(t, server.Config{})
	resp, body := f.do(t, "GET", "/metadata/timestamp.json", nil)
	sum := sha256.Sum256(body)
	if got, want := resp.Header.Get("ETag"), `"`+hex.EncodeToString(sum[:])+`"`; got != want {
		t.Errorf("timestamp ETag: got %s, want the content hash %s", got, want)
	}
	if got, want := resp.Header.Get("Cache-Control"), "no-cache"; got != want {
		t.Errorf("timestamp Cache-Control: got %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("timestamp Content-Type: got %q, want %q", got, want)
	}
	old := resp.Header.Get("ETag")
	if r, _ := f.do(t, "GET", "/metadata/timestamp.json", map[string]string{"If-None-Match": old}); r.StatusCode != 304 {
		t.Errorf("unchanged timestamp with If-None-Match: got %d, want 304", r.StatusCode)
	}
	write(t, filepath.Join(f.repo, "metadata/timestamp.json"), []byte(`{"signed":{"_type":"timestamp","version":8}}`))
	resp, body = f.do(t, "GET", "/metadata/timestamp.json", map[string]string{"If-None-Match": old})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":8`) || resp.Header.Get("ETag") == old {
		t.Errorf("re-signed timestamp with the old ETag: got %d %s ETag %s; want 200, version 8, a new ETag", resp.StatusCode, body, resp.Header.Get("ETag"))
	}

	for _, p := range []string{"/metadata/1.root.json", "/metadata/3.snapshot.json"} {
		resp, _ := f.do(t, "GET", p, nil)
		if got, want := resp.Header.Get("Cache-Control"), "public, max-age=31536000, immutable"; resp.StatusCode != 200 || got != want {
			t.Errorf("%s: got %d Cache-Control %q, want 200 %q", p, resp.StatusCode, got, want)
		}
	}
	resp, _ = f.do(t, "GET", "/targets/big-unhashed.bin", nil)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("large unhashed file: got %d ETag %q Cache-Control %q; want 200, a size+mtime ETag, no-cache",
			resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
	}
}

func TestServeRefuses(t *testing.T) {
	f := newFixture(t, server.Config{})
	for _, p := range []string{
		"/", "/metadata", "/metadata/", "/targets/slot", "/nothing.json",
		"/metadata/.timestamp.json.tmp-123", // hidden (a publisher's temporary file)
		"/metadata/escape.json",             // symlink out of the repository
		"/metadata/%2e%2e/secret",
	} {
		if resp, body := f.do(t, "GET", p, nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: got %d %q, want 404", p, resp.StatusCode, body)
		}
	}
	// Raw request lines, as a client that does not clean paths sends them.
	for _, p := range []string{"/../secret", "/metadata/../../secret", "/metadata/..%2f..%2fsecret", "//secret"} {
		status := rawGet(t, f.url, p)
		if status == 200 {
			t.Errorf("raw GET %s: got 200, want a refusal", p)
		}
	}
	if resp, _ := f.do(t, "PUT", "/metadata/timestamp.json", nil); resp.StatusCode != 405 {
		t.Errorf("PUT: got %d, want 405", resp.StatusCode)
	}
	if resp, _ := f.do(t, "DELETE", f.target, nil); resp.StatusCode != 405 {
		t.Errorf("DELETE: got %d, want 405", resp.StatusCode)
	}
}

func rawGet(t *testing.T, base, path string) int {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAccessLog(t *testing.T) {
	f := newFixture(t, server.Config{})
	f.do(t, "GET", f.target, map[string]string{"Range": "bytes=0-99"})
	f.do(t, "GET", "/nothing.json", nil)
	logs := f.log.String()
	for _, want := range []string{
		"msg=request method=GET path=" + f.target + " status=206 bytes=100",
		`range="bytes=0-99"`,
		"msg=request method=GET path=/nothing.json status=404",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %q:\n%s", want, logs)
		}
	}
}
