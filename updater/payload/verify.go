package payload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// verifyChunk is the read size of VerifyRegion.
const verifyChunk = 1 << 20

// VerifyRegion re-reads size bytes of r at off and compares their SHA-256 with
// sha256hex (the read-back check before a slot is armed, P4): ErrDigestMismatch when
// they differ, ErrShort when r ends early. When r is an *os.File the region is
// dropped from the page cache first (best effort), so the bytes come from the medium
// rather than from memory. progress may be nil.
func VerifyRegion(ctx context.Context, r io.ReaderAt, off, size int64, sha256hex string, progress Progress) error {
	want, err := parseSHA256(sha256hex)
	if err != nil {
		return err
	}
	if off < 0 || size < 0 || off > (1<<63-1)-size {
		return fmt.Errorf("bad region %d+%d", off, size)
	}
	if f, ok := r.(*os.File); ok {
		dropCache(f, off, size)
	}
	t := &throttle{fn: progress, total: size}
	h := sha256.New()

	// Read and hash overlap: one goroutine reads, this one hashes.
	type block struct {
		buf []byte
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	full := make(chan block, 1)
	empty := make(chan []byte, 2)
	empty <- make([]byte, verifyChunk)
	empty <- make([]byte, verifyChunk)
	go func() {
		defer close(full)
		for done := int64(0); done < size; {
			var buf []byte
			select {
			case buf = <-empty:
			case <-ctx.Done():
				return
			}
			n := int(min(int64(len(buf)), size-done))
			k, err := r.ReadAt(buf[:n], off+done)
			if k == n {
				err = nil
			} else if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("region ends at %d of %d bytes: %w", done+int64(k), size, ErrShort)
			} else {
				err = fmt.Errorf("read at offset %d: %w", off+done+int64(k), err)
			}
			done += int64(k)
			select {
			case full <- block{buf[:k], err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var done int64
	for b := range full {
		if err := ctx.Err(); err != nil {
			return err
		}
		h.Write(b.buf)
		done += int64(len(b.buf))
		if b.err != nil {
			return b.err
		}
		empty <- b.buf[:cap(b.buf)]
		t.report(done, false)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("region sha256 %x, signed %x: %w", got, want, ErrDigestMismatch)
	}
	t.report(done, true)
	return nil
}

// CheckedReader passes r through, capped at size bytes and hashed: reading past size
// fails with ErrTooLarge, and at the end of r the reader returns ErrShort or
// ErrDigestMismatch instead of io.EOF unless exactly size bytes hashing to sha256hex
// went by. Wrap the opened payload file in it, so the bytes verified are the bytes
// installed (P5).
func CheckedReader(r io.Reader, size int64, sha256hex string) (io.Reader, error) {
	want, err := parseSHA256(sha256hex)
	if err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("negative size %d", size)
	}
	return &checkedReader{r: r, left: size, size: size, want: want, h: sha256.New()}, nil
}

type checkedReader struct {
	r          io.Reader
	left, size int64
	want       []byte
	h          hash.Hash
	err        error
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		c.err = fmt.Errorf("payload longer than the signed %d bytes: %w", c.size, ErrTooLarge)
		return 0, c.err
	}
	c.h.Write(p[:n])
	c.left -= int64(n)
	if err == io.EOF {
		switch got := c.h.Sum(nil); {
		case c.left > 0:
			err = fmt.Errorf("payload is %d bytes, signed %d: %w", c.size-c.left, c.size, ErrShort)
		case !bytes.Equal(got, c.want):
			err = fmt.Errorf("payload sha256 %x, signed %x: %w", got, c.want, ErrDigestMismatch)
		}
	}
	if err != nil {
		c.err = err
	}
	return n, err
}
