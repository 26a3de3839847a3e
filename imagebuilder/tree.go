package imagebuilder

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Digest is a sha256 that stands for some inputs of a build. Ids that the
// file system tools would draw at random are derived from it instead.
type Digest [32]byte

// TreeDigest hashes a directory tree: for every entry in lexical order its
// name, type, mode, owner, modification time, and the content of a regular
// file or the target of a symlink. Two trees with the same digest give the
// same file system image.
func TreeDigest(dir string) (Digest, error) {
	h := sha256.New()
	type inode struct{ dev, ino uint64 }
	seen := map[inode]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var uid, gid uint32
		var nlink uint64
		var key inode
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid, nlink = st.Uid, st.Gid, uint64(st.Nlink)
			key = inode{uint64(st.Dev), uint64(st.Ino)}
		}
		fmt.Fprintf(h, "%q %o %d:%d %d\n", filepath.ToSlash(rel), uint32(fi.Mode()), uid, gid, fi.ModTime().UnixNano())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %q\n", target)
		case fi.Mode().IsRegular():
			if nlink > 1 {
				if first, ok := seen[key]; ok {
					fmt.Fprintf(h, "= %q\n", first)
					return nil
				}
				seen[key] = rel
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := io.Copy(h, f)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "\n%d\n", n)
		}
		return nil
	})
	if err != nil {
		return Digest{}, fmt.Errorf("digest of %s: %w", dir, err)
	}
	var d Digest
	h.Sum(d[:0])
	return d, nil
}

// Derive returns a new digest for one purpose ("disk-id", "root-uuid", ...)
// from d and any further inputs, so that ids derived from the same inputs
// for different purposes differ.
func (d Digest) Derive(purpose string, more ...any) Digest {
	h := sha256.New()
	h.Write(d[:])
	fmt.Fprintf(h, "\x00%s", purpose)
	for _, m := range more {
		fmt.Fprintf(h, "\x00%v", m)
	}
	var out Digest
	h.Sum(out[:0])
	return out
}

// UUID formats the first 16 bytes as an RFC 4122 version 4 style UUID (the
// version and variant bits set, so tools take it for a random one).
func (d Digest) UUID() string {
	b := d
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Uint32 is a non-zero 32-bit id (a disk id or FAT volume id).
func (d Digest) Uint32() uint32 {
	for i := 0; i+4 <= len(d); i++ {
		if v := binary.BigEndian.Uint32(d[i:]); v != 0 {
			return v
		}
	}
	return 1
}
