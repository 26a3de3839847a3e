package sdcard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// In-place rewrites.
//
// FAT has no journal. Creating, truncating or renaming a file changes the
// allocation table, the directory entry and the data in separate writes, and a
// power cut between two of them can leave the firmware with no autoboot.txt
// (or a cmdline.txt naming no root). A rewrite that keeps the file's length
// touches only the data sectors the file already owns: the allocation table
// and the directory entry stay as they were, and a file of one sector is
// replaced by a single sector write, which is the unit an SD card commits
// whole. go-diskfs has no call that says where a file's bytes lie, so the
// boot sector and root directory are read here, for that purpose only.

// ErrLengthChanged is returned by RewriteFile when the new content is not
// exactly as long as the file it replaces.
var ErrLengthChanged = errors.New("in-place rewrite must keep the file's length")

// fatGeom is what the boot sector says about the layout of a FAT volume.
type fatGeom struct {
	bytesPerSector  int64
	sectorsPerClust int64
	fatStart        int64 // byte offset of the first FAT
	fatBits         int   // 16 or 32 (12 is refused)
	rootStart       int64 // FAT12/16: byte offset of the fixed root directory
	rootBytes       int64
	rootCluster     uint32 // FAT32
	dataStart       int64  // byte offset of cluster 2
	clusters        uint32
	size            int64
}

func readGeom(d *Disk, p Partition) (fatGeom, error) {
	bs := make([]byte, 512)
	if _, err := d.f.ReadAt(bs, p.Start); err != nil {
		return fatGeom{}, fmt.Errorf("read boot sector: %w", err)
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(bs[o:])) }
	g := fatGeom{bytesPerSector: le16(11), sectorsPerClust: int64(bs[13]), size: p.Size}
	if bs[510] != 0x55 || bs[511] != 0xaa {
		return g, errors.New("no FAT boot sector signature")
	}
	switch g.bytesPerSector {
	case 512, 1024, 2048, 4096:
	default:
		return g, fmt.Errorf("bad bytes per sector %d", g.bytesPerSector)
	}
	if g.sectorsPerClust == 0 || g.sectorsPerClust&(g.sectorsPerClust-1) != 0 {
		return g, fmt.Errorf("bad sectors per cluster %d", g.sectorsPerClust)
	}
	reserved, nFATs, rootEntries := le16(14), int64(bs[16]), le16(17)
	total := le16(19)
	if total == 0 {
		total = le32(32)
	}
	fatSize := le16(22)
	if fatSize == 0 {
		fatSize = le32(36)
	}
	if reserved == 0 || nFATs == 0 || fatSize == 0 || total == 0 {
		return g, errors.New("boot sector fields are zero")
	}
	rootSectors := (rootEntries*32 + g.bytesPerSector - 1) / g.bytesPerSector
	firstData := reserved + nFATs*fatSize + rootSectors
	if firstData >= total || total*g.bytesPerSector > p.Size {
		return g, errors.New("boot sector describes a volume larger than its partition")
	}
	clusters := (total - firstData) / g.sectorsPerClust
	g.fatStart = p.Start + reserved*g.bytesPerSector
	g.dataStart = p.Start + firstData*g.bytesPerSector
	g.clusters = uint32(clusters)
	switch {
	case clusters < 4085:
		return g, errors.New("FAT12 volumes are not supported")
	case clusters < 65525:
		g.fatBits = 16
		g.rootStart = p.Start + (reserved+nFATs*fatSize)*g.bytesPerSector
		g.rootBytes = rootEntries * 32
	default:
		g.fatBits = 32
		g.rootCluster = uint32(le32(44))
	}
	return g, nil
}

func (g fatGeom) clusterBytes() int64 { return g.bytesPerSector * g.sectorsPerClust }

func (g fatGeom) clusterOffset(c uint32) (int64, error) {
	if c < 2 || c >= g.clusters+2 {
		return 0, fmt.Errorf("cluster %d outside the volume", c)
	}
	return g.dataStart + int64(c-2)*g.clusterBytes(), nil
}

// chain follows the allocation table from cluster c, at most max clusters.
func (g fatGeom) chain(d *Disk, c uint32, max int) ([]uint32, error) {
	var out []uint32
	buf := make([]byte, 4)
	for len(out) < max {
		if _, err := g.clusterOffset(c); err != nil {
			return nil, err
		}
		out = append(out, c)
		var next uint32
		if g.fatBits == 16 {
			if _, err := d.f.ReadAt(buf[:2], g.fatStart+int64(c)*2); err != nil {
				return nil, err
			}
			next = uint32(binary.LittleEndian.Uint16(buf))
			if next >= 0xfff8 {
				return out, nil
			}
		} else {
			if _, err := d.f.ReadAt(buf, g.fatStart+int64(c)*4); err != nil {
				return nil, err
			}
			next = binary.LittleEndian.Uint32(buf) & 0x0fffffff
			if next >= 0x0ffffff8 {
				return out, nil
			}
		}
		c = next
	}
	return nil, errors.New("cluster chain longer than the file it belongs to")
}

// shortName turns "autoboot.txt" into the 11-byte 8.3 directory name.
func shortName(name string) ([]byte, error) {
	base, ext, _ := strings.Cut(strings.ToUpper(name), ".")
	if len(base) == 0 || len(base) > 8 || len(ext) > 3 || strings.ContainsAny(base+ext, "/\\ .") {
		return nil, fmt.Errorf("%q has no 8.3 name: only root-directory 8.3 names can be rewritten in place", name)
	}
	out := []byte(fmt.Sprintf("%-8s%-3s", base, ext))
	return out, nil
}

// extent is a run of a file's bytes on the card.
type extent struct{ off, n int64 }

// locate finds a file in the root directory of FAT partition n and returns
// where its bytes lie, in order, and its length.
func (d *Disk) locate(n int, name string) ([]extent, int64, error) {
	p, err := d.Partition(n)
	if err != nil {
		return nil, 0, err
	}
	want, err := shortName(name)
	if err != nil {
		return nil, 0, err
	}
	g, err := readGeom(d, p)
	if err != nil {
		return nil, 0, fmt.Errorf("partition %d: %w", n, err)
	}
	var root []extent
	if g.fatBits == 16 {
		root = []extent{{g.rootStart, g.rootBytes}}
	} else {
		cs, err := g.chain(d, g.rootCluster, 4096)
		if err != nil {
			return nil, 0, fmt.Errorf("partition %d root directory: %w", n, err)
		}
		for _, c := range cs {
			off, _ := g.clusterOffset(c)
			root = append(root, extent{off, g.clusterBytes()})
		}
	}
	for _, e := range root {
		dir := make([]byte, e.n)
		if _, err := d.f.ReadAt(dir, e.off); err != nil {
			return nil, 0, fmt.Errorf("read root directory: %w", err)
		}
		for i := 0; i+32 <= len(dir); i += 32 {
			ent := dir[i : i+32]
			if ent[0] == 0 {
				return nil, 0, fmt.Errorf("%s: not in the root directory of partition %d", name, n)
			}
			if ent[0] == 0xe5 || ent[11]&0x0f == 0x0f || ent[11]&0x18 != 0 || !bytes.Equal(ent[:11], want) {
				continue
			}
			first := uint32(binary.LittleEndian.Uint16(ent[26:]))
			if g.fatBits == 32 {
				first |= uint32(binary.LittleEndian.Uint16(ent[20:])) << 16
			}
			size := int64(binary.LittleEndian.Uint32(ent[28:]))
			if size == 0 {
				return nil, 0, nil
			}
			need := int((size + g.clusterBytes() - 1) / g.clusterBytes())
			cs, err := g.chain(d, first, need)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: %w", name, err)
			}
			if len(cs) != need {
				return nil, 0, fmt.Errorf("%s: %d clusters hold a file of %d bytes", name, len(cs), size)
			}
			var out []extent
			left := size
			for _, c := range cs {
				off, _ := g.clusterOffset(c)
				k := min(left, g.clusterBytes())
				out = append(out, extent{off, k})
				left -= k
			}
			return out, size, nil
		}
	}
	return nil, 0, fmt.Errorf("%s: not in the root directory of partition %d", name, n)
}

// FileLength returns the length of a root-directory file of FAT partition n,
// as its directory entry gives it.
func (d *Disk) FileLength(n int, name string) (int64, error) {
	_, size, err := d.locate(n, name)
	return size, err
}

// RewriteFile replaces the bytes of a root-directory file of FAT partition n
// with content of exactly the same length, writing only the sectors the file
// owns (one write per cluster run, in order), then syncs and reads the file
// back. The allocation table and directory entry are not touched.
func (d *Disk) RewriteFile(n int, name string, content []byte) error {
	exts, size, err := d.locate(n, name)
	if err != nil {
		return err
	}
	if int64(len(content)) != size {
		return fmt.Errorf("%s: %d bytes to write over %d: %w", name, len(content), size, ErrLengthChanged)
	}
	pos := int64(0)
	for _, e := range exts {
		if _, err := d.Writer.WriteAt(content[pos:pos+e.n], e.off); err != nil {
			return fmt.Errorf("rewrite %s: %w", name, err)
		}
		pos += e.n
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("sync after rewriting %s: %w", name, err)
	}
	back := make([]byte, 0, size)
	for _, e := range exts {
		b := make([]byte, e.n)
		if _, err := d.f.ReadAt(b, e.off); err != nil {
			return fmt.Errorf("read back %s: %w", name, err)
		}
		back = append(back, b...)
	}
	if !bytes.Equal(back, content) {
		return fmt.Errorf("read back %s: content differs from what was written", name)
	}
	return nil
}
