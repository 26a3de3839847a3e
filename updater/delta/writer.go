package delta

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Writer writes a delta document: the header, then the ops in target order,
// then Close. It checks what the parser checks, so a document it writes
// parses. Errors are sticky.
type Writer struct {
	w       *bufio.Writer
	h       Header
	written int64 // target bytes described so far
	patch   int64 // bytes the open PATCH op still needs
	oldLen  int64 // length of the open PATCH op's old
	err     error
	buf     [32]byte
}

// NewWriter writes h and returns a Writer for the ops. h.Ranges must carry
// their hashes.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	dw := &Writer{w: bufio.NewWriterSize(w, 256<<10), h: h}
	if h.SrcSize < 0 || h.SrcSize > MaxImageSize || h.DstSize < 0 || h.DstSize > MaxImageSize {
		return nil, fmt.Errorf("delta header: sizes %d, %d out of range", h.SrcSize, h.DstSize)
	}
	if len(h.Ranges) > MaxRanges {
		return nil, fmt.Errorf("delta header: %d source ranges, limit %d", len(h.Ranges), MaxRanges)
	}
	dw.bytes([]byte(Magic))
	dw.u32(Version)
	dw.u32(h.DataCodec)
	dw.u64(uint64(h.SrcSize))
	dw.bytes(h.SrcSHA256[:])
	dw.u64(uint64(h.DstSize))
	dw.bytes(h.DstSHA256[:])
	dw.u64(uint64(len(h.Ranges)))
	var end int64
	for i, r := range h.Ranges {
		if r.Len <= 0 || r.Off < end || r.Off > h.SrcSize-r.Len {
			return nil, fmt.Errorf("delta header: range %d [%d, +%d) out of order or outside the source", i, r.Off, r.Len)
		}
		end = r.End()
		dw.u64(uint64(r.Off))
		dw.u64(uint64(r.Len))
		dw.bytes(r.SHA256[:])
	}
	return dw, dw.err
}

func (w *Writer) bytes(b []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}

func (w *Writer) u8(v uint8) {
	if w.err == nil {
		w.err = w.w.WriteByte(v)
	}
}

func (w *Writer) u32(v uint32) {
	binary.LittleEndian.PutUint32(w.buf[:4], v)
	w.bytes(w.buf[:4])
}

func (w *Writer) u64(v uint64) {
	binary.LittleEndian.PutUint64(w.buf[:8], v)
	w.bytes(w.buf[:8])
}

func (w *Writer) startOp(kind uint8, n int64) error {
	if w.err != nil {
		return w.err
	}
	if w.patch != 0 {
		w.err = fmt.Errorf("delta: op started with %d bytes of a patch missing", w.patch)
		return w.err
	}
	if n <= 0 || n > w.h.DstSize-w.written {
		w.err = fmt.Errorf("delta: op of %d bytes at %d: target is %d bytes", n, w.written, w.h.DstSize)
		return w.err
	}
	w.u8(kind)
	return w.err
}

// Zero writes n zero bytes.
func (w *Writer) Zero(n int64) error {
	if w.startOp(OpZero, n) != nil {
		return w.err
	}
	w.u64(uint64(n))
	w.written += n
	return w.err
}

// Copy copies n source bytes from off, which must lie inside the ranges.
func (w *Writer) Copy(off, n int64) error {
	if w.startOp(OpCopy, n) != nil {
		return w.err
	}
	if !covered(w.h.Ranges, off, n) {
		w.err = fmt.Errorf("delta: copy [%d, +%d) outside the source ranges", off, n)
		return w.err
	}
	w.u64(uint64(off))
	w.u64(uint64(n))
	w.written += n
	return w.err
}

// Data writes literal bytes.
func (w *Writer) Data(b []byte) error {
	if w.startOp(OpData, int64(len(b))) != nil {
		return w.err
	}
	w.u64(uint64(len(b)))
	w.bytes(b)
	w.written += int64(len(b))
	return w.err
}

// Patch starts a PATCH op of n target bytes made from the concatenation of
// the source extents, starting at position pos of it. Controls follow until
// they make n bytes.
func (w *Writer) Patch(old []Extent, n, pos int64) error {
	if w.startOp(OpPatch, n) != nil {
		return w.err
	}
	if len(old) > MaxExtents {
		w.err = fmt.Errorf("delta: patch with %d extents, limit %d", len(old), MaxExtents)
		return w.err
	}
	w.oldLen = 0
	w.u32(uint32(len(old)))
	for _, e := range old {
		if e.Len <= 0 || !covered(w.h.Ranges, e.Off, e.Len) {
			w.err = fmt.Errorf("delta: patch extent [%d, +%d) outside the source ranges", e.Off, e.Len)
			return w.err
		}
		w.oldLen += e.Len
		w.u64(uint64(e.Off))
		w.u64(uint64(e.Len))
	}
	if pos < 0 || pos > w.oldLen {
		w.err = fmt.Errorf("delta: patch starts at %d of %d old bytes", pos, w.oldLen)
		return w.err
	}
	w.u64(uint64(n))
	w.u64(uint64(pos))
	w.patch = n
	w.written += n
	return w.err
}

// Control writes one control of the open PATCH op: len(diff) bytes added to
// old from the current position, then extra verbatim, then seek.
func (w *Writer) Control(diff, extra []byte, seek int64) error {
	if w.err != nil {
		return w.err
	}
	n := int64(len(diff)) + int64(len(extra))
	if n == 0 || n > w.patch {
		w.err = fmt.Errorf("delta: control of %d bytes, the patch needs %d", n, w.patch)
		return w.err
	}
	w.u64(uint64(len(diff)))
	w.u64(uint64(len(extra)))
	w.u64(uint64(seek))
	w.diff(diff)
	w.bytes(extra)
	w.patch -= n
	return w.err
}

// Close writes END and flushes. The ops must have described the whole target.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.patch != 0 || w.written != w.h.DstSize {
		return fmt.Errorf("delta: ops describe %d of %d target bytes", w.written-w.patch, w.h.DstSize)
	}
	w.u8(OpEnd)
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

// minSkip is the shortest run of zero differences worth a segment of its own.
const minSkip = 16

// diff writes difference bytes as segments: runs of zeros skipped, the rest
// literal.
func (w *Writer) diff(d []byte) {
	for len(d) > 0 {
		skip := 0
		for skip < len(d) && int64(skip) < math.MaxUint32 && d[skip] == 0 {
			skip++
		}
		// The literal ends before the next run of minSkip zeros.
		end, zeros := skip, 0
		for end < len(d) && int64(end-skip) < math.MaxUint32 {
			if d[end] == 0 {
				zeros++
			} else {
				zeros = 0
			}
			end++
			if zeros == minSkip {
				end -= minSkip
				break
			}
		}
		w.u32(uint32(skip))
		w.u32(uint32(end - skip))
		w.bytes(d[skip:end])
		d = d[end:]
	}
}
