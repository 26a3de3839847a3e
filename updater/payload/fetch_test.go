package payload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// serve serves content with http.ServeContent (Range, If-Range, ETag) under /p.
func serve(t *testing.T, content *atomic.Pointer[[]byte], etag *atomic.Value) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag.Load().(string))
		http.ServeContent(w, r, "p", time.Time{}, bytes.NewReader(*content.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fixedServer(t *testing.T, body []byte) *httptest.Server {
	var c atomic.Pointer[[]byte]
	c.Store(&body)
	var e atomic.Value
	e.Store(`"v1"`)
	return serve(t, &c, &e)
}

func TestFetchOK(t *testing.T) {
	body := randomBytes(3<<20+17, 1)
	srv := fixedServer(t, body)
	dst := filepath.Join(t.TempDir(), "payload")
	var calls int
	d := &Downloader{Progress: func(done, total int64) { calls++ }}
	if err := d.Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), sum(body)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, body) {
		t.Fatalf("got %d bytes, want the %d served", len(got), len(body))
	}
	for _, leftover := range []string{dst + ".part", dst + ".part.json"} {
		if _, err := os.Stat(leftover); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", leftover, err)
		}
	}
	if calls == 0 {
		t.Error("progress never called")
	}
	// Present and correct: returns at once, without a request.
	srv.Close()
	if err := d.Fetch(context.Background(), "http://127.0.0.1:1/none", dst, int64(len(body)), sum(body)); err != nil {
		t.Fatalf("second fetch of a complete file: %v", err)
	}
}

// cutServer sends the first cut bytes of body on the first request, then closes the
// connection; later requests are served normally. It records the Range headers.
func cutServer(t *testing.T, body []byte, cut int, ranges *[]string) *httptest.Server {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*ranges = append(*ranges, r.Header.Get("Range"))
		w.Header().Set("ETag", `"v1"`)
		if n.Add(1) == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			w.Write(body[:cut])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "p", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchResumesAfterCut(t *testing.T) {
	body := randomBytes(2<<20, 2)
	var ranges []string
	srv := cutServer(t, body, len(body)/2, &ranges)
	dst := filepath.Join(t.TempDir(), "payload")
	d := &Downloader{}
	err := d.Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), sum(body))
	if err == nil {
		t.Fatal("first fetch: got success, want the cut connection's error")
	}
	st, _ := os.Stat(dst + ".part")
	if st == nil || st.Size() != int64(len(body)/2) {
		t.Fatalf("after the cut: .part is %v, want %d bytes", st, len(body)/2)
	}
	if err := d.Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), sum(body)); err != nil {
		t.Fatalf("second fetch: %v", err)
	}
	if got, want := ranges[len(ranges)-1], fmt.Sprintf("bytes=%d-", len(body)/2); got != want {
		t.Errorf("resume Range: got %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Error("resumed file differs from the served one")
	}
}

func TestFetchServerIgnoresRange(t *testing.T) {
	body := randomBytes(1<<20, 3)
	dst := filepath.Join(t.TempDir(), "payload")
	// A .part with a wrong prefix and a matching validator: if it were kept, the
	// result would not verify.
	os.WriteFile(dst+".part", bytes.Repeat([]byte{0xee}, 1000), 0o644)
	writePartState(dst+".part.json", partState{URL: "", ETag: `"v1"`})
	var sawRange atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			sawRange.Store(true)
		}
		w.Header().Set("ETag", `"v1"`)
		w.Write(body) // always 200, whole body
	}))
	defer srv.Close()
	writePartState(dst+".part.json", partState{URL: srv.URL + "/p", ETag: `"v1"`})
	if err := (&Downloader{}).Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), sum(body)); err != nil {
		t.Fatal(err)
	}
	if !sawRange.Load() {
		t.Error("no Range request was made for the existing .part")
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Error("file differs from the served one")
	}
}

func TestFetchETagChangedRestarts(t *testing.T) {
	old := randomBytes(1<<20, 4)
	body := randomBytes(1<<20, 5)
	var c atomic.Pointer[[]byte]
	c.Store(&old)
	var e atomic.Value
	e.Store(`"old"`)
	srv := serve(t, &c, &e)
	dst := filepath.Join(t.TempDir(), "payload")
	// Half of the old content, saved with its ETag.
	os.WriteFile(dst+".part", old[:len(old)/2], 0o644)
	writePartState(dst+".part.json", partState{URL: srv.URL + "/p", ETag: `"old"`})
	c.Store(&body)
	e.Store(`"new"`)
	if err := (&Downloader{}).Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), sum(body)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Error("file is not the new content")
	}
}

func TestFetchStalls(t *testing.T) {
	body := randomBytes(64<<10, 6)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:1000])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	dst := filepath.Join(t.TempDir(), "payload")
	start := time.Now()
	err := (&Downloader{StallTimeout: 300 * time.Millisecond}).Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), sum(body))
	if !errors.Is(err, ErrStalled) {
		t.Fatalf("got %v, want ErrStalled", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("stall detected after %v, want about 300ms", el)
	}
	if st, _ := os.Stat(dst + ".part"); st == nil || st.Size() != 1000 {
		t.Errorf(".part after a stall: %v, want the 1000 bytes received kept", st)
	}
}

func TestFetchEndlessBodyCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte{'x'}, 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	dst := filepath.Join(t.TempDir(), "payload")
	const size = 1 << 20
	err := (&Downloader{}).Fetch(context.Background(), srv.URL+"/p", dst, size, sum(make([]byte, size)))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if st, err := os.Stat(dst + ".part"); err == nil && st.Size() > size {
		t.Errorf(".part holds %d bytes, cap is %d", st.Size(), size)
	}
}

func TestFetchWrongHash(t *testing.T) {
	body := randomBytes(300<<10, 7)
	srv := fixedServer(t, body)
	dst := filepath.Join(t.TempDir(), "payload")
	wrong := sum(append([]byte("x"), body...))
	err := (&Downloader{}).Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), wrong)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	for _, name := range []string{dst, dst + ".part", dst + ".part.json"} {
		if _, err := os.Stat(name); !os.IsNotExist(err) {
			t.Errorf("%s exists after a digest mismatch", name)
		}
	}
}

func TestFetchShortBody(t *testing.T) {
	body := randomBytes(1000, 8)
	srv := fixedServer(t, body)
	dst := filepath.Join(t.TempDir(), "payload")
	err := (&Downloader{}).Fetch(context.Background(), srv.URL+"/p", dst, 2000, sum(body))
	if !errors.Is(err, ErrShort) {
		t.Fatalf("got %v, want ErrShort", err)
	}
}

func TestFetchStaleDestinationReplaced(t *testing.T) {
	body := randomBytes(10000, 9)
	srv := fixedServer(t, body)
	dst := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(dst, []byte(strings.Repeat("stale", 2000)), 0o644) // same length, wrong bytes
	if err := (&Downloader{}).Fetch(context.Background(), srv.URL+"/p", dst, int64(len(body)), sum(body)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, body) {
		t.Error("stale file not replaced")
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 10-99/100", 10, 100, true},
		{"bytes 0-0/*", 0, -1, true},
		{"bytes */100", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
		{"bytes -5-9/10", 0, 0, false},
	} {
		start, total, ok := parseContentRange(tc.in)
		if ok != tc.ok || (ok && (start != tc.start || total != tc.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tc.in, start, total, ok, tc.start, tc.total, tc.ok)
		}
	}
}
