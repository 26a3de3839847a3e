package payload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz"
)

// imageBytes is test content that compresses like a file system: text, runs of
// zeros and random data.
func imageBytes(n int, seed uint64) []byte {
	b := make([]byte, 0, n)
	rnd := randomBytes(n/4+1, seed)
	text := []byte("the quick brown fox jumps over the lazy gateway; ")
	for i := 0; len(b) < n; i++ {
		switch i % 3 {
		case 0:
			b = append(b, bytes.Repeat(text, 1+i%97)...)
		case 1:
			b = append(b, make([]byte, 4096*(i%5))...)
		case 2:
			k := (i * 7919) % (len(rnd) - 8192)
			b = append(b, rnd[k:k+1+i%8191]...)
		}
	}
	return b[:n]
}

// xzTool compresses with the xz command line tool (Debian package xz-utils).
func xzTool(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed (Debian package xz-utils)")
	}
	cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %v: %v", args, err)
	}
	return out
}

func xzGo(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// slotFile is a real file standing for a card: guard bytes before and after the slot.
func slotFile(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "card.img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

const testOff = 1 << 20

func TestWriteImage(t *testing.T) {
	img := imageBytes(20<<20+123, 10)
	small := imageBytes(100<<10, 11)
	for _, tc := range []struct {
		name    string
		img     []byte
		payload func(t testing.TB) []byte
		codec   string
	}{
		{"xz tool single block", img, func(t testing.TB) []byte { return xzTool(t, img, "-6", "-T1") }, CodecXZ},
		{"xz tool 4MiB blocks", img, func(t testing.TB) []byte { return xzTool(t, img, "-6", "-T2", "--block-size=4MiB") }, CodecXZ},
		{"xz tool 1MiB blocks sha256 check", img, func(t testing.TB) []byte {
			return xzTool(t, img, "-3", "-T2", "--block-size=1MiB", "--check=sha256")
		}, CodecXZ},
		{"xz tool blocks without sizes crc32", img, func(t testing.TB) []byte {
			return xzTool(t, img, "-1", "-T1", "--block-size=3MiB", "--check=crc32")
		}, CodecXZ},
		{"xz tool 12MiB blocks", img, func(t testing.TB) []byte { return xzTool(t, img, "-6", "-T2", "--block-size=12MiB") }, CodecXZ},
		{"xz tool no check", small, func(t testing.TB) []byte { return xzTool(t, small, "--check=none") }, CodecXZ},
		{"ulikunitz xz", img, func(t testing.TB) []byte { return xzGo(t, img) }, CodecXZ},
		{"concatenated streams with padding", small, func(t testing.TB) []byte {
			a, b := xzTool(t, small[:5000]), xzTool(t, small[5000:])
			return append(append(a, 0, 0, 0, 0), b...)
		}, CodecXZ},
		{"none", img, func(t testing.TB) []byte { return img }, CodecNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := tc.payload(t)
			part := int64(len(tc.img)) + 4096
			f := slotFile(t, testOff+part+testOff)
			guard := bytes.Repeat([]byte{0xa5}, testOff)
			f.WriteAt(guard, 0)
			f.WriteAt(guard, testOff+part)
			var last, total int64
			want := Image{Size: int64(len(tc.img)), SHA256: sum(tc.img)}
			err := WriteImage(context.Background(), bytes.NewReader(payload), tc.codec, f, testOff, part, want,
				func(done, tot int64) { last, total = done, tot })
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(tc.img))
			f.ReadAt(got, testOff)
			if !bytes.Equal(got, tc.img) {
				t.Fatal("slot content differs from the image")
			}
			for _, at := range []int64{0, testOff + part} {
				g := make([]byte, testOff)
				f.ReadAt(g, at)
				if !bytes.Equal(g, guard) {
					t.Fatalf("bytes outside the slot changed (at %d)", at)
				}
			}
			if last != want.Size || total != want.Size {
				t.Errorf("final progress %d/%d, want %d/%d", last, total, want.Size, want.Size)
			}
			if err := VerifyRegion(context.Background(), f, testOff, want.Size, want.SHA256, nil); err != nil {
				t.Errorf("read back: %v", err)
			}
		})
	}
}

func TestWriteImageRefusals(t *testing.T) {
	img := imageBytes(6<<20, 12)
	multi := xzTool(t, img, "-1", "-T2", "--block-size=1MiB")
	single := xzTool(t, img, "-1", "-T1")
	for _, tc := range []struct {
		name    string
		payload []byte
		codec   string
		want    Image
		max     int64
		err     error
		written bool // may anything have been written
	}{
		{"image larger than partition", multi, CodecXZ, Image{int64(len(img)), sum(img)}, int64(len(img)) - 1, ErrTooLarge, false},
		{"output longer than signed, blocks", multi, CodecXZ, Image{int64(len(img)) - 100, sum(img[:len(img)-100])}, 64 << 20, ErrTooLarge, true},
		{"output longer than signed, single block", single, CodecXZ, Image{int64(len(img)) - 100, sum(img[:len(img)-100])}, 64 << 20, ErrTooLarge, true},
		{"output longer than signed, none", img, CodecNone, Image{int64(len(img)) - 100, sum(img[:len(img)-100])}, 64 << 20, ErrTooLarge, true},
		{"output shorter than signed", multi, CodecXZ, Image{int64(len(img)) + 100, sum(img)}, 64 << 20, ErrShort, true},
		{"output shorter than signed, none", img, CodecNone, Image{int64(len(img)) + 1, sum(img)}, 64 << 20, ErrShort, true},
		{"wrong hash", multi, CodecXZ, Image{int64(len(img)), sum(img[1:])}, 64 << 20, ErrDigestMismatch, true},
		{"wrong hash, none", img, CodecNone, Image{int64(len(img)), sum(img[1:])}, 64 << 20, ErrDigestMismatch, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := slotFile(t, testOff+64<<20)
			err := WriteImage(context.Background(), bytes.NewReader(tc.payload), tc.codec, f, testOff, tc.max, tc.want, nil)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			st, _ := f.Stat()
			data := make([]byte, st.Size())
			f.ReadAt(data, 0)
			if !tc.written && !bytes.Equal(data, make([]byte, len(data))) {
				t.Error("bytes were written although the image was refused up front")
			}
			if end := testOff + tc.want.Size; tc.written && !bytes.Equal(data[end:], make([]byte, len(data)-int(end))) {
				t.Error("bytes written past off+want.Size")
			}
		})
	}
}

func TestWriteImageCorruptPayload(t *testing.T) {
	img := imageBytes(3<<20, 13)
	payload := xzTool(t, img, "-1", "-T2", "--block-size=512KiB")
	want := Image{int64(len(img)), sum(img)}
	for _, at := range []int{20, len(payload) / 3, len(payload) / 2, len(payload) - 30, len(payload) - 5} {
		bad := bytes.Clone(payload)
		bad[at] ^= 0x40
		f := slotFile(t, 8<<20)
		if err := WriteImage(context.Background(), bytes.NewReader(bad), CodecXZ, f, 0, 8<<20, want, nil); err == nil {
			t.Errorf("byte %d of %d flipped: WriteImage succeeded", at, len(payload))
		}
	}
	f := slotFile(t, 8<<20)
	if err := WriteImage(context.Background(), bytes.NewReader(payload[:len(payload)-1]), CodecXZ, f, 0, 8<<20, want, nil); err == nil {
		t.Error("truncated payload: WriteImage succeeded")
	}
	if err := WriteImage(context.Background(), bytes.NewReader(append(bytes.Clone(payload), 1)), CodecXZ, f, 0, 8<<20, want, nil); err == nil {
		t.Error("trailing garbage: WriteImage succeeded")
	}
}

func TestWriteImageChecksPayloadWhileReading(t *testing.T) {
	img := imageBytes(2<<20, 14)
	payload := xzTool(t, img, "-1")
	want := Image{int64(len(img)), sum(img)}
	for _, tc := range []struct {
		name       string
		size       int64
		sha256     string
		err        error
		wantOutput bool
	}{
		{"match", int64(len(payload)), sum(payload), nil, true},
		{"hash differs", int64(len(payload)), sum(payload[1:]), ErrDigestMismatch, false},
		{"longer than signed", int64(len(payload)) - 1, sum(payload), ErrTooLarge, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := CheckedReader(bytes.NewReader(payload), tc.size, tc.sha256)
			if err != nil {
				t.Fatal(err)
			}
			f := slotFile(t, 4<<20)
			err = WriteImage(context.Background(), r, CodecXZ, f, 0, 4<<20, want, nil)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
}

func TestWriteImageCancel(t *testing.T) {
	img := imageBytes(8<<20, 15)
	payload := xzTool(t, img, "-1", "-T2", "--block-size=1MiB")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := slotFile(t, 8<<20)
	err := WriteImage(ctx, bytes.NewReader(payload), CodecXZ, f, 0, 8<<20, Image{int64(len(img)), sum(img)}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestVerifyRegion(t *testing.T) {
	img := imageBytes(9<<20+5, 16)
	f := slotFile(t, int64(len(img))+2*testOff)
	f.WriteAt(img, testOff)
	want := sum(img)
	if err := VerifyRegion(context.Background(), f, testOff, int64(len(img)), want, nil); err != nil {
		t.Fatalf("intact region: %v", err)
	}
	f.WriteAt([]byte{img[7<<20] ^ 1}, testOff+7<<20)
	if err := VerifyRegion(context.Background(), f, testOff, int64(len(img)), want, nil); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("flipped byte: got %v, want ErrDigestMismatch", err)
	}
	st, _ := f.Stat()
	if err := VerifyRegion(context.Background(), f, st.Size()-100, 200, want, nil); !errors.Is(err, ErrShort) {
		t.Fatalf("region past the end: got %v, want ErrShort", err)
	}
}

func TestCheckedReader(t *testing.T) {
	data := randomBytes(100000, 17)
	for _, tc := range []struct {
		name string
		size int64
		sha  string
		err  error
	}{
		{"ok", int64(len(data)), sum(data), nil},
		{"short", int64(len(data)) + 1, sum(data), ErrShort},
		{"long", int64(len(data)) - 1, sum(data), ErrTooLarge},
		{"hash", int64(len(data)), sum(data[:10]), ErrDigestMismatch},
	} {
		r, err := CheckedReader(bytes.NewReader(data), tc.size, tc.sha)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, r)
		if !errors.Is(err, tc.err) && !(tc.err == nil && err == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
		}
	}
}
