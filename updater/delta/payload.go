package delta

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/ulikunitz/xz"
)

// CodecXZ is the payload codec of delta payloads, as named in the manifest.
const CodecXZ = "xz"

// MaxDictSize bounds the LZMA2 dictionary of a delta payload: the decoder
// allocates it, so it is most of the applier's memory. Encoders use at most
// this much (imagebuilder uses 16 MiB).
const MaxDictSize = 16 << 20

// OpenPayload returns a reader of the delta document inside a payload
// encoded with codec. For xz, the dictionary of the first block is checked
// against MaxDictSize before anything is decoded (delta payloads are one
// block), and the stream's check is verified when the document is read to
// its end, which Apply does. The document is decoded ahead, on its own
// goroutine, by up to readAhead bytes, so decoding overlaps the applier's
// reads and writes. Close stops it.
func OpenPayload(r io.Reader, codec string) (io.ReadCloser, error) {
	if codec != CodecXZ {
		return nil, fmt.Errorf("%w: payload codec %q unknown (known: %s)", ErrFormat, codec, CodecXZ)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(12 + 1024)
	if err != nil && err != io.EOF {
		return nil, err
	}
	dict, err := xzDictSize(head)
	if err != nil {
		return nil, err
	}
	if dict > MaxDictSize {
		return nil, fmt.Errorf("%w: xz dictionary of %d bytes, limit %d", ErrFormat, dict, MaxDictSize)
	}
	c := xz.ReaderConfig{SingleStream: true, DictCap: int(max(dict, 4096))}
	xr, err := c.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: xz: %v", ErrFormat, err)
	}
	return newAheadReader(xr), nil
}

// Decoding ahead: chunks of aheadChunk bytes, at most aheadChunks in flight.
const (
	aheadChunk  = 1 << 20
	aheadChunks = 4
)

// aheadReader reads its source on a goroutine into a bounded queue of
// chunks.
type aheadReader struct {
	chunks chan chunk
	free   chan []byte
	done   chan struct{}
	cur    chunk
	off    int
	err    error
	closed bool
}

type chunk struct {
	b   []byte
	err error
}

func newAheadReader(r io.Reader) *aheadReader {
	a := &aheadReader{chunks: make(chan chunk, aheadChunks), free: make(chan []byte, aheadChunks+1), done: make(chan struct{})}
	for i := 0; i < aheadChunks+1; i++ {
		a.free <- make([]byte, aheadChunk)
	}
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-a.free:
			case <-a.done:
				return
			}
			n, err := io.ReadFull(r, buf)
			switch err {
			case nil, io.EOF:
			case io.ErrUnexpectedEOF:
				err = io.EOF
			default:
				// What the decoder refuses is a malformed payload.
				err = fmt.Errorf("%w: xz: %w", ErrFormat, err)
			}
			select {
			case a.chunks <- chunk{b: buf[:n], err: err}:
			case <-a.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return a
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for a.off == len(a.cur.b) {
		if a.err != nil {
			return 0, a.err
		}
		if a.cur.b != nil {
			a.free <- a.cur.b[:cap(a.cur.b)]
		}
		a.cur, a.off = <-a.chunks, 0
		a.err = a.cur.err
	}
	n := copy(p, a.cur.b[a.off:])
	a.off += n
	return n, nil
}

// Close stops the decoding goroutine.
func (a *aheadReader) Close() error {
	if !a.closed {
		a.closed = true
		close(a.done)
	}
	return nil
}

// xzDictSize reads the LZMA2 dictionary size from the first block header
// of an xz stream (xz file format 1.2.1, sections 2.1.1 and 3.1).
func xzDictSize(b []byte) (int64, error) {
	bad := func(what string) (int64, error) {
		return 0, fmt.Errorf("%w: xz: %s", ErrFormat, what)
	}
	if len(b) < 13 || !bytes.Equal(b[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		return bad("no stream header")
	}
	b = b[12:]
	hsize := (int(b[0]) + 1) * 4
	if b[0] == 0 || len(b) < hsize {
		return bad("no block header")
	}
	h := b[1:hsize]
	flags := h[0]
	h = h[1:]
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && len(h) > 0; i++ {
			c := h[0]
			h = h[1:]
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	for _, bit := range []byte{0x40, 0x80} {
		if flags&bit != 0 {
			if _, ok := varint(); !ok {
				return bad("block header sizes")
			}
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || n > uint64(len(h)) {
			return bad("filter flags")
		}
		props := h[:n]
		h = h[n:]
		if id != 0x21 {
			continue
		}
		if len(props) != 1 || props[0] > 40 {
			return bad("LZMA2 properties")
		}
		c := props[0]
		if c == 40 {
			return 1<<32 - 1, nil
		}
		return int64(2|c&1) << (c/2 + 11), nil
	}
	return bad("no LZMA2 filter in the first block")
}
