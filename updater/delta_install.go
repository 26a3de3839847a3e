package updater

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater/delta"
	"github.com/healthguard/gateway-ota/updater/payload"
	"github.com/healthguard/gateway-ota/updater/release"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// hasRootDelta reports whether m has a root delta whose base is the image
// with hash runningRootSHA: the caller then need not download the full root
// payload unless applyRootDelta declines.
func hasRootDelta(m *release.Manifest, runningRootSHA string) bool {
	if runningRootSHA == "" {
		return false
	}
	_, ok := m.DeltaPayload(release.ForRootfs, runningRootSHA)
	return ok
}

// applyRootDelta tries the delta payload of m's rootfs whose base is the image in the
// running slot; it returns ok=false (and no error) when there is none or the source
// does not verify, so the caller falls back to the full payload.
//
// src is the running slot's root partition, read only; dst the inactive
// slot's, written only. The download resumes (payload.Downloader); an apply
// that was interrupted is restarted from the beginning, which is correct
// because it never reads what it writes. Every source range the delta uses
// is verified before the first write (threats P3). A delta that turns out
// malformed also returns ok=false: the full payload is the fallback. The
// caller still reads dst back against m.Rootfs (payload.VerifyRegion)
// before it arms the trial.
func (u *Updater) applyRootDelta(ctx context.Context, tc *trust.Client, m *release.Manifest, d *sdcard.Disk, src, dst sdcard.Partition, runningRootSHA string) (ok bool, err error) {
	p, ok := m.DeltaPayload(release.ForRootfs, runningRootSHA)
	if runningRootSHA == "" || !ok {
		return false, nil
	}
	file, err := u.fetchPayload(ctx, tc, &p)
	if err != nil {
		return false, err
	}
	defer os.Remove(file)
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	// The file that was verified is the file that is applied, hashed again
	// as it is read (P5). The decoder may report a failed read as its own
	// error: the reader's is kept.
	checked, err := payload.CheckedReader(f, p.Size, p.SHA256)
	if err != nil {
		return false, err
	}
	src2 := &firstError{r: checked}
	doc, err := delta.OpenPayload(src2, p.Codec)
	if err == nil {
		defer doc.Close()
		_, err = delta.Apply(ctx, doc, io.NewSectionReader(d.File(), src.Start, src.Size), src.Size,
			io.NewOffsetWriter(d.Writer, dst.Start), dst.Size, delta.Options{
				Expect:   delta.Expect{SrcSHA256: runningRootSHA, DstSize: m.Rootfs.Size, DstSHA256: m.Rootfs.SHA256},
				Progress: u.progress("apply delta"),
			})
	}
	if err != nil && src2.err != nil {
		err = src2.err
	}
	switch {
	case errors.Is(err, delta.ErrSourceMismatch), errors.Is(err, delta.ErrFormat), errors.Is(err, payload.ErrDigestMismatch):
		u.cfg.Logf("root delta from %s: %v: installing the full payload", p.From, err)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("root delta from %s into partition %d: %w", p.From, dst.Number, err)
	}
	return true, d.Sync()
}

// firstError reads r and keeps the first error other than io.EOF it
// returned.
type firstError struct {
	r   io.Reader
	err error
}

func (f *firstError) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF && f.err == nil {
		f.err = err
	}
	return n, err
}

// installRootDelta applies the root delta from the running slot's image into
// dst and reads dst back against the signed image. ok=false (no error): there
// is no usable delta, install the full root payload.
func (u *Updater) installRootDelta(ctx context.Context, tc *trust.Client, m *release.Manifest, d *sdcard.Disk, running sdcard.Slot, dst sdcard.Partition, runningRootSHA string) (bool, error) {
	src, err := d.Partition(running.RootPartition())
	if err != nil {
		return false, err
	}
	ok, err := u.applyRootDelta(ctx, tc, m, d, src, dst, runningRootSHA)
	if err != nil || !ok {
		return false, err
	}
	if err := payload.VerifyRegion(ctx, d.File(), dst.Start, m.Rootfs.Size, m.Rootfs.SHA256, u.progress("verify rootfs")); err != nil {
		u.cfg.Logf("root delta: read back partition %d: %v: installing the full payload", dst.Number, err)
		return false, nil
	}
	u.cfg.Logf("root image %s written by delta", m.Version)
	return true, nil
}

// fetchPayload downloads payload p into the downloads directory (resuming)
// and returns the verified file.
func (u *Updater) fetchPayload(ctx context.Context, tc *trust.Client, p *release.Payload) (string, error) {
	dlDir := u.dataPath("downloads")
	if err := os.MkdirAll(dlDir, 0o755); err != nil {
		return "", err
	}
	if err := checkFree(dlDir, p.Size); err != nil {
		return "", err
	}
	url, err := tc.TargetURL(p.Target)
	if err != nil {
		return "", err
	}
	file := filepath.Join(dlDir, p.SHA256+"."+p.Codec)
	dl := payload.Downloader{HTTP: u.dl, StallTimeout: u.cfg.StallTimeout, Progress: u.progress("download " + p.For)}
	if err := dl.Fetch(ctx, url, file, p.Size, p.SHA256); err != nil {
		return "", fmt.Errorf("%s: %w", p.Target, err)
	}
	return file, nil
}
