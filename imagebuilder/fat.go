package imagebuilder

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FATOptions control BuildFAT.
type FATOptions struct {
	Bits  int    // 16 or 32 (0: 32)
	Label string // volume label, at most 11 characters
	// VolumeID is the volume serial number. Zero: derived from the
	// content, label and size.
	VolumeID uint32
	// Offset is where the partition starts on the card, recorded as the
	// boot sector's hidden sectors.
	Offset int64
	// Epoch is the time given to the files' creation and access stamps
	// and to anything without a modification time. Zero: the current time.
	Epoch time.Time
}

// Smallest sizes the FAT variants work at here: FAT32 needs 65525
// clusters, FAT16 at least 4085 (and sdcard refuses FAT12).
const (
	MinFAT32Size = 34 << 20
	MinFAT16Size = 4 << 20
)

// FAT can record times from 1980 to 2107 only.
var (
	fatMinTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	fatMaxTime = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
)

func fatTime(t time.Time) time.Time {
	switch {
	case t.Before(fatMinTime):
		return fatMinTime
	case t.After(fatMaxTime):
		return fatMaxTime
	}
	return t
}

// BuildFAT makes the FAT image img of size bytes holding the files and
// directories of dir, with mkfs.vfat --invariant and mcopy -m. Directories
// are made one by one with mmd and filled in lexical order, so that the
// directory entries do not depend on the order the build host lists them;
// the stamps mtools takes from the clock come from SOURCE_DATE_EPOCH, set to
// the directory's modification time, and times are in UTC. Times outside
// 1980..2107 are clamped, since FAT cannot hold them. Symlinks and special
// files are refused (FAT cannot hold them), and so are names that collide
// once case is ignored.
func BuildFAT(ctx context.Context, dir, img string, size int64, opts FATOptions) error {
	if opts.Bits == 0 {
		opts.Bits = 32
	}
	var minSize int64
	switch opts.Bits {
	case 16:
		minSize = MinFAT16Size
	case 32:
		minSize = MinFAT32Size
	default:
		return fmt.Errorf("FAT%d: want FAT16 or FAT32", opts.Bits)
	}
	if size < minSize || size%512 != 0 {
		return fmt.Errorf("FAT%d image of %s: %w: FAT%d needs at least %s", opts.Bits, FormatSize(size), ErrTooSmall, opts.Bits, FormatSize(minSize))
	}
	if len(opts.Label) > 11 {
		return fmt.Errorf("FAT label %q: longer than 11 characters", opts.Label)
	}
	if opts.Offset < 0 || opts.Offset%512 != 0 {
		return fmt.Errorf("FAT offset %d: want a multiple of 512", opts.Offset)
	}
	tree, err := fatTree(dir)
	if err != nil {
		return err
	}
	// mkfs.vfat picks 512-byte clusters for FAT32 below 260 MB, 4 KiB
	// above. FAT16 gets the smallest clusters that keep it under 65525 of
	// them, so that a small partition stays FAT16 rather than FAT12.
	cluster := int64(512)
	spc := int64(1)
	if opts.Bits == 16 {
		for size/512/spc > 65000 {
			spc *= 2
		}
		cluster = 512 * spc
	} else if size >= 260_000_000 {
		cluster = 4096
	}
	need := int64(64 << 10)
	for _, e := range tree {
		need += (e.size + cluster - 1) / cluster * cluster
		if e.dir {
			need += cluster
		}
	}
	need += size / cluster * int64(opts.Bits/8) * 2 // two FATs
	if need > size {
		return fmt.Errorf("FAT%d image of %s: %w: the files need about %s", opts.Bits, FormatSize(size), ErrTooSmall, FormatSize(need))
	}
	if opts.VolumeID == 0 {
		d, err := TreeDigest(dir)
		if err != nil {
			return err
		}
		opts.VolumeID = d.Derive("fat", opts.Bits, opts.Label, size, opts.Offset, opts.Epoch.Unix()).Uint32()
	}

	if err := createSparse(img, size); err != nil {
		return err
	}
	args := []string{"-F", strconv.Itoa(opts.Bits), "--invariant", "-i", fmt.Sprintf("%08x", opts.VolumeID),
		"-h", strconv.FormatInt(opts.Offset/512, 10)}
	if opts.Bits == 16 {
		args = append(args, "-s", strconv.FormatInt(spc, 10))
	}
	if opts.Label != "" {
		args = append(args, "-n", opts.Label)
	}
	args = append(args, img)
	if _, err := runTool(ctx, nil, "mkfs.vfat", args...); err != nil {
		return fmt.Errorf("make FAT image: %w", err)
	}

	now := opts.Epoch
	if now.IsZero() {
		now = time.Now()
	}
	env := func(t time.Time) []string {
		return []string{"MTOOLSRC=/dev/null", "MTOOLS_SKIP_CHECK=1",
			"SOURCE_DATE_EPOCH=" + strconv.FormatInt(fatTime(t).Unix(), 10)}
	}
	mtools := func(t time.Time, name string, args ...string) error {
		if _, err := runTool(ctx, env(t), name, append([]string{"-i", img}, args...)...); err != nil {
			if strings.Contains(err.Error(), "Disk full") || strings.Contains(err.Error(), "No free") {
				return fmt.Errorf("FAT%d image of %s: %w: %v", opts.Bits, FormatSize(size), ErrTooSmall, err)
			}
			return err
		}
		return nil
	}
	// Files go in per directory, in batches, each directory after its parent.
	byDir := map[string][]string{}
	mtimes := map[string]time.Time{}
	for _, e := range tree {
		mtimes[e.rel] = e.mtime
		if e.dir {
			if err := mtools(e.mtime, "mmd", "::/"+e.rel); err != nil {
				return fmt.Errorf("add %s to FAT image: %w", e.rel, err)
			}
			continue
		}
		parent := filepath.ToSlash(filepath.Dir(e.rel))
		byDir[parent] = append(byDir[parent], e.rel)
	}
	var parents []string
	for p := range byDir {
		parents = append(parents, p)
	}
	sort.Strings(parents)
	for _, p := range parents {
		target := "::/"
		if p != "." {
			target = "::/" + p + "/"
		}
		// mcopy -m keeps a modification time, but wraps one FAT cannot
		// hold: such files take the clamped time as mcopy's clock instead.
		var files []string
		for _, rel := range byDir[p] {
			t := mtimes[rel]
			if !t.Equal(fatTime(t)) {
				if err := mtools(t, "mcopy", "-D", "o", filepath.Join(dir, filepath.FromSlash(rel)), target); err != nil {
					return fmt.Errorf("add %s to FAT image: %w", rel, err)
				}
				continue
			}
			files = append(files, rel)
		}
		for len(files) > 0 {
			n := min(len(files), 256)
			args := []string{"-m", "-D", "o"}
			for _, rel := range files[:n] {
				args = append(args, filepath.Join(dir, filepath.FromSlash(rel)))
			}
			args = append(args, target)
			if err := mtools(now, "mcopy", args...); err != nil {
				return fmt.Errorf("add files of %s to FAT image: %w", p, err)
			}
			files = files[n:]
		}
	}
	return nil
}

type fatEntry struct {
	rel   string // slash-separated, relative to the tree
	dir   bool
	size  int64
	mtime time.Time
}

// fatTree lists dir in lexical order (parents before their content) and
// refuses what FAT cannot hold.
func fatTree(dir string) ([]fatEntry, error) {
	var out []fatEntry
	folded := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.IsDir() && !d.Type().IsRegular() {
			return fmt.Errorf("%s: only files and directories fit on FAT", rel)
		}
		base := filepath.Base(rel)
		if strings.ContainsAny(base, `"*:<>?\|`) || strings.IndexFunc(base, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return fmt.Errorf("%s: name not allowed on FAT", rel)
		}
		if strings.HasSuffix(base, ".") || strings.HasSuffix(base, " ") {
			return fmt.Errorf("%s: FAT names cannot end in a dot or a space", rel)
		}
		key := strings.ToUpper(rel)
		if other, ok := folded[key]; ok {
			return fmt.Errorf("%s and %s: the same name on FAT, which ignores case", other, rel)
		}
		folded[key] = rel
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := fatEntry{rel: rel, dir: d.IsDir(), mtime: info.ModTime()}
		if !e.dir {
			e.size = info.Size()
			if e.size > 0xffffffff {
				return fmt.Errorf("%s: larger than FAT allows (4 GiB - 1)", rel)
			}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("files for FAT image: %w", err)
	}
	return out, nil
}

// createSparse makes img an empty (sparse) file of size bytes for mkfs.
func createSparse(img string, size int64) error {
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
