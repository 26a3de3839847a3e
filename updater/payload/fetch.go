package payload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
)

// HTTPDoer sends HTTP requests; any *http.Client satisfies it.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// DefaultStallTimeout is the StallTimeout used when the field is zero.
const DefaultStallTimeout = 60 * time.Second

// Downloader fetches payload files, resuming interrupted downloads.
type Downloader struct {
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP HTTPDoer
	// StallTimeout ends an attempt with ErrStalled when no byte arrives for this
	// long (waiting for the response headers included). Zero means
	// DefaultStallTimeout. The caller retries later and the download resumes.
	StallTimeout time.Duration
	// Progress, if set, receives the bytes present so far out of the signed size.
	Progress Progress
}

// partState is what is saved beside a .part file: the validators of the response
// the bytes came from, so a resume only continues the same content.
type partState struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// validator is what If-Range may carry: a strong ETag, else Last-Modified.
func (st *partState) validator() string {
	if st.ETag != "" && !strings.HasPrefix(st.ETag, "W/") {
		return st.ETag
	}
	return st.LastModified
}

// Fetch downloads url into dst. Bytes already in dst+".part" are kept and the rest is
// requested with a Range (If-Range with the ETag or Last-Modified saved in
// dst+".part.json"), falling back to a fresh download when the server ignores the
// range or the content changed. The body is capped at size (the signed length) and
// hashed as it is written; the hash of an existing .part prefix is computed first,
// from the same open file. On completion the length and SHA-256 must equal size and
// sha256hex; then .part is fsynced, renamed to dst and the directory fsynced. On a
// digest mismatch the .part is removed and ErrDigestMismatch returned. If dst
// already exists with the right length and hash, Fetch returns at once.
//
// An interrupted attempt (cut connection, ErrStalled, cancelled ctx) keeps the .part
// for the next call.
func (d *Downloader) Fetch(ctx context.Context, url, dst string, size int64, sha256hex string) error {
	want, err := parseSHA256(sha256hex)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	if ok, err := fileMatches(dst, size, want); err != nil {
		return err
	} else if ok {
		return nil
	}
	part, statePath := dst+".part", dst+".part.json"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			f.Sync() // keep what arrived for the next attempt
			f.Close()
		}
	}()

	// Hash the prefix already there, from the same open file.
	h := sha256.New()
	have, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", part, err)
	}
	prev, _ := readPartState(statePath)
	if have > size || (have > 0 && (prev == nil || prev.URL != url || prev.validator() == "")) {
		if have, err = restart(f, h); err != nil {
			return err
		}
	}

	for attempt := 0; have < size; attempt++ {
		n, err := d.get(ctx, url, f, h, have, size, prev, statePath)
		if errors.Is(err, errRestart) && attempt == 0 {
			if have, err = restart(f, h); err != nil {
				return err
			}
			prev = nil
			continue
		}
		have = n
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				d.discard(f, part, statePath)
				closed = true
			}
			return err
		}
		break
	}
	if have < size {
		return fmt.Errorf("%s: %d of %d bytes: %w", url, have, size, ErrShort)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		d.discard(f, part, statePath)
		closed = true
		return fmt.Errorf("%s: sha256 %x, signed %x: %w", url, got, want, ErrDigestMismatch)
	}
	closed = true
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(part, dst); err != nil {
		return err
	}
	os.Remove(statePath)
	if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(dst), err)
	}
	if d.Progress != nil {
		d.Progress(size, size)
	}
	return nil
}

// errRestart: the server will not continue the saved bytes; start again from zero.
var errRestart = errors.New("restart download")

// get sends one request for bytes [have, size) (or the whole file when have is 0)
// and appends the body to f. It returns the bytes now in f.
func (d *Downloader) get(ctx context.Context, url string, f *os.File, h hash.Hash, have, size int64, prev *partState, statePath string) (int64, error) {
	client := d.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	stall := d.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(stall, func() { cancel(ErrStalled) })
	defer timer.Stop()
	stalled := func(err error) error {
		if errors.Is(context.Cause(ctx), ErrStalled) {
			return fmt.Errorf("%s: no data for %v: %w", url, stall, ErrStalled)
		}
		return err
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return have, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		req.Header.Set("If-Range", prev.validator())
	}
	resp, err := client.Do(req)
	if err != nil {
		return have, stalled(fmt.Errorf("get %s: %w", url, err))
	}
	defer resp.Body.Close()

	switch {
	case have > 0 && resp.StatusCode == http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return have, errRestart
		}
		if total > size {
			return have, fmt.Errorf("%s is %d bytes, signed %d: %w", url, total, size, ErrTooLarge)
		}
	case have > 0 && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return have, errRestart
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			// The server ignored the range or the content changed.
			if have, err = restart(f, h); err != nil {
				return have, err
			}
		}
	default:
		return have, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	if resp.ContentLength > size-have {
		return have, fmt.Errorf("%s: %d more bytes after %d, signed %d in all: %w", url, resp.ContentLength, have, size, ErrTooLarge)
	}
	st := partState{URL: url, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	if prev == nil || *prev != st {
		if err := writePartState(statePath, st); err != nil {
			return have, err
		}
	}

	p := &throttle{fn: d.Progress, total: size}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			timer.Reset(stall)
			if int64(n) > size-have {
				return have, fmt.Errorf("%s: more than the signed %d bytes: %w", url, size, ErrTooLarge)
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return have, fmt.Errorf("write %s: %w", f.Name(), err)
			}
			h.Write(buf[:n])
			have += int64(n)
			p.report(have, false)
		}
		if rerr == io.EOF {
			return have, nil
		}
		if rerr != nil {
			return have, stalled(fmt.Errorf("get %s: after %d bytes: %w", url, have, rerr))
		}
	}
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*", returned as -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

// restart empties the .part and the running hash.
func restart(f *os.File, h hash.Hash) (int64, error) {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("truncate %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return 0, nil
}

func (d *Downloader) discard(f *os.File, part, statePath string) {
	f.Close()
	os.Remove(part)
	os.Remove(statePath)
}

// fileMatches reports whether name exists with the given length and hash. A file
// that exists but differs is removed.
func fileMatches(name string, size int64, want []byte) (bool, error) {
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() == size {
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return false, fmt.Errorf("read %s: %w", name, err)
		}
		if bytes.Equal(h.Sum(nil), want) {
			return true, nil
		}
	}
	if err := os.Remove(name); err != nil {
		return false, err
	}
	return false, nil
}

func readPartState(name string) (*partState, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var st partState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// writePartState replaces the state file (see atomicfile.Write).
func writePartState(name string, st partState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(name, b, 0o644)
}
