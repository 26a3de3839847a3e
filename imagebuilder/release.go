package imagebuilder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/healthguard/gateway-ota/imagebuilder/internal/xz"
	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater/release"
)

// ReleaseOptions describe a release to build and publish.
type ReleaseOptions struct {
	Repo       string // repository directory (made by `imagebuilder init-repo`)
	Keys       string // directory with targets.key, snapshot.key, timestamp.key
	RootFS     string // directory or tar archive (plain, gzip or xz)
	BootDir    string // firmware, kernel, config.txt, cmdline.txt
	Version    string
	Counter    uint64 // anti-rollback counter, above every earlier release's
	Channel    string // default "stable"
	Compatible string // board id; default DefaultCompatible
	// RootSize and BootSize are the sizes of the slot images; they must not
	// exceed the partitions of the cards the release is for. Defaults as
	// in sdcard.Layout.
	RootSize, BootSize int64
	HealthChecks       []release.HealthCheck
	HealthDeadline     time.Duration // default 2m
	Containers         *release.ContainerSet
	// ImagesTar, if set, is an uncompressed tar of the container set's images in
	// the format of `docker image save`, each tagged release.ImagesTag(image) (as
	// pin.Resolver.Save writes it). It is published xz-compressed as the
	// embedded images payload (release.KindImages, release.ImagesPayloadName) for
	// air-gapped sites; the device loads it with the engine's image load.
	ImagesTar string
	// DeltaFrom is how many of the newest earlier releases of the same
	// channel and board get a root delta payload to this release; 0: none.
	// Their root images are read from DeltaCache when it holds them, else
	// decompressed from their full payloads in the repository.
	DeltaFrom int
	// DeltaCache, if set, is a directory of uncompressed root images named
	// <sha256>.ext4; the release's own root image is added to it.
	DeltaCache string
	Epoch      time.Time // SOURCE_DATE_EPOCH; zero: now
	WorkDir    string    // staging; empty: a directory beside Repo
	Logf       func(format string, args ...any)
}

// RootPlaceholder is the root= a release's cmdline.txt carries. The device
// rewrites it in place (same length) with the PARTUUID of the slot's root
// partition on its own card.
const RootPlaceholder = "PARTUUID=00000000-00"

// BuildRelease builds the slot images of a release (root ext4, boot FAT32),
// compresses each into an xz payload, writes the manifest and publishes all
// of it into the repository: payloads first, the top-level metadata last.
func BuildRelease(ctx context.Context, o ReleaseOptions) (*release.Manifest, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	layout := sdcard.Layout{RootSize: o.RootSize, BootSize: o.BootSize}.Defaults()
	if o.Channel == "" {
		o.Channel = "stable"
	}
	if o.Compatible == "" {
		o.Compatible = DefaultCompatible
	}
	if o.HealthDeadline == 0 {
		o.HealthDeadline = 2 * time.Minute
	}
	if o.Epoch.IsZero() {
		o.Epoch = time.Now().UTC().Truncate(time.Second)
	}
	if o.Counter == 0 {
		return nil, errors.New("release counter must be at least 1")
	}
	if err := release.ValidVersion(o.Version); err != nil {
		return nil, err
	}
	// Open the repository first: a missing key or repository fails before
	// minutes of image building.
	repo, err := publish.Open(o.Repo, o.Keys, publish.Options{})
	if err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	if st, err := os.Lstat(filepath.Join(o.BootDir, CmdlineFile)); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("boot directory %s has no %s (a regular file)", o.BootDir, CmdlineFile)
	}
	workDir := o.WorkDir
	if workDir == "" {
		workDir = filepath.Dir(filepath.Clean(o.Repo))
	}
	work, err := os.MkdirTemp(workDir, ".release-"+o.Version+"-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	rootImg := filepath.Join(work, "rootfs.ext4")
	if _, err := buildRootImage(ctx, o.RootFS, work, rootImg, layout.RootSize, o.Epoch, logf); err != nil {
		return nil, err
	}
	rootImage, err := hashFile(rootImg)
	if err != nil {
		return nil, err
	}

	bootDir := filepath.Join(work, "boot")
	cmdline, err := stageBoot(ctx, o.BootDir, bootDir, layout.BootSize, o.Epoch, logf)
	if err != nil {
		return nil, err
	}
	if cmdline, err = SetCmdlineRoot(cmdline, RootPlaceholder); err != nil {
		return nil, fmt.Errorf("boot files in %s: %w", o.BootDir, err)
	}
	info := sdcard.SlotInfo{Version: o.Version, Counter: o.Counter, Compatible: o.Compatible, RootSHA256: rootImage.SHA256, RootSize: rootImage.Size}
	if err := writeSlotFiles(bootDir, cmdline, info, o.Epoch); err != nil {
		return nil, err
	}
	logf("making boot FAT32 (%s)", FormatSize(layout.BootSize))
	bootImg := filepath.Join(work, "boot.vfat")
	if err := BuildFAT(ctx, bootDir, bootImg, layout.BootSize, FATOptions{Bits: 32, Label: "BOOT", Epoch: o.Epoch}); err != nil {
		return nil, fmt.Errorf("boot partition: %w", err)
	}
	bootImage, err := hashFile(bootImg)
	if err != nil {
		return nil, err
	}

	m := &release.Manifest{
		Schema: release.SchemaVersion, Version: o.Version, Counter: o.Counter, Channel: o.Channel,
		Compatible: o.Compatible, Created: o.Epoch.UTC(),
		Rootfs: rootImage, Boot: bootImage,
		HealthChecks: o.HealthChecks, HealthDeadline: release.Duration(o.HealthDeadline),
		Containers: o.Containers,
	}
	files := map[string]string{}
	payloads := []struct{ img, name, forImage string }{
		{rootImg, "rootfs.ext4.xz", release.ForRootfs},
		{bootImg, "boot.vfat.xz", release.ForBoot},
	}
	if o.ImagesTar != "" {
		if o.Containers == nil || len(o.Containers.Services) == 0 {
			return nil, errors.New("embedded images without a container set")
		}
		payloads = append(payloads, struct{ img, name, forImage string }{o.ImagesTar, release.ImagesPayloadName, release.ForImages})
	}
	for _, p := range payloads {
		logf("compressing %s", p.name)
		out := filepath.Join(work, p.name)
		if err := CompressXZ(ctx, p.img, out); err != nil {
			return nil, err
		}
		sum, err := hashFile(out)
		if err != nil {
			return nil, err
		}
		target := release.PayloadPath(o.Version, p.name)
		kind := release.KindFull
		if p.forImage == release.ForImages {
			kind = release.KindImages
		}
		m.Payloads = append(m.Payloads, release.Payload{Kind: kind, Target: target, Codec: release.CodecXZ,
			Size: sum.Size, SHA256: sum.SHA256, For: p.forImage})
		files[target] = out
	}
	// Root deltas from earlier releases (release_delta.go).
	if err := addDeltas(ctx, o, repo, m, rootImg, work, files, logf); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	logf("publishing %s (counter %d) into %s", o.Version, o.Counter, o.Repo)
	if err := repo.AddRelease(m, files); err != nil {
		return nil, err
	}
	return m, nil
}

// hashFile returns the size and SHA-256 of a file.
func hashFile(path string) (release.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return release.Image{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return release.Image{}, err
	}
	return release.Image{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// XZBlockSize is the block size of payloads: independent blocks let the
// device decode them in parallel.
const XZBlockSize = 8 << 20

// CompressXZ compresses src into dst with xz(1): preset 6, independent
// blocks of XZBlockSize, CRC64 checks. The output depends only on the input
// (xz's threaded mode writes the same blocks whatever the thread count).
func CompressXZ(ctx context.Context, src, dst string) error {
	return runXZ(ctx, src, dst, "-6", "-T0", fmt.Sprintf("--block-size=%d", XZBlockSize), "--check=crc64", "-c")
}

// runXZ runs xz(1) with args, src as its input and dst as its output; dst is
// removed if xz fails.
func runXZ(ctx context.Context, src, dst string, args ...string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	cmd := xz.Command(ctx, args...)
	cmd.Stdin, cmd.Stdout = in, out
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		out.Close()
		os.Remove(dst)
		return fmt.Errorf("xz %s %s: %v: %s", strings.Join(args, " "), filepath.Base(src), err, stderr.String())
	}
	return out.Close()
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// buildRootImage stages a root file system (directory or tar archive) under
// work and makes the slot's ext4 image of it at img: no journal, since the
// root is mounted read-only. It returns the staged tree.
func buildRootImage(ctx context.Context, rootfs, work, img string, size int64, epoch time.Time, logf func(string, ...any)) (Tree, error) {
	logf("staging root file system from %s", rootfs)
	tree, err := Stage(ctx, rootfs, filepath.Join(work, "root"), StageOptions{Epoch: epoch, MaxBytes: size})
	if err != nil {
		return Tree{}, fmt.Errorf("root file system: %w", err)
	}
	logf("making root ext4 (%s, no journal)", FormatSize(size))
	if err := BuildExt4(ctx, tree.Dir, img, size, Ext4Options{Label: "rootfs", Epoch: epoch}); err != nil {
		return Tree{}, fmt.Errorf("root file system: %w", err)
	}
	return tree, nil
}
