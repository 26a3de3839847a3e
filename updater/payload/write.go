package payload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
)

// Codecs WriteImage understands.
const (
	CodecXZ   = "xz"
	CodecNone = "none"
)

// Image is the content a partition must hold after the write: the signed size and
// SHA-256 (lowercase hex) of the uncompressed image.
type Image struct {
	Size   int64
	SHA256 string
}

// Progress receives the bytes done so far out of total. It is called at most about
// ten times a second, and once at the end.
type Progress func(done, total int64)

// Memory bounds of the write path.
const (
	// ParallelBlockSize is the largest xz block decoded in parallel with others.
	ParallelBlockSize = 8 << 20
	// bufferLimit bounds the block buffers in flight (compressed and decoded).
	bufferLimit = 24 << 20
	// plainChunk is the read and write size of uncompressed payloads.
	plainChunk = 4 << 20
)

// WriteImage decompresses src (codec CodecXZ or CodecNone) and writes the output to
// dst at off, hashing it on the way. The output must be exactly want.Size bytes:
// more stops the write at once with ErrTooLarge (nothing is written past
// off+want.Size), fewer ends with ErrShort; and it must hash to want.SHA256, else
// ErrDigestMismatch. max is the size of the destination partition: want.Size > max is
// refused with ErrTooLarge before anything is written. src is read to its end, so a
// CheckedReader around it gets to verify the compressed bytes. dst is synced when it
// has a Sync() error method. Memory stays bounded whatever the image size (see the
// package doc). progress may be nil.
func WriteImage(ctx context.Context, src io.Reader, codec string, dst io.WriterAt, off, max int64, want Image, progress Progress) error {
	wantSum, err := parseSHA256(want.SHA256)
	if err != nil {
		return err
	}
	switch {
	case want.Size < 0 || off < 0 || max < 0:
		return fmt.Errorf("negative size or offset")
	case want.Size > max:
		return fmt.Errorf("image of %d bytes does not fit the %d-byte partition: %w", want.Size, max, ErrTooLarge)
	case off > (1<<63-1)-max:
		return fmt.Errorf("offset %d plus partition size %d overflows", off, max)
	}
	if codec != CodecXZ && codec != CodecNone {
		return fmt.Errorf("unknown codec %q (known: %s, %s)", codec, CodecXZ, CodecNone)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s := newSink(ctx, cancel, dst, off, want.Size, progress)
	s.start()
	var perr error
	switch codec {
	case CodecXZ:
		perr = decodeXZ(ctx, src, s)
	case CodecNone:
		perr = copyPlain(ctx, src, s)
	}
	if err := s.finish(perr); err != nil {
		return err
	}
	if s.written < want.Size {
		return fmt.Errorf("image is %d bytes, signed %d: %w", s.written, want.Size, ErrShort)
	}
	if got := s.hash.Sum(nil); !bytes.Equal(got, wantSum) {
		return fmt.Errorf("image sha256 %x, signed %x: %w", got, wantSum, ErrDigestMismatch)
	}
	if f, ok := dst.(interface{ Sync() error }); ok {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	s.progress.report(s.written, true)
	return nil
}

func parseSHA256(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("bad sha256 %q", s)
	}
	return b, nil
}

// copyPlain feeds an uncompressed payload to the sink.
func copyPlain(ctx context.Context, src io.Reader, s *sink) error {
	var total int64
	for {
		buf, err := s.bufs.get(ctx, plainChunk)
		if err != nil {
			return err
		}
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			total += int64(n)
			if total > s.size {
				s.bufs.put(buf)
				return fmt.Errorf("image longer than the signed %d bytes: %w", s.size, ErrTooLarge)
			}
			if err := s.emit(&piece{out: buf[:n]}); err != nil {
				return err
			}
		} else {
			s.bufs.put(buf)
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return nil
		default:
			return fmt.Errorf("read payload: %w", err)
		}
	}
}

// piece is a run of output bytes in image order. done is nil when out is ready,
// else it is closed once out (or err) is.
type piece struct {
	out  []byte
	done chan struct{}
	err  error
}

// sink hashes the pieces in order and writes them, overlapping the two.
type sink struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	bufs     *bufferBudget
	dst      io.WriterAt
	off      int64
	size     int64
	progress *throttle

	queue  chan *piece
	writes chan *piece
	wg     sync.WaitGroup

	hash    hash.Hash
	planned int64 // bytes announced by the producer, for early ErrTooLarge
	written int64 // bytes hashed (and handed to the writer)

	errMu sync.Mutex
	err   error
}

func newSink(ctx context.Context, cancel context.CancelCauseFunc, dst io.WriterAt, off, size int64, p Progress) *sink {
	return &sink{
		ctx: ctx, cancel: cancel,
		bufs: newBufferBudget(bufferLimit),
		dst:  dst, off: off, size: size,
		progress: &throttle{fn: p, total: size},
		queue:    make(chan *piece, 16),
		writes:   make(chan *piece, 2),
		hash:     sha256.New(),
	}
}

// fail records the first error and stops everything.
func (s *sink) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	s.cancel(err)
}

func (s *sink) start() {
	s.wg.Add(2)
	go s.hashLoop()
	go s.writeLoop()
}

// emit queues a piece in image order.
func (s *sink) emit(p *piece) error {
	select {
	case s.queue <- p:
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

// finish closes the queue after the producer returned perr and waits for the
// pieces to be written. It returns the first error of the whole pipeline.
func (s *sink) finish(perr error) error {
	if perr != nil {
		s.fail(perr)
	}
	close(s.queue)
	s.wg.Wait()
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *sink) hashLoop() {
	defer s.wg.Done()
	defer close(s.writes)
	for p := range s.queue {
		if p.done != nil {
			select {
			case <-p.done:
			case <-s.ctx.Done():
				return
			}
		}
		if p.err != nil {
			s.fail(p.err)
			return
		}
		if int64(len(p.out)) > s.size-s.written {
			s.fail(fmt.Errorf("image longer than the signed %d bytes: %w", s.size, ErrTooLarge))
			return
		}
		s.hash.Write(p.out)
		s.written += int64(len(p.out))
		select {
		case s.writes <- p:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *sink) writeLoop() {
	defer s.wg.Done()
	at := s.off
	for p := range s.writes {
		if s.ctx.Err() != nil {
			return
		}
		if _, err := s.dst.WriteAt(p.out, at); err != nil {
			s.fail(fmt.Errorf("write at offset %d: %w", at, err))
			return
		}
		at += int64(len(p.out))
		s.bufs.put(p.out)
		s.progress.report(at-s.off, false)
	}
}

// throttle limits Progress calls to about ten a second.
type throttle struct {
	fn    Progress
	total int64
	mu    sync.Mutex
	last  time.Time
}

func (t *throttle) report(done int64, final bool) {
	if t == nil || t.fn == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if !final && now.Sub(t.last) < 100*time.Millisecond {
		return
	}
	t.last = now
	t.fn(done, t.total)
}
