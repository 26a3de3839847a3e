package payload

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// maxDecoders is how many blocks are decoded at once. Each decoder holds a
// dictionary of up to ParallelBlockSize bytes.
const maxDecoders = 2

// segmentData bounds the compressed bytes gathered for one block (or one segment of
// a block too large for the parallel path): LZMA2 stores incompressible data in
// uncompressed chunks of 64 KiB with a 3-byte header.
const segmentData = ParallelBlockSize + ParallelBlockSize/64

// sequentialSegment is the output size of one step in a block too large for the
// parallel path. Small steps keep the streaming decoder's garbage collected often.
const sequentialSegment = 1 << 20

// decodeXZ parses an xz file from src and feeds the decoded image to the sink.
// Blocks that fit ParallelBlockSize are decoded by a pool of workers; larger ones
// are decoded in order, in segments, by this goroutine.
func decodeXZ(ctx context.Context, src io.Reader, s *sink) error {
	in := &xzInput{br: bufio.NewReaderSize(src, 1<<20)}
	x := &xzDecoder{ctx: ctx, in: in, s: s, jobs: make(chan *xzJob, maxDecoders)}
	n := min(runtime.GOMAXPROCS(0), maxDecoders)
	x.wg.Add(n)
	for range n {
		go x.worker()
	}
	err := x.decodeFile()
	close(x.jobs)
	x.wg.Wait()
	return err
}

type xzDecoder struct {
	ctx  context.Context
	in   *xzInput
	s    *sink
	jobs chan *xzJob
	wg   sync.WaitGroup

	// For blocks decoded in order: the decoder and its sliding window.
	seq lzma2Decoder
	win []byte
}

// xzJob is one block for a worker.
type xzJob struct {
	data   []byte // LZMA2 chunks without the end marker
	dict   int64
	check  byte
	stored []byte // the block's check field
	p      *piece
}

func (x *xzDecoder) worker() {
	defer x.wg.Done()
	var d lzma2Decoder
	for j := range x.jobs {
		if x.ctx.Err() != nil {
			j.p.err = context.Cause(x.ctx)
		} else if err := d.block(j.data, j.p.out, j.dict); err != nil {
			j.p.err = err
		} else {
			c := newBlockCheck(j.check)
			c.write(j.p.out)
			j.p.err = c.verify(j.stored)
		}
		x.s.bufs.put(j.data)
		close(j.p.done)
	}
}

// decodeFile reads one or more concatenated streams, with optional stream padding,
// up to the end of src.
func (x *xzDecoder) decodeFile() error {
	in := x.in
	for streams := 0; ; streams++ {
		if streams > 0 {
			// Stream padding (multiples of 4 zero bytes), then the end or a stream.
			for {
				b, err := in.br.Peek(1)
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return fmt.Errorf("read payload: %w", err)
				}
				if b[0] != 0 {
					break
				}
				var pad [4]byte
				if err := in.readFull(pad[:]); err != nil {
					return err
				}
				if pad != [4]byte{} {
					return formatErr("bad stream padding")
				}
			}
		}
		if err := x.decodeStream(); err != nil {
			return err
		}
	}
}

func (x *xzDecoder) decodeStream() error {
	in := x.in
	var hdr [12]byte
	if err := in.readFull(hdr[:]); err != nil {
		return err
	}
	if !bytes.Equal(hdr[:6], xzMagic) {
		return formatErr("not an xz stream")
	}
	check, err := readStreamFlags(hdr[6:])
	if err != nil {
		return err
	}
	seen := newIndexHash()
	for {
		if err := x.ctx.Err(); err != nil {
			return context.Cause(x.ctx)
		}
		b, err := in.readByte()
		if err != nil {
			return err
		}
		if b == 0 {
			return readIndex(in, seen, hdr[6:8])
		}
		h, err := readBlockHeader(in, b)
		if err != nil {
			return err
		}
		if err := x.decodeBlock(h, check, seen); err != nil {
			return err
		}
	}
}

// decodeBlock gathers a block's chunks. A block that fits ParallelBlockSize goes to
// a worker; a larger one is decoded here, segment by segment, as it is read.
func (x *xzDecoder) decodeBlock(h blockHeader, check byte, seen *indexHash) error {
	in, s := x.in, x.s
	dict := h.dict
	if h.uncompressed >= 0 && h.uncompressed < dict {
		dict = h.uncompressed
	}
	dict = max(dict, 4096)
	if h.uncompressed > s.size-s.planned {
		return fmt.Errorf("xz block of %d bytes after %d: image longer than the signed %d bytes: %w",
			h.uncompressed, s.planned, s.size, ErrTooLarge)
	}

	first := 1 << 20
	if h.compressed > 0 && h.compressed <= segmentData {
		first = int(h.compressed)
	}
	buf, err := s.bufs.get(x.ctx, first)
	if err != nil {
		return err
	}
	buf = buf[:0]
	defer func() { s.bufs.put(buf) }()

	// A block known to be too large for a worker is decoded here from the start, in
	// small segments; one found too large while gathering has its first
	// ParallelBlockSize bytes decoded at once, then small segments.
	segLimit := int64(ParallelBlockSize)
	if h.uncompressed > ParallelBlockSize || h.compressed > segmentData {
		segLimit = sequentialSegment
	}
	var (
		unpacked, packed int64 // whole block
		segUnpacked      int64 // gathered in buf
		sequential       bool  // too large for a worker: decoded here
		sum              = newBlockCheck(check)
	)
	flush := func() error {
		if !sequential {
			sequential = true
			if dict > MaxDictSize {
				return formatErr("lzma2 dictionary of %d bytes exceeds the %d-byte limit", dict, MaxDictSize)
			}
			if n := int(dict) + ParallelBlockSize; cap(x.win) < n {
				x.win = nil
				x.win = make([]byte, n)
			}
			x.win = x.win[:cap(x.win)]
			x.seq.startBlock(h.dict)
		}
		d := &x.seq
		if d.pos+int(segUnpacked) > len(x.win) {
			k := d.pos - min(int(dict), d.pos)
			copy(x.win, x.win[k:d.pos])
			d.slide(k)
		}
		start := d.pos
		if err := d.decode(buf, x.win[:start+int(segUnpacked)]); err != nil {
			return err
		}
		if d.pos != start+int(segUnpacked) {
			return formatErr("lzma2 chunks decode to fewer bytes than their headers say")
		}
		out, err := s.bufs.get(x.ctx, int(segUnpacked))
		if err != nil {
			return err
		}
		copy(out, x.win[start:d.pos])
		sum.write(out)
		segLimit = sequentialSegment
		buf, segUnpacked = buf[:0], 0
		return s.emit(&piece{out: out})
	}
	for {
		c, err := readChunk(in)
		if err != nil {
			return err
		}
		if packed == 0 && !c.end && !c.resetsDict {
			return formatErr("block does not start with a dictionary reset")
		}
		packed += int64(c.hdrLen + c.data)
		if h.compressed >= 0 && packed > h.compressed {
			return formatErr("block longer than its header says")
		}
		if c.end {
			break
		}
		unpacked += c.unpacked
		if h.uncompressed >= 0 && unpacked > h.uncompressed {
			return formatErr("block decodes to more than its header says")
		}
		if unpacked > s.size-s.planned {
			return fmt.Errorf("image longer than the signed %d bytes: %w", s.size, ErrTooLarge)
		}
		if segUnpacked+c.unpacked > segLimit || len(buf)+c.hdrLen+c.data > segmentData {
			if err := flush(); err != nil {
				return err
			}
		}
		if need := len(buf) + c.hdrLen + c.data; need > cap(buf) {
			nb, err := s.bufs.get(x.ctx, min(max(need, 2*cap(buf)), segmentData))
			if err != nil {
				return err
			}
			nb = append(nb[:0], buf...)
			s.bufs.put(buf)
			buf = nb
		}
		buf = append(buf, c.hdr[:c.hdrLen]...)
		k := len(buf)
		buf = buf[:k+c.data]
		if err := in.readFull(buf[k:]); err != nil {
			return err
		}
		segUnpacked += c.unpacked
	}
	if (h.compressed >= 0 && packed != h.compressed) || (h.uncompressed >= 0 && unpacked != h.uncompressed) {
		return formatErr("block sizes differ from its header")
	}
	if pad := (int64(h.size) + packed) % 4; pad != 0 {
		var z [3]byte
		if err := in.readFull(z[:4-pad]); err != nil {
			return err
		}
		if z != [3]byte{} {
			return formatErr("non-zero block padding")
		}
	}
	stored := make([]byte, checkSize(check))
	if err := in.readFull(stored); err != nil {
		return err
	}
	seen.add(uint64(int64(h.size)+packed+int64(len(stored))), uint64(unpacked))
	s.planned += unpacked

	switch {
	case sequential:
		if segUnpacked > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		return sum.verify(stored)
	case unpacked == 0:
		return sum.verify(stored)
	}
	out, err := s.bufs.get(x.ctx, int(unpacked))
	if err != nil {
		return err
	}
	j := &xzJob{data: buf, dict: h.dict, check: check, stored: stored, p: &piece{out: out, done: make(chan struct{})}}
	buf = nil // the worker returns it
	if err := s.emit(j.p); err != nil {
		s.bufs.put(j.data)
		s.bufs.put(out)
		return err
	}
	select {
	case x.jobs <- j:
		return nil
	case <-x.ctx.Done():
		j.p.err = context.Cause(x.ctx)
		close(j.p.done)
		return context.Cause(x.ctx)
	}
}

// block decodes a whole block held in memory into out.
func (d *lzma2Decoder) block(data, out []byte, dict int64) error {
	d.startBlock(dict)
	if err := d.decode(data, out); err != nil {
		return err
	}
	if d.pos != len(out) {
		return formatErr("block decodes to %d bytes, chunks say %d", d.pos, len(out))
	}
	return nil
}
