package sdcard

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Partition numbers of the layout.
const (
	PartAutoboot = 1
	PartBootA    = 2
	PartBootB    = 3
	PartExtended = 4
	PartRootA    = 5
	PartRootB    = 6
	PartData     = 7
)

// Slot names one half of the A/B pair: a boot partition plus a root partition.
type Slot string

// The two slots.
const (
	SlotA Slot = "A"
	SlotB Slot = "B"
)

// BootPartition is the FAT partition of the slot (2 or 3).
func (s Slot) BootPartition() int {
	if s == SlotB {
		return PartBootB
	}
	return PartBootA
}

// RootPartition is the ext4 root partition of the slot (5 or 6).
func (s Slot) RootPartition() int {
	if s == SlotB {
		return PartRootB
	}
	return PartRootA
}

// Other is the other slot.
func (s Slot) Other() Slot {
	if s == SlotB {
		return SlotA
	}
	return SlotB
}

// Valid reports whether s is A or B.
func (s Slot) Valid() bool { return s == SlotA || s == SlotB }

// SlotForBootPartition maps boot partition 2 or 3 to its slot.
func SlotForBootPartition(n int) (Slot, bool) {
	switch n {
	case PartBootA:
		return SlotA, true
	case PartBootB:
		return SlotB, true
	}
	return "", false
}

// SlotForRootPartition maps root partition 5 or 6 to its slot.
func SlotForRootPartition(n int) (Slot, bool) {
	switch n {
	case PartRootA:
		return SlotA, true
	case PartRootB:
		return SlotB, true
	}
	return "", false
}

// Align is where every partition starts: a multiple of 4 MiB, the erase-block
// size SD cards are tuned for and what Raspberry Pi OS images use.
const Align = 4 << 20

// MiB is a mebibyte.
const MiB = 1 << 20

// Layout gives the partition sizes of a card. Zero values take the defaults.
type Layout struct {
	AutobootSize int64 // p1; default 16 MiB
	BootSize     int64 // p2 and p3 each; default 256 MiB
	RootSize     int64 // p5 and p6 each; default 1 GiB
	DataSize     int64 // p7; default 256 MiB (the data partition grows on first boot)
}

// Defaults returns l with zero sizes replaced by the defaults.
func (l Layout) Defaults() Layout {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.AutobootSize, 16*MiB)
	def(&l.BootSize, 256*MiB)
	def(&l.RootSize, 1024*MiB)
	def(&l.DataSize, 256*MiB)
	return l
}

func alignUp(v int64) int64 { return (v + Align - 1) / Align * Align }

// Table lays the partitions out on a disk with the given id, each start
// aligned to Align; logical partitions leave Align in front for their
// extended boot record. It also returns the size of the whole disk.
func (l Layout) Table(diskID uint32) (*Table, int64, error) {
	l = l.Defaults()
	for name, v := range map[string]int64{"autoboot": l.AutobootSize, "boot": l.BootSize, "root": l.RootSize, "data": l.DataSize} {
		if v < MiB || v%SectorSize != 0 {
			return nil, 0, fmt.Errorf("%s partition size %d: must be at least 1 MiB and a multiple of %d bytes", name, v, SectorSize)
		}
	}
	if diskID == 0 {
		return nil, 0, errors.New("disk id must not be zero: PARTUUIDs are derived from it")
	}
	t := &Table{DiskID: diskID}
	pos := int64(Align)
	add := func(n int, typ byte, size int64, boot bool) {
		t.Partitions = append(t.Partitions, Partition{Number: n, Type: typ, Start: pos, Size: size, Bootable: boot})
		pos = alignUp(pos + size)
	}
	add(PartAutoboot, TypeFAT16LBA, l.AutobootSize, false)
	add(PartBootA, TypeFAT32LBA, l.BootSize, false)
	add(PartBootB, TypeFAT32LBA, l.BootSize, false)
	extStart := pos
	t.Partitions = append(t.Partitions, Partition{Number: PartExtended, Type: TypeExtendedLBA, Start: extStart})
	for i, size := range []int64{l.RootSize, l.RootSize, l.DataSize} {
		pos += Align // room for the extended boot record
		t.Partitions = append(t.Partitions, Partition{Number: 5 + i, Type: TypeLinux, Start: pos, Size: size})
		pos = alignUp(pos + size)
	}
	t.Partitions[3].Size = pos - extStart
	return t, pos, nil
}

// CheckLayout reports whether t has the partitions of the A/B layout with
// the expected kinds. Any tool that writes to a card calls it first, so that a
// card with another layout is never written to.
func (t *Table) CheckLayout() error {
	want := []struct {
		n     int
		types []byte
		what  string
	}{
		{PartAutoboot, []byte{TypeFAT16LBA, TypeFAT32LBA, 0x06, 0x0b}, "autoboot FAT"},
		{PartBootA, []byte{TypeFAT16LBA, TypeFAT32LBA, 0x06, 0x0b}, "boot A FAT"},
		{PartBootB, []byte{TypeFAT16LBA, TypeFAT32LBA, 0x06, 0x0b}, "boot B FAT"},
		{PartExtended, []byte{TypeExtendedLBA, TypeExtendedCHS}, "extended"},
		{PartRootA, []byte{TypeLinux}, "root A"},
		{PartRootB, []byte{TypeLinux}, "root B"},
		{PartData, []byte{TypeLinux}, "data"},
	}
	for _, w := range want {
		p, ok := t.Get(w.n)
		if !ok {
			return fmt.Errorf("unexpected partition table: partition %d (%s) is missing", w.n, w.what)
		}
		found := false
		for _, typ := range w.types {
			found = found || p.Type == typ
		}
		if !found {
			return fmt.Errorf("unexpected partition table: partition %d (%s) has type %#02x", w.n, w.what, p.Type)
		}
	}
	if rA, _ := t.Get(PartRootA); true {
		if rB, _ := t.Get(PartRootB); rA.Size != rB.Size {
			return fmt.Errorf("unexpected partition table: root partitions differ in size (%d and %d bytes)", rA.Size, rB.Size)
		}
	}
	return nil
}

// SlotInfoFile is the file in each boot partition that says what the slot
// holds, so the version of a slot is known without mounting its root.
const SlotInfoFile = "ota-slot.json"

// SlotInfo is the content of SlotInfoFile.
type SlotInfo struct {
	Version    string `json:"version"`
	Counter    uint64 `json:"counter,omitempty"`     // release counter, for anti-rollback
	Compatible string `json:"compatible,omitempty"`  // board id the release is for
	RootSHA256 string `json:"root_sha256,omitempty"` // hash of the root image as written
	RootSize   int64  `json:"root_size,omitempty"`   // bytes of the root image
}

// maxSlotInfo bounds SlotInfoFile.
const maxSlotInfo = 4096

// SlotInfo reads and decodes the SlotInfoFile of slot s. A slot without
// one gives an error wrapping fs.ErrNotExist.
func (d *Disk) SlotInfo(s Slot) (SlotInfo, error) {
	b, err := d.ReadFile(s.BootPartition(), SlotInfoFile, maxSlotInfo)
	if err != nil {
		return SlotInfo{}, err
	}
	return ParseSlotInfo(b)
}

// ParseSlotInfo decodes a SlotInfoFile.
func ParseSlotInfo(b []byte) (SlotInfo, error) {
	var si SlotInfo
	if len(b) > maxSlotInfo {
		return si, fmt.Errorf("%s: %d bytes, more than %d", SlotInfoFile, len(b), maxSlotInfo)
	}
	if err := json.Unmarshal(b, &si); err != nil {
		return si, fmt.Errorf("%s: %w", SlotInfoFile, err)
	}
	if si.Version == "" {
		return si, fmt.Errorf("%s: no version", SlotInfoFile)
	}
	if si.RootSize < 0 {
		return si, fmt.Errorf("%s: negative root size", SlotInfoFile)
	}
	return si, nil
}
