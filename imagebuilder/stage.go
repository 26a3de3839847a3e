package imagebuilder

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Limits of staging, so that an archive cannot fill the build host.
const (
	DefaultMaxEntries = 1 << 20 // entries of one tree
	DefaultMaxBytes   = 64 << 30
)

// ErrNeedRoot is returned when a tree holds owners that only root can set.
var ErrNeedRoot = errors.New("keeping file owners other than your own needs root")

// StageOptions control Stage. The zero value is usable.
type StageOptions struct {
	// Epoch is the build time (SOURCE_DATE_EPOCH): modification times
	// later than it are set to it, and directories the archive does not
	// list get it. Zero keeps the input times.
	Epoch time.Time
	// MaxEntries caps the number of entries (0: DefaultMaxEntries).
	MaxEntries int
	// MaxBytes caps the total size of regular files (0: DefaultMaxBytes).
	MaxBytes int64
	// IgnoreOwners stages every entry owned by the caller, for trees that
	// end up on FAT, which has no owners.
	IgnoreOwners bool
}

// Tree describes a staged tree.
type Tree struct {
	Dir        string
	Entries    int   // files, directories and links, the top directory excluded
	Dirs       int   // directories, the top one excluded
	Bytes      int64 // total size of regular files (hard links counted once)
	BlockBytes int64 // the same, each file rounded up to 4 KiB
}

// Stage copies src into the new directory dst, validating every entry, and
// returns what it holds. src is a directory or a tar archive, plain, gzip
// (.tar.gz, .tgz) or xz (.tar.xz) compressed; the compression is recognised
// by its magic bytes. Only regular files, directories, symlinks and hard
// links to earlier entries are accepted; names must be relative without ".."
// and without control characters. Symlink targets are kept verbatim (an
// absolute target resolves inside the root file system at run time) and no
// link is ever followed while extracting: every write goes through an
// os.Root, and every parent directory of an entry must be a directory the
// archive created. Modes (setuid, setgid and sticky included) are kept, and
// owners when running as root; otherwise an owner other than the caller
// fails with ErrNeedRoot.
func Stage(ctx context.Context, src, dst string, opts StageOptions) (Tree, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	st, err := os.Stat(src)
	if err != nil {
		return Tree{}, err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return Tree{}, fmt.Errorf("staging directory: %w", err)
	}
	abs, err := filepath.Abs(dst)
	if err != nil {
		return Tree{}, err
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return Tree{}, err
	}
	defer root.Close()
	s := &stager{
		ctx: ctx, opts: opts, root: root, dir: abs,
		dirs:     map[string]bool{".": true},
		dirTimes: map[string]time.Time{},
		dirModes: map[string]os.FileMode{},
		euid:     os.Geteuid(), egid: os.Getegid(),
		tree: Tree{Dir: abs},
	}
	if st.IsDir() {
		err = s.fromDir(src)
	} else {
		err = s.fromArchive(src)
	}
	if err != nil {
		return Tree{}, err
	}
	if err := s.finish(); err != nil {
		return Tree{}, err
	}
	return s.tree, nil
}

type stager struct {
	ctx        context.Context
	opts       StageOptions
	root       *os.Root
	dir        string
	dirs       map[string]bool      // directories made here: safe to descend
	dirTimes   map[string]time.Time // applied last, deepest first
	dirModes   map[string]os.FileMode
	rootListed bool
	euid, egid int
	tree       Tree
}

func (s *stager) fromArchive(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(6)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r = xr
	}
	tr := tar.NewReader(r)
	for {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			if s.tree.Entries == 0 && !s.rootListed {
				return fmt.Errorf("%s: empty archive", name)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := s.add(h, tr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
}

func (s *stager) fromDir(src string) error {
	src, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := s.ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			h = &tar.Header{Typeflag: 0xff, Name: rel}
		}
		h.Name = filepath.ToSlash(rel)
		h.Uname, h.Gname = "", ""
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			h.Uid, h.Gid = int(sys.Uid), int(sys.Gid)
			if fi.Mode().IsRegular() && sys.Nlink > 1 {
				key := inode{uint64(sys.Dev), uint64(sys.Ino)}
				if first, ok := seen[key]; ok {
					h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				} else {
					seen[key] = h.Name
				}
			}
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if h.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode()&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
			h.Typeflag = 0xff // refused by add with the entry's name
		}
		var body io.Reader
		if h.Typeflag == tar.TypeReg {
			f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			body = f
		}
		if err := s.add(h, body); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		return nil
	})
}

// entryName validates an archive name and returns it cleaned, "." for the
// top directory.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty name")
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f {
			return "", errors.New("name contains a control character")
		}
	}
	if strings.HasPrefix(raw, "/") {
		return "", errors.New("absolute name")
	}
	for _, c := range strings.Split(raw, "/") {
		if c == ".." {
			return "", errors.New(`name contains ".."`)
		}
	}
	clean := path.Clean(raw)
	if clean == "." {
		return ".", nil
	}
	if !filepath.IsLocal(clean) {
		return "", errors.New("name is not local")
	}
	return clean, nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeGNUSparse:
		return "sparse file"
	case 0xff:
		return "device, fifo or socket"
	}
	return fmt.Sprintf("entry of type %q", t)
}

// fileMode turns the permission bits of a tar header into an os.FileMode.
func fileMode(m int64) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

func (s *stager) mtime(t time.Time) time.Time {
	if !s.opts.Epoch.IsZero() && (t.IsZero() || t.After(s.opts.Epoch)) {
		return s.opts.Epoch
	}
	return t
}

func (s *stager) add(h *tar.Header, body io.Reader) error {
	name, err := entryName(h.Name)
	if err != nil {
		return fmt.Errorf("entry %q: %w", h.Name, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("entry %q: %s", h.Name, fmt.Sprintf(format, args...))
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	default:
		return fail("%s not allowed (only regular files, directories, symlinks and hard links)", typeName(h.Typeflag))
	}
	if name == "." {
		if h.Typeflag != tar.TypeDir {
			return fail("the top of the tree must be a directory")
		}
		s.rootListed = true
		return s.setMeta(name, h, true)
	}
	s.tree.Entries++
	if s.tree.Entries > s.opts.MaxEntries {
		return fail("more than %d entries", s.opts.MaxEntries)
	}
	if err := s.parents(name); err != nil {
		return fail("%v", err)
	}
	fi, err := s.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fail("%v", err)
	case fi.IsDir() && h.Typeflag == tar.TypeDir:
		return s.setMeta(name, h, true)
	case fi.IsDir():
		return fail("replaces a directory")
	default:
		if err := s.root.Remove(name); err != nil {
			return fail("%v", err)
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if err := s.root.Mkdir(name, 0o700); err != nil {
			return fail("%v", err)
		}
		s.dirs[name] = true
		s.tree.Dirs++
		return s.setMeta(name, h, true)
	case tar.TypeSymlink:
		if h.Linkname == "" || strings.IndexByte(h.Linkname, 0) >= 0 {
			return fail("bad symlink target %q", h.Linkname)
		}
		if err := s.root.Symlink(h.Linkname, name); err != nil {
			return fail("%v", err)
		}
		return s.setMeta(name, h, false)
	case tar.TypeLink:
		target, err := entryName(h.Linkname)
		if err != nil || target == "." {
			return fail("hard link to %q points outside the tree", h.Linkname)
		}
		tfi, err := s.root.Lstat(target)
		if err != nil || tfi.IsDir() {
			return fail("hard link to %q: no earlier file of that name", h.Linkname)
		}
		if err := s.parents(target); err != nil {
			return fail("hard link to %q: %v", h.Linkname, err)
		}
		if err := s.root.Link(target, name); err != nil {
			return fail("%v", err)
		}
		return nil
	}
	// Regular file.
	if h.Size < 0 || h.Size > s.opts.MaxBytes-s.tree.Bytes {
		return fail("the files add up to more than %s", FormatSize(s.opts.MaxBytes))
	}
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail("%v", err)
	}
	n, err := io.Copy(f, io.LimitReader(body, h.Size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != h.Size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fail("%v", err)
	}
	s.tree.Bytes += h.Size
	s.tree.BlockBytes += (h.Size + 4095) &^ 4095
	return s.setMeta(name, h, false)
}

// parents makes sure every parent of name is a directory made here,
// creating missing ones, so that no write ever passes through a symlink.
func (s *stager) parents(name string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		if s.dirs[p] {
			continue
		}
		if _, err := s.root.Lstat(p); err == nil {
			return fmt.Errorf("parent %q is not a directory (links are never followed)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := s.root.Mkdir(p, 0o755); err != nil {
			return err
		}
		if s.euid == 0 && !s.opts.IgnoreOwners {
			if err := s.root.Lchown(p, 0, 0); err != nil {
				return err
			}
		}
		s.dirs[p] = true
		s.tree.Dirs++
		s.tree.Entries++
		s.dirModes[p] = 0o755
		s.dirTimes[p] = s.mtime(time.Time{})
	}
	return nil
}

// setMeta applies owner, mode and time of h to name.
func (s *stager) setMeta(name string, h *tar.Header, dir bool) error {
	fail := func(err error) error { return fmt.Errorf("entry %q: %w", h.Name, err) }
	if !s.opts.IgnoreOwners {
		switch {
		case s.euid == 0:
			if err := s.root.Lchown(name, h.Uid, h.Gid); err != nil {
				return fail(err)
			}
		case h.Uid != s.euid || h.Gid != s.egid:
			return fail(fmt.Errorf("owned by %d:%d: %w", h.Uid, h.Gid, ErrNeedRoot))
		}
	}
	t := s.mtime(h.ModTime)
	if dir {
		// The final mode may forbid writing the entries still to come.
		s.dirModes[name] = fileMode(h.Mode)
		if err := s.root.Chmod(name, fileMode(h.Mode)|0o700); err != nil {
			return fail(err)
		}
		s.dirTimes[name] = t
		return nil
	}
	if h.Typeflag != tar.TypeSymlink {
		if err := s.root.Chmod(name, fileMode(h.Mode)); err != nil {
			return fail(err)
		}
	}
	return s.setTime(name, t)
}

func (s *stager) setTime(name string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set time of %q: %w", name, err)
	}
	return nil
}

// finish sets the modes and times of directories, deepest first, once nothing is
// written into them any more.
func (s *stager) finish() error {
	if !s.rootListed {
		if s.euid == 0 && !s.opts.IgnoreOwners {
			if err := s.root.Lchown(".", 0, 0); err != nil {
				return err
			}
		}
		s.dirModes["."] = 0o755
		s.dirTimes["."] = s.mtime(time.Time{})
	}
	names := make([]string, 0, len(s.dirTimes))
	for n := range s.dirTimes {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if names[i] == "." || names[j] == "." {
			return names[j] == "."
		}
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		if !s.dirs[n] {
			continue
		}
		if m, ok := s.dirModes[n]; ok {
			if err := s.root.Chmod(n, m); err != nil {
				return err
			}
		}
		if err := s.setTime(n, s.dirTimes[n]); err != nil {
			return err
		}
	}
	return nil
}
