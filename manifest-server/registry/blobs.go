package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
)

// diskBlobs stores blobs under dir/sha256/<hex>, written through dir/tmp.
type diskBlobs struct {
	dir string
}

var (
	_ ggcr.BlobHandler       = (*diskBlobs)(nil)
	_ ggcr.BlobStatHandler   = (*diskBlobs)(nil)
	_ ggcr.BlobPutHandler    = (*diskBlobs)(nil)
	_ ggcr.BlobDeleteHandler = (*diskBlobs)(nil)
)

func (b *diskBlobs) path(h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return "", fmt.Errorf("%w: only sha256 blobs are stored", ggcr.ErrNotFound)
	}
	return filepath.Join(b.dir, "sha256", h.Hex), nil
}

// Stat re-hashes the blob: one whose bytes do not match its name is unknown.
func (b *diskBlobs) Stat(_ context.Context, _ string, h v1.Hash) (int64, error) {
	p, err := b.path(h)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, ggcr.ErrNotFound
	} else if err != nil {
		return 0, err
	}
	defer f.Close()
	got, size, err := v1.SHA256(f)
	if err != nil {
		return 0, err
	}
	if got != h {
		return 0, fmt.Errorf("%w: blob %s on disk hashes to %s", ggcr.ErrNotFound, h, got)
	}
	return size, nil
}

func (b *diskBlobs) Get(_ context.Context, _ string, h v1.Hash) (io.ReadCloser, error) {
	p, err := b.path(h)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ggcr.ErrNotFound
	}
	return f, err
}

// Put hashes while writing a temporary file, syncs it and renames it into place only
// when the digest matches.
func (b *diskBlobs) Put(_ context.Context, _ string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	p, err := b.path(h)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(b.dir, "tmp"), "upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, sum), rc); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.Hex {
		return fmt.Errorf("blob upload hashes to sha256:%s, not %s", got, h)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(p))
}

func (b *diskBlobs) Delete(_ context.Context, _ string, h v1.Hash) error {
	p, err := b.path(h)
	if err != nil {
		return err
	}
	err = os.Remove(p)
	if errors.Is(err, os.ErrNotExist) {
		return ggcr.ErrNotFound
	}
	return err
}
