package delta

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
)

// Expect is what the caller knows from signed metadata; Apply refuses a
// delta that disagrees. Zero fields are not checked.
type Expect struct {
	// SrcSHA256 is the hash of the running slot's image (lowercase hex).
	SrcSHA256 string
	// DstSize and DstSHA256 are the release's image.
	DstSize   int64
	DstSHA256 string
}

// Options tune Apply.
type Options struct {
	Expect Expect
	// Progress, if not nil, is called with the target bytes written so far.
	Progress func(done, total int64)
}

// bufSize is the size of each of the applier's buffers.
const bufSize = 1 << 20

// Apply applies the delta document read from doc (already decoded from the
// payload codec, see OpenPayload) with the source image read from src and
// writes the target image to dst, both addressed from offset 0. srcLimit and
// dstLimit are the sizes of the regions src and dst may touch (the
// partitions). It returns the header.
//
// Nothing is written to dst before every source range verified; a range
// that does not returns an error wrapping ErrSourceMismatch. Apply does not
// hash the target: the caller reads it back against the signed hash.
func Apply(ctx context.Context, doc io.Reader, src io.ReaderAt, srcLimit int64, dst io.WriterAt, dstLimit int64, opts Options) (*Header, error) {
	r := newReader(doc)
	buf := make([]byte, bufSize)
	check := func(rg Range) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if rg.End() > srcLimit {
			return formatError("source range [%d, +%d) beyond the source of %d bytes", rg.Off, rg.Len, srcLimit)
		}
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(src, rg.Off, rg.Len), buf); err != nil {
			return fmt.Errorf("read source [%d, +%d): %w", rg.Off, rg.Len, err)
		}
		if [32]byte(h.Sum(nil)) != rg.SHA256 {
			return fmt.Errorf("source bytes [%d, +%d): %w", rg.Off, rg.Len, ErrSourceMismatch)
		}
		return nil
	}
	// The sizes and hashes come before the ranges: they are checked before
	// the source is read at all.
	h, err := readHeader(r, func(h *Header) error {
		return checkExpect(h, opts.Expect, srcLimit, dstLimit)
	}, check)
	if err != nil {
		return h, err
	}
	out := newSeqWriter(dst)
	a := applier{ctx: ctx, r: r, h: h, src: src, out: out, tmp: buf, old: make([]byte, bufSize), progress: opts.Progress}
	err = a.run()
	if cerr := out.close(); err == nil {
		err = cerr
	}
	return h, err
}

// checkExpect compares the header with the caller's expectations and limits.
// A source hash that differs from the expected one is reported as
// ErrSourceMismatch: the delta is for another base.
func checkExpect(h *Header, e Expect, srcLimit, dstLimit int64) error {
	if e.SrcSHA256 != "" && hex.EncodeToString(h.SrcSHA256[:]) != e.SrcSHA256 {
		return fmt.Errorf("delta is for base %x, the running slot is %s: %w", h.SrcSHA256, e.SrcSHA256, ErrSourceMismatch)
	}
	if h.SrcSize > srcLimit {
		return formatError("source image of %d bytes, the source region has %d", h.SrcSize, srcLimit)
	}
	if h.DstSize > dstLimit {
		return formatError("target image of %d bytes, the target region has %d", h.DstSize, dstLimit)
	}
	if e.DstSize != 0 && h.DstSize != e.DstSize {
		return formatError("target image of %d bytes, the release's is %d", h.DstSize, e.DstSize)
	}
	if e.DstSHA256 != "" && hex.EncodeToString(h.DstSHA256[:]) != e.DstSHA256 {
		return formatError("delta makes image %x, the release's is %s", h.DstSHA256, e.DstSHA256)
	}
	return nil
}

type applier struct {
	ctx      context.Context
	r        *reader
	h        *Header
	src      io.ReaderAt
	out      *seqWriter
	tmp, old []byte
	progress func(done, total int64)
	lastProg int64
}

func (a *applier) run() error {
	for {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		if a.progress != nil && a.out.pos()-a.lastProg >= 8<<20 {
			a.lastProg = a.out.pos()
			a.progress(a.lastProg, a.h.DstSize)
		}
		kind, err := a.r.u8()
		if err != nil {
			return err
		}
		if kind == OpEnd {
			if a.out.pos() != a.h.DstSize {
				return formatError("ended after %d of %d target bytes", a.out.pos(), a.h.DstSize)
			}
			if _, err := a.r.r.ReadByte(); err != io.EOF {
				if err != nil {
					return err
				}
				return formatError("data after the end")
			}
			if err := a.out.close(); err != nil {
				return err
			}
			if a.progress != nil {
				a.progress(a.h.DstSize, a.h.DstSize)
			}
			return nil
		}
		at := a.out.pos()
		switch kind {
		case OpZero:
			n, err := a.opLen()
			if err != nil {
				return err
			}
			if err := a.out.zeros(n); err != nil {
				return err
			}
		case OpCopy:
			off, err := a.r.size("copy offset", a.h.SrcSize)
			if err != nil {
				return err
			}
			n, err := a.opLen()
			if err != nil {
				return err
			}
			if !covered(a.h.Ranges, off, n) {
				return formatError("copy [%d, +%d) outside the verified source ranges", off, n)
			}
			if err := a.copySource(off, n); err != nil {
				return err
			}
		case OpData:
			n, err := a.opLen()
			if err != nil {
				return err
			}
			if err := a.copyStream(n); err != nil {
				return err
			}
		case OpPatch:
			if err := a.patch(); err != nil {
				return fmt.Errorf("patch at target byte %d: %w", at, err)
			}
		default:
			return formatError("unknown op %d at target byte %d", kind, at)
		}
	}
}

// opLen reads an op's length: > 0 and within what is left of the target.
func (a *applier) opLen() (int64, error) {
	left := a.h.DstSize - a.out.pos()
	n, err := a.r.size("op length", left)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, formatError("empty op at target byte %d", a.out.pos())
	}
	return n, nil
}

func (a *applier) copySource(off, n int64) error {
	for n > 0 {
		c := int(min(n, int64(len(a.tmp))))
		if _, err := a.src.ReadAt(a.tmp[:c], off); err != nil {
			return fmt.Errorf("read source at %d: %w", off, err)
		}
		if err := a.out.write(a.tmp[:c]); err != nil {
			return err
		}
		off += int64(c)
		n -= int64(c)
	}
	return nil
}

func (a *applier) copyStream(n int64) error {
	for n > 0 {
		c := int(min(n, int64(len(a.tmp))))
		if err := a.r.full(a.tmp[:c]); err != nil {
			return err
		}
		if err := a.out.write(a.tmp[:c]); err != nil {
			return err
		}
		n -= int64(c)
	}
	return nil
}

// oldSpace is the concatenation of a PATCH op's source extents.
type oldSpace struct {
	ext   []Extent
	start []int64 // start[i]: offset of ext[i] in the concatenation
	size  int64
}

// readAt fills b from the concatenation at pos; the caller checked bounds.
func (o *oldSpace) readAt(src io.ReaderAt, b []byte, pos int64) error {
	// Last extent starting at or before pos.
	lo, hi := 0, len(o.ext)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if o.start[m] <= pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo - 1
	for len(b) > 0 {
		e := o.ext[i]
		in := pos - o.start[i]
		c := int(min(int64(len(b)), e.Len-in))
		if _, err := src.ReadAt(b[:c], e.Off+in); err != nil {
			return fmt.Errorf("read source at %d: %w", e.Off+in, err)
		}
		b, pos = b[c:], pos+int64(c)
		i++
	}
	return nil
}

func (a *applier) patch() error {
	next, err := a.r.u32()
	if err != nil {
		return err
	}
	if next == 0 || next > MaxExtents {
		return formatError("%d source extents (1..%d)", next, MaxExtents)
	}
	o := oldSpace{ext: make([]Extent, next), start: make([]int64, next)}
	for i := range o.ext {
		e := &o.ext[i]
		if e.Off, err = a.r.size("extent offset", a.h.SrcSize); err != nil {
			return err
		}
		if e.Len, err = a.r.size("extent length", a.h.SrcSize); err != nil {
			return err
		}
		if e.Len == 0 || !covered(a.h.Ranges, e.Off, e.Len) {
			return formatError("extent [%d, +%d) outside the verified source ranges", e.Off, e.Len)
		}
		o.start[i] = o.size
		if o.size > MaxImageSize*MaxExtents-e.Len {
			return formatError("source extents too long")
		}
		o.size += e.Len
	}
	n, err := a.opLen()
	if err != nil {
		return err
	}
	pos, err := a.r.size("patch start", o.size) // position in old
	if err != nil {
		return err
	}
	for n > 0 {
		add, err := a.r.size("add length", n)
		if err != nil {
			return err
		}
		extra, err := a.r.size("extra length", n-add)
		if err != nil {
			return err
		}
		seek, err := a.r.i64()
		if err != nil {
			return err
		}
		if add+extra == 0 {
			return formatError("control makes no bytes")
		}
		if pos < 0 || pos > o.size || add > o.size-pos {
			return formatError("add of %d at old position %d: old has %d bytes", add, pos, o.size)
		}
		for left := add; left > 0; {
			skip, err := a.r.u32()
			if err != nil {
				return err
			}
			lit, err := a.r.u32()
			if err != nil {
				return err
			}
			if skip+lit == 0 || int64(skip)+int64(lit) > left {
				return formatError("diff segment of %d+%d bytes, %d left to add", skip, lit, left)
			}
			if err := a.addOld(&o, pos, int64(skip), false); err != nil {
				return err
			}
			if err := a.addOld(&o, pos+int64(skip), int64(lit), true); err != nil {
				return err
			}
			pos += int64(skip) + int64(lit)
			left -= int64(skip) + int64(lit)
		}
		if err := a.copyStream(extra); err != nil {
			return err
		}
		n -= add + extra
		// pos is in [0, size]; a seek that leaves the image range is
		// refused at the next add, one that overflows here.
		if (seek > 0 && pos > math.MaxInt64-seek) || (seek < 0 && pos < math.MinInt64-seek) {
			return formatError("seek %d from %d overflows", seek, pos)
		}
		pos += seek
		if err := a.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// addOld writes n bytes of old from pos, plus as many difference bytes from
// the document if diff is set. The caller checked the bounds.
func (a *applier) addOld(o *oldSpace, pos, n int64, diff bool) error {
	for n > 0 {
		c := int(min(n, int64(len(a.tmp))))
		if err := o.readAt(a.src, a.old[:c], pos); err != nil {
			return err
		}
		if diff {
			if err := a.r.full(a.tmp[:c]); err != nil {
				return err
			}
			d := a.old[:c]
			for i, b := range a.tmp[:c] {
				d[i] += b
			}
		}
		if err := a.out.write(a.old[:c]); err != nil {
			return err
		}
		pos += int64(c)
		n -= int64(c)
	}
	return nil
}

// seqWriter writes the target in order. Full buffers are written by a
// goroutine while the next one fills, so decoding and writing overlap; at
// most writeBuffers buffers exist.
type seqWriter struct {
	dst  io.WriterAt
	off  int64 // where buf starts
	buf  []byte
	full chan wbuf
	free chan []byte
	done chan error
	err  error
}

type wbuf struct {
	b   []byte
	off int64
}

const writeBuffers = 3

func newSeqWriter(dst io.WriterAt) *seqWriter {
	w := &seqWriter{dst: dst, buf: make([]byte, 0, bufSize), full: make(chan wbuf, writeBuffers), free: make(chan []byte, writeBuffers), done: make(chan error, 1)}
	for i := 0; i < writeBuffers-1; i++ {
		w.free <- make([]byte, 0, bufSize)
	}
	go func() {
		var err error
		for b := range w.full {
			if err == nil {
				if _, werr := dst.WriteAt(b.b, b.off); werr != nil {
					err = fmt.Errorf("write target at %d: %w", b.off, werr)
				}
			}
			w.free <- b.b[:0]
		}
		w.done <- err
	}()
	return w
}

func (w *seqWriter) pos() int64 { return w.off + int64(len(w.buf)) }

func (w *seqWriter) write(p []byte) error {
	for len(p) > 0 {
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush hands the buffer to the writing goroutine.
func (w *seqWriter) flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) == 0 {
		return nil
	}
	w.full <- wbuf{b: w.buf, off: w.off}
	w.off += int64(len(w.buf))
	w.buf = <-w.free
	return nil
}

// close flushes, waits for every write and returns the first error.
func (w *seqWriter) close() error {
	if w.full == nil {
		return w.err
	}
	err := w.flush()
	close(w.full)
	if werr := <-w.done; err == nil {
		err = werr
	}
	w.full = nil
	if w.err == nil {
		w.err = err
	}
	return err
}

var zeroBlock [64 << 10]byte

func (w *seqWriter) zeros(n int64) error {
	for n > 0 {
		c := min(n, int64(cap(w.buf)-len(w.buf)), int64(len(zeroBlock)))
		if err := w.write(zeroBlock[:c]); err != nil {
			return err
		}
		n -= c
	}
	return nil
}
