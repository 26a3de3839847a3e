package payload

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// limitedWriterAt records the highest byte written and refuses writes outside
// [off, off+max).
type limitedWriterAt struct {
	off, max int64
	buf      []byte
	bad      error
}

func (w *limitedWriterAt) WriteAt(p []byte, at int64) (int, error) {
	if at < w.off || at+int64(len(p)) > w.off+w.max {
		w.bad = fmt.Errorf("write of %d bytes at %d outside [%d, %d)", len(p), at, w.off, w.off+w.max)
		return 0, w.bad
	}
	copy(w.buf[at-w.off:], p)
	return len(p), nil
}

// FuzzWriteImage feeds arbitrary bytes as an xz payload: WriteImage must return (no
// panic, no hang) and never write outside [off, off+max). The seeds (xz files from
// the xz tool in testdata and from ulikunitz/xz) replay in go test.
func FuzzWriteImage(f *testing.F) {
	for _, name := range []string{"blocks.xz", "single-sha256.xz"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, int64(len(b)*8))
		f.Add(b[:len(b)/2], int64(1<<16))
	}
	f.Add(xzGo(f, imageBytes(50000, 20)), int64(50000))
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4, 0x46}, int64(100))
	f.Fuzz(func(t *testing.T, payload []byte, size int64) {
		if size < 0 || size > 4<<20 {
			return
		}
		const off = 4096
		w := &limitedWriterAt{off: off, max: size, buf: make([]byte, size)}
		want := Image{Size: size, SHA256: sum(nil)}
		err := WriteImage(context.Background(), bytes.NewReader(payload), CodecXZ, w, off, size, want, nil)
		if w.bad != nil {
			t.Fatal(w.bad)
		}
		if err == nil && size != 0 {
			t.Fatalf("arbitrary payload accepted for a %d-byte image with the empty image's hash", size)
		}
	})
}

// FuzzLZMA2 runs the block decoder on arbitrary chunk data: no panic, no write past
// the output.
func FuzzLZMA2(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "blocks.xz"))
	if len(b) > 200 {
		f.Add(b[24:200], 1<<16)
	}
	f.Add([]byte{0x01, 0x00, 0x02, 'a', 'b', 'c'}, 3)
	f.Add([]byte{0xe0, 0x00, 0x00, 0x00, 0x05, 0x5d, 0x00, 0x30, 0xef, 0xfb, 0xbf}, 1)
	f.Fuzz(func(t *testing.T, data []byte, n int) {
		if n < 0 || n > 1<<20 {
			return
		}
		out := make([]byte, n, n+64)
		var d lzma2Decoder
		d.block(data, out, 1<<16)
		if tail := out[n : n+64]; !bytes.Equal(tail, make([]byte, 64)) {
			t.Fatal("wrote past the output")
		}
	})
}
