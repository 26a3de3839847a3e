package delta_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/healthguard/gateway-ota/imagebuilder"
	"github.com/healthguard/gateway-ota/imagebuilder/delta"
)

// stopWriter takes the start of the document, then stops the encoding: it
// cancels (cancel set) or fails (a broken xz pipe).
type stopWriter struct {
	n      int
	cancel context.CancelFunc
}

var errPipe = errors.New("broken pipe")

func (w *stopWriter) Write(p []byte) (int, error) {
	w.n++
	if w.cancel == nil {
		return 0, errPipe
	}
	w.cancel()
	return len(p), nil
}

// TestEncodeStopsWorkers stops Encode while patches are still being
// computed: it must return only after the bsdiff workers ended, since they
// read the images Encode unmaps on return (a fault otherwise), and must not
// leave the dispatcher blocked.
func TestEncodeStopsWorkers(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	rnd := rand.New(rand.NewSource(11))
	oldDir, newDir := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	// Many changed files, more than the workers compute ahead of the writer.
	for i := 0; i < 40; i++ {
		b := pseudoBinary(rnd, 192<<10)
		for _, d := range []string{oldDir, newDir} {
			p := filepath.Join(d, "usr/lib", fmt.Sprintf("lib%02d.so", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			// The new version: half rewritten, so its patch is large and
			// the document reaches the writer long before the last patch.
			b = append(append([]byte{}, b[:len(b)/2]...), pseudoBinary(rnd, len(b)/2)...)
		}
	}
	oldImg, newImg := filepath.Join(dir, "old.ext4"), filepath.Join(dir, "new.ext4")
	for _, p := range [][2]string{{oldDir, oldImg}, {newDir, newImg}} {
		if err := imagebuilder.BuildExt4(context.Background(), p[0], p[1], 16<<20, imagebuilder.Ext4Options{Label: "rootfs", Epoch: epoch}); err != nil {
			t.Fatal(err)
		}
	}
	for _, cancelled := range []bool{true, false} {
		t.Run(fmt.Sprintf("cancelled=%v", cancelled), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := &stopWriter{}
			want := errPipe
			if cancelled {
				w.cancel, want = cancel, context.Canceled
			}
			before := runtime.NumGoroutine()
			st, err := delta.Encode(ctx, oldImg, newImg, w, delta.Options{Workers: 1})
			if !errors.Is(err, want) {
				t.Fatalf("Encode: %v, want %v", err, want)
			}
			if w.n == 0 || st.PatchOps == 0 {
				t.Fatalf("stopped before any patch was written (%d writes, %+v)", w.n, st)
			}
			// Every worker and the dispatcher have ended when Encode returns.
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d goroutines after Encode returned, %d before", n, before)
			}
		})
	}
}
