package imagebuilder

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/healthguard/gateway-ota/imagebuilder/delta"
	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/updater/release"
)

// DeltaPayloadName is the file name of the root delta from version from.
func DeltaPayloadName(from string) string { return "rootfs-from-" + from + ".delta.xz" }

// baseRelease is an earlier release a delta starts from.
type baseRelease struct {
	m   *release.Manifest
	dir string // the repository's targets directory
}

// deltaBases returns the newest n releases of the repository published for
// the channel and board of m with a lower counter, newest first.
func deltaBases(repoDir string, repo *publish.Repo, m *release.Manifest, n int) ([]baseRelease, error) {
	if n <= 0 {
		return nil, nil
	}
	targets, err := repo.Targets()
	if err != nil {
		return nil, err
	}
	var out []baseRelease
	for p, tf := range targets {
		if path.Base(p) != "release.json" || !strings.HasPrefix(p, "releases/") || tf.Custom == nil {
			continue
		}
		s, err := release.ParseSummary(*tf.Custom)
		if err != nil || s.Channel != m.Channel || s.Compatible != m.Compatible || s.Counter >= m.Counter || p != release.ManifestPath(s.Version) {
			continue
		}
		file := filepath.Join(repoDir, publish.TargetsDir, filepath.FromSlash(publish.TargetFileName(p, hex.EncodeToString(tf.Hashes["sha256"]))))
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", s.Version, err)
		}
		bm, err := release.ParseManifest(b)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", s.Version, err)
		}
		out = append(out, baseRelease{m: bm, dir: filepath.Join(repoDir, publish.TargetsDir)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].m.Counter > out[j].m.Counter })
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// baseImage returns the uncompressed root image of b: from the cache when it
// holds it, else decompressed from the full payload in the repository into
// work. Either way its hash is checked against b's manifest.
func baseImage(ctx context.Context, b baseRelease, cache, work string) (string, error) {
	want := b.m.Rootfs
	if cache != "" {
		p := filepath.Join(cache, want.SHA256+".ext4")
		if got, err := hashFile(p); err == nil && got == want {
			return p, nil
		}
	}
	full, ok := b.m.FullPayload(release.ForRootfs)
	if !ok {
		return "", fmt.Errorf("release %s has no full root payload", b.m.Version)
	}
	src := filepath.Join(b.dir, filepath.FromSlash(publish.TargetFileName(full.Target, full.SHA256)))
	dst := filepath.Join(work, "base-"+b.m.Version+".ext4")
	if err := decompressXZ(ctx, src, dst); err != nil {
		return "", fmt.Errorf("release %s: %w", b.m.Version, err)
	}
	got, err := hashFile(dst)
	if err != nil {
		return "", err
	}
	if got != want {
		return "", fmt.Errorf("release %s: its root payload makes %d bytes sha256 %s, the manifest says %d bytes sha256 %s",
			b.m.Version, got.Size, got.SHA256, want.Size, want.SHA256)
	}
	return dst, nil
}

// decompressXZ writes the decompressed src to dst with xz(1).
func decompressXZ(ctx context.Context, src, dst string) error {
	return runXZ(ctx, src, dst, "-dc")
}

// cacheRootImage keeps a copy of the release's root image in the cache
// directory as <sha256>.ext4, for the deltas of later releases.
func cacheRootImage(cache, img string, im release.Image) error {
	if cache == "" {
		return nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(cache, im.SHA256+".ext4")
	if got, err := hashFile(dst); err == nil && got == im {
		return nil
	}
	in, err := os.Open(img)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(cache, ".tmp-*.ext4")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// addDeltas makes the root deltas of m from the o.DeltaFrom newest earlier
// releases of its channel and board, and adds them to m.Payloads and files.
// A delta that is not smaller than the full root payload is left out.
func addDeltas(ctx context.Context, o ReleaseOptions, repo *publish.Repo, m *release.Manifest, rootImg, work string, files map[string]string, logf func(string, ...any)) error {
	if err := cacheRootImage(o.DeltaCache, rootImg, m.Rootfs); err != nil {
		return fmt.Errorf("delta cache: %w", err)
	}
	bases, err := deltaBases(o.Repo, repo, m, o.DeltaFrom)
	if err != nil {
		return fmt.Errorf("delta bases: %w", err)
	}
	full, _ := m.FullPayload(release.ForRootfs)
	for _, b := range bases {
		if b.m.Rootfs == m.Rootfs {
			logf("release %s has the same root image: no delta needed", b.m.Version)
			continue
		}
		img, err := baseImage(ctx, b, o.DeltaCache, work)
		if err != nil {
			return err
		}
		name := DeltaPayloadName(b.m.Version)
		out := filepath.Join(work, name)
		logf("making the root delta from %s", b.m.Version)
		if _, err := delta.EncodeFile(ctx, img, rootImg, out, delta.Options{Logf: logf}); err != nil {
			return fmt.Errorf("delta from %s: %w", b.m.Version, err)
		}
		if img != filepath.Join(o.DeltaCache, b.m.Rootfs.SHA256+".ext4") {
			os.Remove(img)
		}
		sum, err := hashFile(out)
		if err != nil {
			return err
		}
		if full.Size > 0 && sum.Size >= full.Size {
			logf("delta from %s is %d bytes, the full payload %d: left out", b.m.Version, sum.Size, full.Size)
			continue
		}
		target := release.PayloadPath(m.Version, name)
		m.Payloads = append(m.Payloads, release.Payload{Kind: release.KindDelta, Target: target, Codec: release.CodecXZ,
			Size: sum.Size, SHA256: sum.SHA256, For: release.ForRootfs, From: b.m.Version, FromSHA256: b.m.Rootfs.SHA256})
		files[target] = out
	}
	return nil
}
