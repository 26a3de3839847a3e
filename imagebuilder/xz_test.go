package imagebuilder_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/healthguard/gateway-ota/imagebuilder"
)

// TestCompressXZIgnoresHostOptions: the payload depends only on the input,
// not on XZ_DEFAULTS or XZ_OPT of the build host.
func TestCompressXZIgnoresHostOptions(t *testing.T) {
	needTools(t, "xz")
	dir := t.TempDir()
	src := filepath.Join(dir, "in")
	if err := os.WriteFile(src, bytes.Repeat([]byte("gateway "), 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	compress := func(name string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		if err := imagebuilder.CompressXZ(context.Background(), src, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := compress("plain.xz")
	t.Setenv("XZ_DEFAULTS", "--check=sha256")
	t.Setenv("XZ_OPT", "--format=lzma")
	if got := compress("host.xz"); !bytes.Equal(got, want) {
		t.Errorf("with XZ_DEFAULTS and XZ_OPT set: %d bytes starting %q, want the %d bytes made without", len(got), got[:min(6, len(got))], len(want))
	}
}
