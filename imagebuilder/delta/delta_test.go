package delta_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/imagebuilder/delta"
	format "github.com/healthguard/gateway-ota/updater/delta"
)

var epoch = time.Unix(1700000000, 0)

func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "debugfs", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages e2fsprogs, xz-utils): %v", tool, err)
		}
	}
}

// pseudoBinary is n bytes that compress like code: random words drawn from
// a small vocabulary.
func pseudoBinary(rnd *rand.Rand, n int) []byte {
	words := make([][]byte, 64)
	for i := range words {
		words[i] = make([]byte, 3+rnd.Intn(12))
		rnd.Read(words[i])
	}
	var b []byte
	for len(b) < n {
		b = append(b, words[rnd.Intn(len(words))]...)
	}
	return b[:n]
}

// trees writes a release's tree and the next one's: files kept, changed a
// little (a patch), removed and added, and directories that shift.
func trees(t *testing.T, dir string) (oldDir, newDir string) {
	t.Helper()
	rnd := rand.New(rand.NewSource(7))
	oldDir, newDir = filepath.Join(dir, "old"), filepath.Join(dir, "new")
	lib := pseudoBinary(rnd, 600<<10)
	lib2 := append([]byte{}, lib...)
	for i := 0; i < 40; i++ { // a point release: a few changed spots
		off := rnd.Intn(len(lib2) - 64)
		copy(lib2[off:], pseudoBinary(rnd, 48))
	}
	lib2 = append(lib2[:300<<10], append([]byte("inserted function"), lib2[300<<10:]...)...)
	kept := pseudoBinary(rnd, 900<<10)
	gone := pseudoBinary(rnd, 100<<10)
	added := pseudoBinary(rnd, 80<<10)
	write := func(root string, files map[string][]byte) {
		for name, b := range files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(oldDir, map[string][]byte{
		"usr/lib/libfoo.so.1.2.3": lib, "usr/bin/kept": kept, "usr/share/gone": gone,
		"etc/version": []byte("1\n"),
	})
	write(newDir, map[string][]byte{
		"usr/lib/libfoo.so.1.2.4": lib2, "usr/bin/kept": kept, "usr/bin/aaa-new": added,
		"etc/version": []byte("2\n"),
	})
	return oldDir, newDir
}

func buildPair(t *testing.T) (oldImg, newImg string) {
	t.Helper()
	needTools(t)
	dir := t.TempDir()
	oldDir, newDir := trees(t, dir)
	oldImg, newImg = filepath.Join(dir, "old.ext4"), filepath.Join(dir, "new.ext4")
	ctx := context.Background()
	for _, p := range [][2]string{{oldDir, oldImg}, {newDir, newImg}} {
		if err := imagebuilder.BuildExt4(ctx, p[0], p[1], 16<<20, imagebuilder.Ext4Options{Label: "rootfs", Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	return oldImg, newImg
}

// applyFile applies a payload file as the updater does, into a fresh file.
func applyFile(t *testing.T, oldImg, payload string) ([]byte, *format.Header, error) {
	t.Helper()
	src, err := os.ReadFile(oldImg)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := os.Open(payload)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	doc, err := format.OpenPayload(pf, format.CodecXZ)
	if err != nil {
		return nil, nil, err
	}
	defer doc.Close()
	out := &memImage{b: make([]byte, 64<<20)}
	h, err := format.Apply(context.Background(), doc, bytes.NewReader(src), int64(len(src)), out, int64(len(out.b)), format.Options{})
	if err != nil {
		return nil, h, err
	}
	return out.b[:h.DstSize], h, nil
}

type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }

func TestEncodeApply(t *testing.T) {
	oldImg, newImg := buildPair(t)
	out := filepath.Join(t.TempDir(), "rootfs.delta.xz")
	st, err := delta.EncodeFile(context.Background(), oldImg, newImg, out, delta.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := applyFile(t, oldImg, out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(newImg)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatal("applied delta differs from the new image")
	}
	// The kept file is copied, the library patched against its old
	// version under another name.
	if st.Copy < 900<<10 || st.PatchOps == 0 || st.Patch < 600<<10 {
		t.Errorf("stats %+v: want the kept file copied and the library patched", st)
	}
	// Far smaller than the changed and added bytes, let alone the image.
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 120<<10 {
		t.Errorf("delta of %d bytes, want under 120 KiB (80 KiB of it a new file)", fi.Size())
	}

	// Deterministic: the same images make the same payload.
	again := filepath.Join(t.TempDir(), "again.delta.xz")
	if _, err := delta.EncodeFile(context.Background(), oldImg, newImg, again, delta.Options{}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two encodings of the same pair differ")
	}

	// One flipped byte in the source slot: refused before any write.
	src, _ := os.ReadFile(oldImg)
	flipped := filepath.Join(t.TempDir(), "flipped.ext4")
	for i := range src {
		if src[i] != 0 && i > 64<<10 { // some data byte the delta reads
			src[i] ^= 0xff
			break
		}
	}
	if err := os.WriteFile(flipped, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := applyFile(t, flipped, out); !errors.Is(err, format.ErrSourceMismatch) {
		t.Errorf("flipped source: got %v, want ErrSourceMismatch", err)
	}

	// A truncated payload fails.
	cut := filepath.Join(t.TempDir(), "cut.delta.xz")
	if err := os.WriteFile(cut, a[:len(a)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := applyFile(t, oldImg, cut); err == nil {
		t.Error("truncated payload applied")
	}
}

// TestEncodeNotExt4: images without a file system still make a correct
// delta (blocks only).
func TestEncodeNotExt4(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	rnd := rand.New(rand.NewSource(3))
	old := pseudoBinary(rnd, 1<<20)
	nw := append(append([]byte{}, old[4096*10:]...), old[:4096*10]...) // blocks moved
	nw = append(nw, make([]byte, 3000)...)                             // a tail that is not a block
	nw[5000] ^= 1
	oldImg, newImg, out := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "d.xz")
	os.WriteFile(oldImg, old, 0o644)
	os.WriteFile(newImg, nw, 0o644)
	st, err := delta.EncodeFile(context.Background(), oldImg, newImg, out, delta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := applyFile(t, oldImg, out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, nw) {
		t.Fatal("applied delta differs")
	}
	if st.Copy < int64(len(old))-8192 {
		t.Errorf("copied %d bytes, want nearly all %d", st.Copy, len(old))
	}
}
