package delta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Magic opens every delta document.
const Magic = "OTADELTA"

// Version is the format version this package reads and writes.
const Version = 1

// DataCodecRaw: the document's data streams are raw bytes; the payload codec
// compresses the document as a whole.
const DataCodecRaw = 0

// Limits of the format, checked by the parser.
const (
	// MaxRanges bounds the source ranges of a header. The applier keeps
	// 16 bytes per range in memory.
	MaxRanges = 1 << 18
	// MaxExtents bounds the source extents of one PATCH op.
	MaxExtents = 1 << 16
	// MaxImageSize bounds the source and target sizes (1 TiB).
	MaxImageSize = 1 << 40
)

// Op kinds.
const (
	OpEnd   = 0
	OpZero  = 1
	OpCopy  = 2
	OpData  = 3
	OpPatch = 4
)

// Errors a caller decides on.
var (
	// ErrSourceMismatch: a source range does not hash as the delta says.
	// Nothing was written; install the full payload instead.
	ErrSourceMismatch = errors.New("delta source does not match its base")
	// ErrFormat: the document is malformed, truncated or out of bounds.
	ErrFormat = errors.New("malformed delta")
)

// Header is the start of a delta document.
type Header struct {
	DataCodec uint32
	SrcSize   int64
	SrcSHA256 [32]byte
	DstSize   int64
	DstSHA256 [32]byte
	Ranges    []Range
}

// Range is a source byte range and its hash.
type Range struct {
	Off, Len int64
	SHA256   [32]byte
}

// End is the offset just after the range.
func (r Range) End() int64 { return r.Off + r.Len }

// Extent is a source byte range without a hash.
type Extent struct{ Off, Len int64 }

// formatError wraps ErrFormat.
func formatError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// reader decodes the fixed-width integers of a document. A short read is a
// truncated document.
type reader struct {
	r   *bufio.Reader
	buf [32]byte
	n   int64 // bytes consumed
}

func newReader(r io.Reader) *reader { return &reader{r: bufio.NewReaderSize(r, 64<<10)} }

func (r *reader) full(b []byte) error {
	n, err := io.ReadFull(r.r, b)
	r.n += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return formatError("truncated at byte %d", r.n)
	}
	return err
}

func (r *reader) u8() (uint8, error) {
	b, err := r.r.ReadByte()
	if err == io.EOF {
		return 0, formatError("truncated at byte %d", r.n)
	}
	if err != nil {
		return 0, err
	}
	r.n++
	return b, nil
}

func (r *reader) u32() (uint32, error) {
	if err := r.full(r.buf[:4]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(r.buf[:4]), nil
}

func (r *reader) u64() (uint64, error) {
	if err := r.full(r.buf[:8]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(r.buf[:8]), nil
}

// size reads a u64 that must be a non-negative int64 no larger than limit.
func (r *reader) size(what string, limit int64) (int64, error) {
	v, err := r.u64()
	if err != nil {
		return 0, err
	}
	if v > math.MaxInt64 || int64(v) > limit {
		return 0, formatError("%s %d out of range (limit %d)", what, v, limit)
	}
	return int64(v), nil
}

func (r *reader) i64() (int64, error) {
	v, err := r.u64()
	return int64(v), err
}

func (r *reader) hash() ([32]byte, error) {
	var h [32]byte
	err := r.full(h[:])
	return h, err
}

// readHeader reads and checks a header. pre (if not nil) sees the header
// before its ranges are read. Each range is handed to check (if not nil) as
// soon as it is read, so a caller can verify it without keeping its hash; the
// returned header then holds the ranges without hashes.
func readHeader(r *reader, pre func(*Header) error, check func(Range) error) (*Header, error) {
	var magic [8]byte
	if err := r.full(magic[:]); err != nil {
		return nil, err
	}
	if string(magic[:]) != Magic {
		return nil, formatError("bad magic %q", magic[:])
	}
	v, err := r.u32()
	if err != nil {
		return nil, err
	}
	if v != Version {
		return nil, formatError("version %d, this updater reads %d", v, Version)
	}
	h := &Header{}
	if h.DataCodec, err = r.u32(); err != nil {
		return nil, err
	}
	if h.DataCodec != DataCodecRaw {
		return nil, formatError("data codec %d unknown (known: %d raw)", h.DataCodec, DataCodecRaw)
	}
	if h.SrcSize, err = r.size("source size", MaxImageSize); err != nil {
		return nil, err
	}
	if h.SrcSHA256, err = r.hash(); err != nil {
		return nil, err
	}
	if h.DstSize, err = r.size("target size", MaxImageSize); err != nil {
		return nil, err
	}
	if h.DstSHA256, err = r.hash(); err != nil {
		return nil, err
	}
	if pre != nil {
		if err := pre(h); err != nil {
			return nil, err
		}
	}
	n, err := r.size("range count", MaxRanges)
	if err != nil {
		return nil, err
	}
	h.Ranges = make([]Range, 0, min(n, 4096))
	var end int64
	for i := int64(0); i < n; i++ {
		var rg Range
		if rg.Off, err = r.size("range offset", h.SrcSize); err != nil {
			return nil, err
		}
		if rg.Len, err = r.size("range length", h.SrcSize); err != nil {
			return nil, err
		}
		if rg.SHA256, err = r.hash(); err != nil {
			return nil, err
		}
		// Off and Len are each <= SrcSize <= MaxImageSize: the sum cannot
		// overflow.
		if rg.Len == 0 || rg.Off+rg.Len > h.SrcSize {
			return nil, formatError("range %d [%d, +%d) outside the source of %d bytes", i, rg.Off, rg.Len, h.SrcSize)
		}
		if rg.Off < end {
			return nil, formatError("range %d at %d overlaps or precedes the one before", i, rg.Off)
		}
		end = rg.End()
		if check != nil {
			if err := check(rg); err != nil {
				return nil, err
			}
			rg.SHA256 = [32]byte{}
		}
		h.Ranges = append(h.Ranges, rg)
	}
	return h, nil
}

// covered reports whether [off, off+n) lies inside the ranges (sorted,
// disjoint), possibly across ranges that touch.
func covered(rs []Range, off, n int64) bool {
	if off < 0 || n < 0 || off > math.MaxInt64-n {
		return false
	}
	end := off + n
	// First range whose end is beyond off.
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if rs[m].End() <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(rs) || rs[lo].Off > off {
		return n == 0
	}
	for i := lo; ; i++ {
		if rs[i].End() >= end {
			return true
		}
		if i+1 == len(rs) || rs[i+1].Off != rs[i].End() {
			return false
		}
	}
}
