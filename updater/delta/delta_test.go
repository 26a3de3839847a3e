package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/iotest"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzApply seeds")

// memImage is a WriterAt over a byte slice of fixed size.
type memImage struct {
	b      []byte
	writes int
}

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m.b)) {
		return 0, fmt.Errorf("write [%d, +%d) outside %d bytes", off, len(p), len(m.b))
	}
	m.writes++
	return copy(m.b[off:], p), nil
}

// fixture is a source image, a target image and a document turning one into
// the other with every op kind.
type fixture struct {
	src, dst []byte
	doc      []byte
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	rnd := rand.New(rand.NewSource(1))
	src := make([]byte, 64<<10)
	rnd.Read(src)
	var dst []byte
	dst = append(dst, make([]byte, 4096)...)       // ZERO
	dst = append(dst, src[8192:16384]...)          // COPY
	lit := []byte("literal bytes of a new file\n") // DATA
	dst = append(dst, lit...)                      //
	old := append(append([]byte{}, src[20000:21000]...), src[40000:41000]...)
	patched := append([]byte{}, old[100:900]...) // PATCH: add with changes, extra, seek
	patched[5] ^= 0x55
	patched = append(patched, []byte("inserted")...)
	patched = append(patched, old[1500:2000]...)
	dst = append(dst, patched...)

	rs := []Range{{Off: 8192, Len: 8192}, {Off: 20000, Len: 1000}, {Off: 40000, Len: 1000}}
	for i := range rs {
		rs[i].SHA256 = sha256.Sum256(src[rs[i].Off:rs[i].End()])
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{SrcSize: int64(len(src)), SrcSHA256: sha256.Sum256(src), DstSize: int64(len(dst)), DstSHA256: sha256.Sum256(dst), Ranges: rs})
	if err != nil {
		t.Fatal(err)
	}
	w.Zero(4096)
	w.Copy(8192, 8192)
	w.Data(lit)
	w.Patch([]Extent{{20000, 1000}, {40000, 1000}}, int64(len(patched)), 100)
	diff := make([]byte, 800)
	diff[5] = (old[105] ^ 0x55) - old[105]
	w.Control(diff, []byte("inserted"), 1500-900)
	w.Control(old[1500:2000], nil, 0) // as diff against itself? no: diff bytes are added
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return fixture{src: src, dst: dst, doc: fixDiff(t, buf.Bytes(), old)}
}

// fixDiff rewrites the last control's add bytes, written above as old bytes,
// into zero differences: the writer knows nothing of old, the test does.
func fixDiff(t testing.TB, doc, old []byte) []byte {
	t.Helper()
	tail := doc[len(doc)-1-500 : len(doc)-1]
	if !bytes.Equal(tail, old[1500:2000]) {
		t.Fatal("fixture layout changed")
	}
	for i := range tail {
		tail[i] = 0
	}
	return doc
}

func apply(t testing.TB, f fixture, doc []byte, opts Options) (*memImage, error) {
	t.Helper()
	out := &memImage{b: make([]byte, len(f.dst)+100)}
	_, err := Apply(context.Background(), bytes.NewReader(doc), bytes.NewReader(f.src), int64(len(f.src)), out, int64(len(out.b)), opts)
	return out, err
}

func TestApply(t *testing.T) {
	f := newFixture(t)
	out, err := apply(t, f, f.doc, Options{Expect: Expect{SrcSHA256: hexSum(f.src), DstSize: int64(len(f.dst)), DstSHA256: hexSum(f.dst)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := out.b[:len(f.dst)]; !bytes.Equal(got, f.dst) {
		t.Fatalf("target differs: got %d bytes %x..., want %x...", len(got), got[:32], f.dst[:32])
	}
	// Applying again over the result (a restarted apply) gives the same.
	again := &memImage{b: append([]byte{}, out.b...)}
	if _, err := Apply(context.Background(), bytes.NewReader(f.doc), bytes.NewReader(f.src), int64(len(f.src)), again, int64(len(again.b)), Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.b, out.b) {
		t.Fatal("a second apply wrote something else")
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestSourceMismatch: one flipped byte in a used source range is found before
// anything is written (P3).
func TestSourceMismatch(t *testing.T) {
	f := newFixture(t)
	for _, off := range []int{8192, 16383, 20500, 40999} {
		f := f
		f.src = append([]byte{}, f.src...)
		f.src[off] ^= 1
		out, err := apply(t, f, f.doc, Options{})
		if !errors.Is(err, ErrSourceMismatch) {
			t.Errorf("flip at %d: got %v, want ErrSourceMismatch", off, err)
		}
		if out.writes != 0 {
			t.Errorf("flip at %d: %d writes before the mismatch was found", off, out.writes)
		}
	}
	// A byte outside the used ranges does not matter.
	f.src = append([]byte{}, f.src...)
	f.src[0] ^= 1
	if _, err := apply(t, f, f.doc, Options{}); err != nil {
		t.Errorf("flip outside the ranges: %v", err)
	}
	// The wrong base by hash, before the source is read.
	_, err := apply(t, f, f.doc, Options{Expect: Expect{SrcSHA256: hexSum([]byte("other"))}})
	if !errors.Is(err, ErrSourceMismatch) {
		t.Errorf("other base: got %v, want ErrSourceMismatch", err)
	}
}

func TestTruncated(t *testing.T) {
	f := newFixture(t)
	for n := 0; n < len(f.doc); n++ {
		if _, err := apply(t, f, f.doc[:n], Options{}); !errors.Is(err, ErrFormat) {
			t.Fatalf("document cut at %d of %d bytes: got %v, want ErrFormat", n, len(f.doc), err)
		}
	}
	if _, err := apply(t, f, append(append([]byte{}, f.doc...), 0), Options{}); !errors.Is(err, ErrFormat) {
		t.Fatalf("trailing byte: got %v, want ErrFormat", err)
	}
}

// Offsets into the fixture document, for the table below.
const (
	offVersion   = 8
	offCodec     = 12
	offSrcSize   = 16
	offDstSize   = 56
	offNRanges   = 96
	offRange0    = 104
	offFirstOp   = offRange0 + 3*48
	offCopyOff   = offFirstOp + 9 + 1
	offCopyLen   = offCopyOff + 8
	offDataOp    = offCopyLen + 8
	offPatchOp   = offDataOp + 1 + 8 + 28
	offPatchN    = offPatchOp + 1 + 4 + 2*16
	offPatchPos  = offPatchN + 8
	offControl   = offPatchPos + 8
	offSeek      = offControl + 16
	offFirstDiff = offControl + 24 + 8 // after the first segment's skip and lit
)

func TestBadDocuments(t *testing.T) {
	f := newFixture(t)
	put := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	tests := []struct {
		name string
		edit func([]byte)
		want error
	}{
		{"magic", func(b []byte) { b[0] = 'X' }, ErrFormat},
		{"version", func(b []byte) { b[offVersion] = 2 }, ErrFormat},
		{"data codec", func(b []byte) { b[offCodec] = 7 }, ErrFormat},
		{"huge source", put(offSrcSize, 1<<63), ErrFormat},
		{"source beyond its region", put(offSrcSize, 1<<20), ErrFormat},
		{"target beyond its region", put(offDstSize, 1<<30), ErrFormat},
		{"negative target", put(offDstSize, ^uint64(0)), ErrFormat},
		{"range count", put(offNRanges, MaxRanges+1), ErrFormat},
		{"range beyond source", put(offRange0, 64<<10-100), ErrFormat},
		{"range overflow", put(offRange0+8, ^uint64(0)-8000), ErrFormat},
		{"empty range", put(offRange0+8, 0), ErrFormat},
		{"zero op", func(b []byte) { b[offFirstOp] = OpZero; binary.LittleEndian.PutUint64(b[offFirstOp+1:], 0) }, ErrFormat},
		{"op past target", put(offFirstOp+1, 1<<40), ErrFormat},
		{"unknown op", func(b []byte) { b[offFirstOp] = 9 }, ErrFormat},
		{"copy outside ranges", put(offCopyOff, 0), ErrFormat},
		{"copy negative", put(offCopyOff, 1<<63), ErrFormat},
		{"copy overflow", put(offCopyOff, ^uint64(0)), ErrFormat},
		{"copy longer than target", put(offCopyLen, 1<<20), ErrFormat},
		{"patch length", put(offPatchN, ^uint64(0)), ErrFormat},
		{"patch start past old", put(offPatchPos, 2001), ErrFormat},
		{"add past old", put(offPatchPos, 1500), ErrFormat},
		{"seek overflow", put(offSeek, 1<<63-1), ErrFormat},
		{"seek negative", put(offSeek, ^uint64(5000)), ErrFormat},
		{"add overflow", put(offControl, ^uint64(0)), ErrFormat},
		{"empty control", func(b []byte) {
			binary.LittleEndian.PutUint64(b[offControl:], 0)
			binary.LittleEndian.PutUint64(b[offControl+8:], 0)
		}, ErrFormat},
		{"wrong diff", func(b []byte) { b[offFirstDiff] ^= 1 }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := append([]byte{}, f.doc...)
			tt.edit(doc)
			out, err := apply(t, f, doc, Options{})
			if tt.want == nil {
				// Still a valid document: it makes another image, which
				// the caller's final hash check refuses.
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if bytes.Equal(out.b[:len(f.dst)], f.dst) {
					t.Fatal("edited document made the same image")
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzApply feeds arbitrary documents to the applier with a fixed source: it
// must never panic, read outside the source or write outside the target.
// The seeds in testdata/fuzz/FuzzApply are a valid document and broken ones.
func FuzzApply(f *testing.F) {
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		out := &memImage{b: make([]byte, 1<<20)}
		h, err := Apply(context.Background(), bytes.NewReader(doc), bytes.NewReader(fx.src), int64(len(fx.src)), out, int64(len(out.b)), Options{})
		if err == nil && h.DstSize > int64(len(out.b)) {
			t.Fatalf("success with a target of %d bytes", h.DstSize)
		}
		if err != nil && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrSourceMismatch) {
			t.Fatalf("error wraps neither ErrFormat nor ErrSourceMismatch: %v", err)
		}
	})
}

// TestWriteSeeds rewrites the fuzz seeds with -update-seeds.
func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to rewrite testdata/fuzz/FuzzApply")
	}
	f := newFixture(t)
	put := func(off int, v uint64) []byte {
		b := append([]byte{}, f.doc...)
		binary.LittleEndian.PutUint64(b[off:], v)
		return b
	}
	otherBase := append([]byte{}, f.doc...)
	otherBase[offRange0+16] ^= 0xff // a range hash of another base
	seeds := map[string][]byte{
		"valid":           f.doc,
		"truncated":       f.doc[:len(f.doc)/2],
		"truncated-patch": f.doc[:offFirstDiff+10],
		"negative-offset": put(offCopyOff, 1<<63),
		"overflow-offset": put(offCopyOff, ^uint64(0)),
		"overflow-range":  put(offRange0+8, ^uint64(0)-8000),
		"seek-overflow":   put(offSeek, 1<<63-1),
		"wrong-base":      otherBase,
		"huge-target":     put(offDstSize, 1<<40),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzApply")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenPayload(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skipf("xz not found (Debian package xz-utils): %v", err)
	}
	f := newFixture(t)
	xz := func(args ...string) []byte {
		cmd := exec.Command("xz", append(args, "-c")...)
		cmd.Stdin = bytes.NewReader(f.doc)
		b, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r, err := OpenPayload(bytes.NewReader(xz("-T1", "--lzma2=preset=9e,dict=16MiB")), CodecXZ)
	if err != nil {
		t.Fatal(err)
	}
	out := &memImage{b: make([]byte, len(f.dst))}
	if _, err := Apply(context.Background(), r, bytes.NewReader(f.src), int64(len(f.src)), out, int64(len(out.b)), Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.b, f.dst) {
		t.Fatal("target differs")
	}
	if _, err := OpenPayload(bytes.NewReader(xz("-T1", "--lzma2=dict=64MiB")), CodecXZ); !errors.Is(err, ErrFormat) {
		t.Errorf("64 MiB dictionary: got %v, want ErrFormat", err)
	}
	if _, err := OpenPayload(bytes.NewReader(f.doc), CodecXZ); !errors.Is(err, ErrFormat) {
		t.Errorf("not xz: got %v, want ErrFormat", err)
	}
	if _, err := OpenPayload(bytes.NewReader(nil), "zstd"); !errors.Is(err, ErrFormat) {
		t.Errorf("codec zstd: got %v, want ErrFormat", err)
	}
	// A corrupted stream fails (the xz check) rather than applying.
	bad := xz("-T1", "--lzma2=preset=6")
	bad[len(bad)/2] ^= 0xff
	r, err = OpenPayload(bytes.NewReader(bad), CodecXZ)
	if err == nil {
		_, err = Apply(context.Background(), r, bytes.NewReader(f.src), int64(len(f.src)), &memImage{b: make([]byte, len(f.dst))}, int64(len(f.dst)), Options{})
	}
	if err == nil {
		t.Error("corrupted xz stream applied")
	} else if !errors.Is(err, ErrFormat) {
		t.Errorf("corrupted xz stream: got %v, want ErrFormat (the updater then installs the full payload)", err)
	}
	// A failed read of the payload stays visible through the decoder.
	errRead := errors.New("read failed")
	good := xz("-T1", "--lzma2=preset=6")
	r, err = OpenPayload(io.MultiReader(bytes.NewReader(good[:len(good)/2]), iotest.ErrReader(errRead)), CodecXZ)
	if err == nil {
		_, err = Apply(context.Background(), r, bytes.NewReader(f.src), int64(len(f.src)), &memImage{b: make([]byte, len(f.dst))}, int64(len(f.dst)), Options{})
	}
	if !errors.Is(err, errRead) {
		t.Errorf("payload read error: got %v, want it wrapped", err)
	}
}

func TestCovered(t *testing.T) {
	rs := []Range{{Off: 10, Len: 10}, {Off: 20, Len: 5}, {Off: 30, Len: 10}}
	tests := []struct {
		off, n int64
		want   bool
	}{
		{10, 10, true}, {10, 15, true}, {15, 8, true}, {10, 16, false}, {9, 2, false},
		{25, 1, false}, {30, 10, true}, {39, 2, false}, {-1, 1, false}, {1 << 62, 1 << 62, false},
		{35, 1<<63 - 1, false},
	}
	for _, tt := range tests {
		if got := covered(rs, tt.off, tt.n); got != tt.want {
			t.Errorf("covered(%d, %d) = %v, want %v", tt.off, tt.n, got, tt.want)
		}
	}
}
