package sdcard

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/fat16"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// Disk is an open SD card or card image with its partition table.
type Disk struct {
	f     *os.File
	size  int64
	Table *Table

	// Writer receives every write made through the Disk. It is the file
	// itself unless a test swaps it (to record or cut off writes).
	Writer io.WriterAt
}

// Open opens a card (a block device or an image file) and reads its table.
func Open(name string, writable bool) (*Disk, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(name, flag, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("size of %s: %w", name, err)
	}
	t, err := ReadTable(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Disk{f: f, size: size, Table: t, Writer: f}, nil
}

// Close closes the card.
func (d *Disk) Close() error { return d.f.Close() }

// Size is the size of the card in bytes.
func (d *Disk) Size() int64 { return d.size }

// File is the open card, for streaming reads and writes of whole partitions.
func (d *Disk) File() *os.File { return d.f }

// Sync flushes written data to the card.
func (d *Disk) Sync() error { return d.f.Sync() }

// Partition returns partition n or an error naming it.
func (d *Disk) Partition(n int) (Partition, error) {
	p, ok := d.Table.Get(n)
	if !ok {
		return Partition{}, fmt.Errorf("card has no partition %d", n)
	}
	return p, nil
}

// Section is a reader of partition n.
func (d *Disk) Section(n int) (*io.SectionReader, error) {
	p, err := d.Partition(n)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(d.f, p.Start, p.Size), nil
}

// FAT opens the FAT file system of partition n (FAT32 or FAT16) read-only.
func (d *Disk) FAT(n int) (filesystem.FileSystem, error) {
	p, err := d.Partition(n)
	if err != nil {
		return nil, err
	}
	b := file.New(readOnlyFile{d.f}, true)
	fs32, err32 := fat32.Read(b, p.Size, p.Start, SectorSize)
	if err32 == nil {
		return fs32, nil
	}
	fs16, err16 := fat16.Read(b, p.Size, p.Start, SectorSize)
	if err16 == nil {
		return fs16, nil
	}
	return nil, fmt.Errorf("partition %d holds no readable FAT file system (FAT32: %v; FAT16: %v)", n, err32, err16)
}

// ErrFileTooLarge is returned by ReadFile for a file above its limit.
var ErrFileTooLarge = errors.New("file larger than allowed")

// ReadFile reads a file of at most max bytes from the FAT file system of
// partition n. The read is cut at the size in the directory entry: some
// FAT readers hand out the slack of the last cluster as well.
func (d *Disk) ReadFile(n int, name string, max int64) ([]byte, error) {
	fsys, err := d.FAT(n)
	if err != nil {
		return nil, err
	}
	return readFATFile(fsys, name, max)
}

func readFATFile(fsys filesystem.FileSystem, name string, max int64) ([]byte, error) {
	name = "/" + strings.TrimPrefix(path.Clean("/"+name), "/")
	f, err := fsys.OpenFile(name, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "not exist") || strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", name)
	}
	size := st.Size()
	if size > max {
		return nil, fmt.Errorf("%s: %d bytes: %w (%d)", name, size, ErrFileTooLarge, max)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// readOnlyFile hides the write side of an *os.File from go-diskfs, so that
// reading a file system can never write to the card.
type readOnlyFile struct{ f *os.File }

func (r readOnlyFile) Stat() (fs.FileInfo, error)                { return r.f.Stat() }
func (r readOnlyFile) Read(p []byte) (int, error)                { return r.f.Read(p) }
func (r readOnlyFile) ReadAt(p []byte, off int64) (int, error)   { return r.f.ReadAt(p, off) }
func (r readOnlyFile) Seek(off int64, whence int) (int64, error) { return r.f.Seek(off, whence) }
func (r readOnlyFile) Close() error                              { return nil }
