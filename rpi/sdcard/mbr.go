// Package sdcard knows the SD card of an A/B gateway: its MBR partition table
// (with the extended partition that holds the root and data partitions), the
// fixed layout every tool of the project agrees on, and how to read and
// rewrite small files on its FAT partitions without mounting anything.
//
// The layout, as the existing tryboot systems use it:
//
//	p1 autoboot  FAT   autoboot.txt: which boot partition the firmware picks
//	p2 boot A    FAT   firmware, kernel, config.txt, cmdline.txt (root=PARTUUID=<id>-05)
//	p3 boot B    FAT   the same for slot B (root=PARTUUID=<id>-06)
//	p4 extended        holds p5..p7
//	p5 root A    ext4  read-only root of slot A
//	p6 root B    ext4  read-only root of slot B
//	p7 data      ext4  updater state, downloads, container data, app data
//
// go-diskfs reads MBR primary partitions only, so the table (MBR plus the
// chain of extended boot records) is read and written here.
package sdcard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// SectorSize is the logical sector size of every card and image handled here.
const SectorSize = 512

// Partition types written by the image builder.
const (
	TypeFAT16LBA    byte = 0x0e
	TypeFAT32LBA    byte = 0x0c
	TypeExtendedLBA byte = 0x0f
	TypeExtendedCHS byte = 0x05
	TypeLinux       byte = 0x83
)

// maxLogical bounds the extended boot record chain, so that a looping or
// hostile chain cannot keep the reader busy.
const maxLogical = 60

// ErrNoTable is returned when sector 0 carries no MBR signature.
var ErrNoTable = errors.New("no MBR partition table (missing 0x55AA signature)")

// Partition is one entry of the table, numbered as Linux numbers them:
// 1-4 primary, 5 and up logical.
type Partition struct {
	Number   int
	Type     byte
	Bootable bool
	Start    int64 // first byte on the disk
	Size     int64 // length in bytes
}

// End is the first byte after the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// Table is an MBR partition table with its logical partitions.
type Table struct {
	DiskID     uint32
	Partitions []Partition // sorted by Number
}

// Get returns partition n.
func (t *Table) Get(n int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// PartUUID is the PARTUUID Linux derives for partition n of an MBR disk:
// the disk id in hex, a dash, the partition number in two hex digits.
func PartUUID(diskID uint32, n int) string {
	return fmt.Sprintf("%08x-%02x", diskID, n)
}

// ReadTable reads the MBR and the extended boot record chain from r.
// size is the size of the disk; every partition must lie inside it.
func ReadTable(r io.ReaderAt, size int64) (*Table, error) {
	mbr := make([]byte, SectorSize)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, ErrNoTable
	}
	t := &Table{DiskID: binary.LittleEndian.Uint32(mbr[440:444])}
	var ext *Partition
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		p, ok, err := parseEntry(e, 0, size)
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", i+1, err)
		}
		if !ok {
			continue
		}
		p.Number = i + 1
		t.Partitions = append(t.Partitions, p)
		if p.Type == TypeExtendedLBA || p.Type == TypeExtendedCHS {
			if ext != nil {
				return nil, errors.New("more than one extended partition")
			}
			pp := p
			ext = &pp
		}
	}
	if ext != nil {
		logical, err := readEBRChain(r, *ext, size)
		if err != nil {
			return nil, err
		}
		t.Partitions = append(t.Partitions, logical...)
	}
	sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Number < t.Partitions[j].Number })
	if err := t.checkOverlap(); err != nil {
		return nil, err
	}
	return t, nil
}

// parseEntry decodes one 16-byte entry whose LBA is relative to base (bytes).
func parseEntry(e []byte, base, diskSize int64) (Partition, bool, error) {
	typ := e[4]
	lba := int64(binary.LittleEndian.Uint32(e[8:12]))
	n := int64(binary.LittleEndian.Uint32(e[12:16]))
	if typ == 0 || n == 0 {
		return Partition{}, false, nil
	}
	if e[0] != 0 && e[0] != 0x80 {
		return Partition{}, false, fmt.Errorf("bad status byte %#x", e[0])
	}
	p := Partition{Type: typ, Bootable: e[0] == 0x80, Start: base + lba*SectorSize, Size: n * SectorSize}
	if lba == 0 || p.End() > diskSize {
		return Partition{}, false, fmt.Errorf("sectors %d+%d lie outside the disk of %d bytes", lba, n, diskSize)
	}
	return p, true, nil
}

func readEBRChain(r io.ReaderAt, ext Partition, size int64) ([]Partition, error) {
	var out []Partition
	ebr := ext.Start
	buf := make([]byte, SectorSize)
	for i := 0; ; i++ {
		if i >= maxLogical {
			return nil, fmt.Errorf("extended partition chain longer than %d entries", maxLogical)
		}
		if ebr < ext.Start || ebr+SectorSize > ext.End() {
			return nil, fmt.Errorf("extended boot record at byte %d lies outside the extended partition", ebr)
		}
		if _, err := r.ReadAt(buf, ebr); err != nil {
			return nil, fmt.Errorf("read extended boot record at byte %d: %w", ebr, err)
		}
		if buf[510] != 0x55 || buf[511] != 0xaa {
			return nil, fmt.Errorf("extended boot record at byte %d has no signature", ebr)
		}
		p, ok, err := parseEntry(buf[446:462], ebr, size)
		if err != nil {
			return nil, fmt.Errorf("logical partition %d: %w", 5+i, err)
		}
		if ok {
			if p.Start < ext.Start || p.End() > ext.End() {
				return nil, fmt.Errorf("logical partition %d lies outside the extended partition", 5+i)
			}
			p.Number = 5 + i
			out = append(out, p)
		}
		next := buf[462:478]
		nlba := int64(binary.LittleEndian.Uint32(next[8:12]))
		if next[4] == 0 || nlba == 0 {
			return out, nil
		}
		nextEBR := ext.Start + nlba*SectorSize
		if nextEBR <= ebr {
			return nil, fmt.Errorf("extended boot record chain goes backwards at byte %d", ebr)
		}
		ebr = nextEBR
	}
}

func (t *Table) checkOverlap() error {
	var ps []Partition
	for _, p := range t.Partitions {
		if p.Type == TypeExtendedLBA || p.Type == TypeExtendedCHS {
			continue
		}
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Start < ps[j].Start })
	for i := 1; i < len(ps); i++ {
		if ps[i].Start < ps[i-1].End() {
			return fmt.Errorf("partitions %d and %d overlap", ps[i-1].Number, ps[i].Number)
		}
	}
	return nil
}

// Write writes the MBR and the extended boot records of t to w. Logical
// partitions need one free sector in front of each for their record; the
// first one's record is the first sector of the extended partition.
func (t *Table) Write(w io.WriterAt) error {
	mbr := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(mbr[440:444], t.DiskID)
	mbr[510], mbr[511] = 0x55, 0xaa
	var ext *Partition
	var logical []Partition
	for _, p := range t.Partitions {
		switch {
		case p.Number >= 1 && p.Number <= 4:
			putEntry(mbr[446+16*(p.Number-1):], p, 0)
			if p.Type == TypeExtendedLBA || p.Type == TypeExtendedCHS {
				pp := p
				ext = &pp
			}
		case p.Number >= 5:
			logical = append(logical, p)
		default:
			return fmt.Errorf("bad partition number %d", p.Number)
		}
	}
	if len(logical) > 0 && ext == nil {
		return errors.New("logical partitions need an extended partition")
	}
	sort.Slice(logical, func(i, j int) bool { return logical[i].Number < logical[j].Number })
	if _, err := w.WriteAt(mbr, 0); err != nil {
		return fmt.Errorf("write MBR: %w", err)
	}
	for i, p := range logical {
		if p.Number != 5+i {
			return fmt.Errorf("logical partitions must be numbered from 5 without gaps, got %d", p.Number)
		}
		ebrAt := ext.Start
		if i > 0 {
			ebrAt = p.Start - SectorSize
		}
		if p.Start-SectorSize < ebrAt || ebrAt < ext.Start || p.End() > ext.End() {
			return fmt.Errorf("logical partition %d has no room for its extended boot record", p.Number)
		}
		ebr := make([]byte, SectorSize)
		ebr[510], ebr[511] = 0x55, 0xaa
		putEntry(ebr[446:], p, ebrAt)
		if i+1 < len(logical) {
			nextEBR := logical[i+1].Start - SectorSize
			putEntry(ebr[462:], Partition{Type: TypeExtendedCHS, Start: nextEBR, Size: logical[i+1].End() - nextEBR}, ext.Start)
		}
		if _, err := w.WriteAt(ebr, ebrAt); err != nil {
			return fmt.Errorf("write extended boot record: %w", err)
		}
	}
	return nil
}

// putEntry writes p as a 16-byte entry with its LBA relative to base. CHS
// fields carry the "use LBA" marker, as current partitioning tools do for
// partitions beyond the CHS limit.
func putEntry(e []byte, p Partition, base int64) {
	if p.Bootable {
		e[0] = 0x80
	}
	copy(e[1:4], []byte{0xfe, 0xff, 0xff})
	e[4] = p.Type
	copy(e[5:8], []byte{0xfe, 0xff, 0xff})
	binary.LittleEndian.PutUint32(e[8:12], uint32((p.Start-base)/SectorSize))
	binary.LittleEndian.PutUint32(e[12:16], uint32(p.Size/SectorSize))
}
