package payload

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
)

// The xz container format (https://tukaani.org/xz/xz-file-format.txt), the parts a
// decoder needs. Only what the format allows is accepted; every size is checked
// before it is used.

var (
	xzMagic     = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	xzFootMagic = []byte{'Y', 'Z'}
	crc64Table  = crc64.MakeTable(crc64.ECMA)
)

const (
	checkNone   = 0x00
	checkCRC32  = 0x01
	checkCRC64  = 0x04
	checkSHA256 = 0x0a

	filterLZMA2 = 0x21

	// MaxDictSize is the largest LZMA2 dictionary accepted (xz presets -0 to -7).
	// A block smaller than its dictionary only needs a dictionary of its own size.
	MaxDictSize = 16 << 20
)

// errFormat marks malformed xz input.
var errFormat = errors.New("malformed xz")

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errFormat}, args...)...)
}

// xzInput reads the compressed stream and counts what it consumed.
type xzInput struct {
	br *bufio.Reader
	n  int64
}

func (in *xzInput) readFull(p []byte) error {
	k, err := io.ReadFull(in.br, p)
	in.n += int64(k)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return formatErr("truncated at byte %d", in.n)
	}
	return err
}

func (in *xzInput) readByte() (byte, error) {
	b, err := in.br.ReadByte()
	if err == io.EOF {
		return 0, formatErr("truncated at byte %d", in.n)
	}
	if err == nil {
		in.n++
	}
	return b, err
}

// readStreamHeader reads the 12-byte stream header after its magic has been read
// and returns the check type.
func readStreamFlags(p []byte) (byte, error) {
	if p[0] != 0 || p[1]&0xf0 != 0 {
		return 0, formatErr("reserved stream flags set")
	}
	if crc32.ChecksumIEEE(p[:2]) != binary.LittleEndian.Uint32(p[2:6]) {
		return 0, formatErr("stream flags crc32 mismatch")
	}
	switch c := p[1]; c {
	case checkNone, checkCRC32, checkCRC64, checkSHA256:
		return c, nil
	default:
		return 0, formatErr("unsupported check type %#x", c)
	}
}

func checkSize(c byte) int {
	switch c {
	case checkCRC32:
		return 4
	case checkCRC64:
		return 8
	case checkSHA256:
		return 32
	}
	return 0
}

// blockCheck computes a block's check over its uncompressed data.
type blockCheck struct {
	kind  byte
	crc32 uint32
	crc64 uint64
	sha   hash.Hash
}

func newBlockCheck(kind byte) *blockCheck {
	c := &blockCheck{kind: kind}
	if kind == checkSHA256 {
		c.sha = sha256.New()
	}
	return c
}

func (c *blockCheck) write(p []byte) {
	switch c.kind {
	case checkCRC32:
		c.crc32 = crc32.Update(c.crc32, crc32.IEEETable, p)
	case checkCRC64:
		c.crc64 = crc64.Update(c.crc64, crc64Table, p)
	case checkSHA256:
		c.sha.Write(p)
	}
}

// verify compares the computed check with the stored field.
func (c *blockCheck) verify(stored []byte) error {
	var got []byte
	switch c.kind {
	case checkNone:
		return nil
	case checkCRC32:
		got = binary.LittleEndian.AppendUint32(nil, c.crc32)
	case checkCRC64:
		got = binary.LittleEndian.AppendUint64(nil, c.crc64)
	case checkSHA256:
		got = c.sha.Sum(nil)
	}
	if !bytes.Equal(got, stored) {
		return formatErr("block check mismatch")
	}
	return nil
}

// getVarint decodes an xz multibyte integer (at most 9 bytes, minimal encoding).
func getVarint(p []byte) (v uint64, n int, err error) {
	for i := 0; i < len(p) && i < 9; i++ {
		b := p[i]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, 0, formatErr("non-minimal integer")
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, formatErr("bad integer")
}

func readVarint(in *xzInput, crc *uint32) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := in.readByte()
		if err != nil {
			return 0, err
		}
		*crc = crc32.Update(*crc, crc32.IEEETable, []byte{b})
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, formatErr("non-minimal integer")
			}
			return v, nil
		}
	}
	return 0, formatErr("bad integer")
}

// blockHeader is a parsed block header. Sizes are -1 when absent.
type blockHeader struct {
	size         int   // header size in bytes
	compressed   int64 // compressed size, or -1
	uncompressed int64 // uncompressed size, or -1
	dict         int64 // LZMA2 dictionary size
}

// readBlockHeader reads a block header whose first byte (the size byte, non-zero)
// has already been read.
func readBlockHeader(in *xzInput, sizeByte byte) (blockHeader, error) {
	h := blockHeader{size: (int(sizeByte) + 1) * 4, compressed: -1, uncompressed: -1}
	p := make([]byte, h.size)
	p[0] = sizeByte
	if err := in.readFull(p[1:]); err != nil {
		return h, err
	}
	body, stored := p[:h.size-4], binary.LittleEndian.Uint32(p[h.size-4:])
	if crc32.ChecksumIEEE(body) != stored {
		return h, formatErr("block header crc32 mismatch")
	}
	flags := body[1]
	if flags&0x3c != 0 {
		return h, formatErr("reserved block flags set")
	}
	nfilters := int(flags&3) + 1
	rest := body[2:]
	next := func() (uint64, error) {
		v, n, err := getVarint(rest)
		if err != nil {
			return 0, err
		}
		rest = rest[n:]
		return v, nil
	}
	if flags&0x40 != 0 {
		v, err := next()
		if err != nil {
			return h, err
		}
		if v == 0 || v > 1<<62 {
			return h, formatErr("bad compressed size %d", v)
		}
		h.compressed = int64(v)
	}
	if flags&0x80 != 0 {
		v, err := next()
		if err != nil {
			return h, err
		}
		if v > 1<<62 {
			return h, formatErr("bad uncompressed size %d", v)
		}
		h.uncompressed = int64(v)
	}
	for i := 0; i < nfilters; i++ {
		id, err := next()
		if err != nil {
			return h, err
		}
		psize, err := next()
		if err != nil {
			return h, err
		}
		if psize > uint64(len(rest)) {
			return h, formatErr("filter properties overrun the header")
		}
		props := rest[:psize]
		rest = rest[psize:]
		if id != filterLZMA2 || nfilters != 1 {
			return h, formatErr("unsupported filter chain (only a single lzma2 filter is accepted)")
		}
		if psize != 1 || props[0] > 40 {
			return h, formatErr("bad lzma2 properties")
		}
		h.dict = lzma2DictSize(props[0])
	}
	for _, b := range rest {
		if b != 0 {
			return h, formatErr("non-zero block header padding")
		}
	}
	return h, nil
}

func lzma2DictSize(p byte) int64 {
	if p == 40 {
		return 0xffffffff
	}
	return int64(2|p&1) << (p/2 + 11)
}

// lzma2Chunk is one LZMA2 chunk header.
type lzma2Chunk struct {
	hdr        [6]byte
	hdrLen     int
	data       int   // bytes of chunk data after the header
	unpacked   int64 // uncompressed bytes it produces
	end        bool  // end-of-data marker
	resetsDict bool
}

// readChunk reads one LZMA2 chunk header.
func readChunk(in *xzInput) (lzma2Chunk, error) {
	var c lzma2Chunk
	b, err := in.readByte()
	if err != nil {
		return c, err
	}
	c.hdr[0] = b
	switch {
	case b == 0x00:
		c.hdrLen, c.end = 1, true
		return c, nil
	case b == 0x01 || b == 0x02:
		c.hdrLen = 3
		if err := in.readFull(c.hdr[1:3]); err != nil {
			return c, err
		}
		c.data = int(binary.BigEndian.Uint16(c.hdr[1:3])) + 1
		c.unpacked = int64(c.data)
		c.resetsDict = b == 0x01
		return c, nil
	case b < 0x80:
		return c, formatErr("bad lzma2 chunk control byte %#x", b)
	}
	c.hdrLen = 5
	if b >= 0xc0 {
		c.hdrLen = 6
	}
	if err := in.readFull(c.hdr[1:c.hdrLen]); err != nil {
		return c, err
	}
	c.unpacked = (int64(b&0x1f)<<16 | int64(c.hdr[1])<<8 | int64(c.hdr[2])) + 1
	c.data = int(binary.BigEndian.Uint16(c.hdr[3:5])) + 1
	c.resetsDict = b >= 0xe0
	return c, nil
}

// indexHash accumulates the (unpadded size, uncompressed size) records of the blocks
// decoded so far, so the index can be checked in constant memory.
type indexHash struct {
	count uint64
	h     hash.Hash
}

func newIndexHash() *indexHash { return &indexHash{h: sha256.New()} }

func (x *indexHash) add(unpadded, uncompressed uint64) {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], unpadded)
	binary.LittleEndian.PutUint64(b[8:], uncompressed)
	x.h.Write(b[:])
	x.count++
}

// readIndex reads the index (its indicator byte already read) and the stream footer
// and checks them against the blocks seen.
func readIndex(in *xzInput, seen *indexHash, flags []byte) error {
	crc := crc32.Update(0, crc32.IEEETable, []byte{0})
	start := in.n - 1
	count, err := readVarint(in, &crc)
	if err != nil {
		return err
	}
	if count != seen.count {
		return formatErr("index lists %d blocks, stream has %d", count, seen.count)
	}
	got := newIndexHash()
	for i := uint64(0); i < count; i++ {
		unpadded, err := readVarint(in, &crc)
		if err != nil {
			return err
		}
		uncompressed, err := readVarint(in, &crc)
		if err != nil {
			return err
		}
		got.add(unpadded, uncompressed)
	}
	if !bytes.Equal(got.h.Sum(nil), seen.h.Sum(nil)) {
		return formatErr("index does not match the blocks")
	}
	for (in.n-start)%4 != 0 {
		b, err := in.readByte()
		if err != nil {
			return err
		}
		if b != 0 {
			return formatErr("non-zero index padding")
		}
		crc = crc32.Update(crc, crc32.IEEETable, []byte{b})
	}
	var tail [4 + 12]byte
	if err := in.readFull(tail[:]); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(tail[:4]) != crc {
		return formatErr("index crc32 mismatch")
	}
	indexSize := in.n - 12 - start
	foot := tail[4:]
	if crc32.ChecksumIEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot[:4]) {
		return formatErr("stream footer crc32 mismatch")
	}
	if back := (int64(binary.LittleEndian.Uint32(foot[4:8])) + 1) * 4; back != indexSize {
		return formatErr("stream footer backward size %d, index is %d bytes", back, indexSize)
	}
	if !bytes.Equal(foot[8:10], flags) {
		return formatErr("stream footer flags differ from the header")
	}
	if !bytes.Equal(foot[10:12], xzFootMagic) {
		return formatErr("bad stream footer magic")
	}
	return nil
}
