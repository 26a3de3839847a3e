package pisim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Whence values of lseek(2) that find data and holes (Linux, the BSDs,
// macOS); elsewhere the seek fails and the whole file counts as data.
const (
	seekData = 3
	seekHole = 4
)

// copySparse copies the image src to the new file dst. A reflink is tried
// first; otherwise only the data regions of src are copied, and blocks of
// zeros inside them are skipped too, so holes stay holes.
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := cloneFile(out, in); err != nil {
		err = copyData(out, in, fi.Size())
		if err == nil {
			err = out.Truncate(fi.Size())
		}
		if err != nil {
			out.Close()
			os.Remove(dst)
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// copyData copies the data regions of in to the same offsets of out.
func copyData(out, in *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); off < size; {
		start, err := in.Seek(off, seekData)
		if err != nil {
			if off > 0 {
				return nil // ENXIO: no data after off
			}
			start = 0 // no SEEK_DATA here: everything is data
		}
		end, err := in.Seek(start, seekHole)
		if err != nil {
			end = size
		}
		for pos := start; pos < end; {
			n := int64(len(buf))
			if n > end-pos {
				n = end - pos
			}
			if _, err := in.ReadAt(buf[:n], pos); err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, err := out.WriteAt(buf[:n], pos); err != nil {
					return err
				}
			}
			pos += n
		}
		off = end
	}
	return nil
}

// moveFile renames src to dst, or copies and removes it across file
// systems.
func moveFile(src, dst string) error {
	if err := os.Rename(src, dst); err == nil {
		return nil
	}
	if err := copySparse(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}
