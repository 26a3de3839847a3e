package imagebuilder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ext4Options control BuildExt4. The zero value makes a journal-less file
// system with ids derived from the content and the current time.
type Ext4Options struct {
	Label string // volume label, at most 16 bytes
	// UUID and HashSeed are the file system UUID and the seed of its
	// directory hashes. Empty: derived from the content, label and size.
	UUID, HashSeed string
	// Journal adds a journal: for a file system mounted read-write. A
	// read-only root goes without one.
	Journal bool
	// ReservedPercent is the share of blocks only root may fill (mkfs.ext4 -m).
	ReservedPercent int
	// Epoch is the time every inode and the superblock carry
	// (SOURCE_DATE_EPOCH). Zero: the content's times and the current time.
	Epoch time.Time
}

// ext4BlockSize is the block size of every ext4 image built here.
const ext4BlockSize = 4096

// mke2fsConfig pins the features, so that the image does not depend on the
// build host's /etc/mke2fs.conf. The kernels of every supported Pi OS read
// all of them.
const mke2fsConfig = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext4 = {
		features = extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// ErrTooSmall is returned when content does not fit in the size asked for.
var ErrTooSmall = errors.New("too small for its content")

// BuildExt4 makes the ext4 image img of exactly size bytes (a multiple of
// 4 KiB) from the directory dir, with mkfs.ext4 -d. It checks beforehand that
// the content fits. With an Epoch the image depends only on the content,
// the options and size: ids come from a digest of the tree, mkfs.ext4 runs
// with E2FSPROGS_FAKE_TIME, and the change and access times it copies from
// the staging directory (which only the kernel sets) are reset with debugfs.
func BuildExt4(ctx context.Context, dir, img string, size int64, opts Ext4Options) error {
	if size < 1<<20 || size%ext4BlockSize != 0 {
		return fmt.Errorf("ext4 image of %d bytes: must be at least 1 MiB and a multiple of %d", size, ext4BlockSize)
	}
	if len(opts.Label) > 16 {
		return fmt.Errorf("ext4 label %q: longer than 16 bytes", opts.Label)
	}
	if opts.ReservedPercent < 0 || opts.ReservedPercent > 50 {
		return fmt.Errorf("ext4 reserved percentage %d: want 0..50", opts.ReservedPercent)
	}
	st, err := statTree(dir)
	if err != nil {
		return err
	}
	inodes := size / 16384
	if need := int64(st.entries) + int64(st.entries)/4 + 64; need > inodes {
		inodes = need
	}
	need := st.blockBytes + int64(st.dirs+1)*ext4BlockSize + inodes*256 + size/64 + 1<<20
	if opts.Journal {
		need += journalSize(size)
	}
	if need > size {
		return fmt.Errorf("ext4 image of %s: %w: %d entries and %s of files need about %s",
			FormatSize(size), ErrTooSmall, st.entries, FormatSize(st.bytes), FormatSize(need))
	}
	if opts.UUID == "" || opts.HashSeed == "" {
		d, err := TreeDigest(dir)
		if err != nil {
			return err
		}
		d = d.Derive("ext4", opts.Label, size, opts.Journal, opts.ReservedPercent, opts.Epoch.Unix())
		if opts.UUID == "" {
			opts.UUID = d.Derive("uuid").UUID()
		}
		if opts.HashSeed == "" {
			opts.HashSeed = d.Derive("hash-seed").UUID()
		}
	}

	conf, err := os.CreateTemp(filepath.Dir(img), ".mke2fs-*.conf")
	if err != nil {
		return err
	}
	defer os.Remove(conf.Name())
	_, err = conf.WriteString(mke2fsConfig)
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := createSparse(img, size); err != nil {
		return err
	}

	env := []string{"MKE2FS_CONFIG=" + conf.Name()}
	if !opts.Epoch.IsZero() {
		env = append(env, "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(opts.Epoch.Unix(), 10))
	}
	features := "^has_journal"
	if opts.Journal {
		features = "has_journal"
	}
	ext := fmt.Sprintf("hash_seed=%s,root_owner=%d:%d,nodiscard,lazy_itable_init=0,lazy_journal_init=0", opts.HashSeed, st.rootUID, st.rootGID)
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-O", features,
		"-m", strconv.Itoa(opts.ReservedPercent), "-U", opts.UUID, "-E", ext,
		"-N", strconv.FormatInt(inodes, 10), "-L", opts.Label, "-d", dir, img,
		strconv.FormatInt(size/1024, 10) + "k"}
	if _, err := runTool(ctx, env, "mkfs.ext4", args...); err != nil {
		if s := err.Error(); strings.Contains(s, "Could not allocate") || strings.Contains(s, "No space left") || strings.Contains(s, "Could not allocate inode") {
			return fmt.Errorf("ext4 image of %s: %w: %v", FormatSize(size), ErrTooSmall, err)
		}
		return fmt.Errorf("make ext4 image: %w", err)
	}
	if opts.Epoch.IsZero() {
		return nil
	}
	return fixExt4Times(ctx, dir, img, env, opts.Epoch)
}

// journalSize is the journal mkfs.ext4 makes for a file system of size
// bytes (ext2fs_default_journal_size), in bytes.
func journalSize(size int64) int64 {
	blocks := size / ext4BlockSize
	switch {
	case blocks < 2048:
		return 0
	case blocks < 32768:
		return 1024 * ext4BlockSize
	case blocks < 256*1024:
		return 4096 * ext4BlockSize
	case blocks < 512*1024:
		return 8192 * ext4BlockSize
	case blocks < 4096*1024:
		return 16384 * ext4BlockSize
	}
	return 32768 * ext4BlockSize
}

// fixExt4Times sets the change and access time of every inode mkfs.ext4
// copied from dir to the epoch, through one debugfs session.
func fixExt4Times(ctx context.Context, dir, img string, env []string, epoch time.Time) error {
	var script strings.Builder
	at := "@" + strconv.FormatInt(epoch.Unix(), 10)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		if strings.ContainsAny(name, "\n\r\x00") {
			return fmt.Errorf("%q: control character in a name", rel)
		}
		q := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		fmt.Fprintf(&script, "sif %s ctime %s\nsif %s atime %s\n", q, at, q, at)
		return nil
	})
	if err != nil {
		return err
	}
	script.WriteString("sif /lost+found ctime " + at + "\nsif /lost+found atime " + at + "\n")
	cmds, err := os.CreateTemp(filepath.Dir(img), ".debugfs-*.cmd")
	if err != nil {
		return err
	}
	defer os.Remove(cmds.Name())
	_, err = cmds.WriteString(script.String())
	if cerr := cmds.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	stderr, err := runTool(ctx, env, "debugfs", "-w", "-f", cmds.Name(), img)
	if err != nil {
		return fmt.Errorf("set inode times: %w", err)
	}
	// debugfs reports a failed command on stderr and still exits 0.
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "debugfs ") {
			return fmt.Errorf("set inode times: debugfs: %s", l)
		}
	}
	return nil
}

type treeStats struct {
	entries, dirs    int
	bytes            int64
	blockBytes       int64
	rootUID, rootGID uint32
}

// statTree counts what dir holds, for the size checks made before mkfs.
func statTree(dir string) (treeStats, error) {
	var st treeStats
	fi, err := os.Stat(dir)
	if err != nil {
		return st, err
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("%s is not a directory", dir)
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.rootUID, st.rootGID = sys.Uid, sys.Gid
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		st.entries++
		if d.IsDir() {
			st.dirs++
			return nil
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			st.bytes += info.Size()
			st.blockBytes += (info.Size() + ext4BlockSize - 1) / ext4BlockSize * ext4BlockSize
		}
		return nil
	})
	return st, err
}
