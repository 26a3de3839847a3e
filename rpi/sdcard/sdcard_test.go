package sdcard_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/rpi/sdcard/sdcardtest"
)

func writeTable(t *testing.T, l sdcard.Layout, id uint32) (string, *sdcard.Table) {
	t.Helper()
	tab, size, err := l.Table(id)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f); err != nil {
		t.Fatal(err)
	}
	return p, tab
}

func TestTableRoundTrip(t *testing.T) {
	p, want := writeTable(t, sdcard.Layout{}, 0xdeadbeef)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	got, err := sdcard.ReadTable(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskID != want.DiskID {
		t.Errorf("disk id: got %08x, want %08x", got.DiskID, want.DiskID)
	}
	if len(got.Partitions) != 7 {
		t.Fatalf("got %d partitions, want 7: %+v", len(got.Partitions), got.Partitions)
	}
	for i, p := range got.Partitions {
		if p != want.Partitions[i] {
			t.Errorf("partition %d: got %+v, want %+v", i+1, p, want.Partitions[i])
		}
	}
	if err := got.CheckLayout(); err != nil {
		t.Error(err)
	}
}

// TestTableAgainstSfdisk checks the table with util-linux's reading of it.
func TestTableAgainstSfdisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not found (Debian package fdisk)")
	}
	p, tab := writeTable(t, sdcard.Layout{AutobootSize: 16 << 20, BootSize: 64 << 20, RootSize: 128 << 20, DataSize: 32 << 20}, 0x0badcafe)
	if out, err := exec.Command("sfdisk", "--verify", p).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Fatalf("sfdisk --verify: %v\n%s", err, out)
	}
	out, err := exec.Command("sfdisk", "--json", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		PartitionTable struct {
			ID         string `json:"id"`
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
				Size  int64  `json:"size"`
				Type  string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatal(err)
	}
	if got, want := dump.PartitionTable.ID, "0x0badcafe"; got != want {
		t.Errorf("sfdisk disk id: got %s, want %s", got, want)
	}
	if len(dump.PartitionTable.Partitions) != 7 {
		t.Fatalf("sfdisk sees %d partitions, want 7", len(dump.PartitionTable.Partitions))
	}
	for i, sp := range dump.PartitionTable.Partitions {
		want := tab.Partitions[i]
		if !strings.HasSuffix(sp.Node, "img"+string(rune('1'+i))) {
			t.Errorf("sfdisk partition %d is %s", i+1, sp.Node)
		}
		if sp.Start*512 != want.Start || (want.Number != sdcard.PartExtended && sp.Size*512 != want.Size) {
			t.Errorf("partition %d: sfdisk start %d size %d, want %d %d", i+1, sp.Start*512, sp.Size*512, want.Start, want.Size)
		}
	}
}

func TestReadTableRejects(t *testing.T) {
	small := sdcard.Layout{AutobootSize: sdcard.MiB, BootSize: sdcard.MiB, RootSize: sdcard.MiB, DataSize: sdcard.MiB}
	p, tab := writeTable(t, small, 1)
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(good))
	ext, _ := tab.Get(sdcard.PartExtended)
	cases := []struct {
		name string
		edit func(b []byte)
	}{
		{"no signature", func(b []byte) { b[510] = 0 }},
		{"partition past the end", func(b []byte) { b[446+16+12+3] = 0x7f }},
		{"bad status", func(b []byte) { b[446] = 0x12 }},
		{"ebr without signature", func(b []byte) { b[ext.Start+510] = 0 }},
		{"overlap", func(b []byte) {
			// partition 3 starts where partition 2 starts
			copy(b[446+32+8:446+32+12], b[446+16+8:446+16+12])
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(good[:ext.Start+4096])
			c.edit(b)
			_, err := sdcard.ReadTable(sized{bytes.NewReader(b), size}, size)
			if err == nil {
				t.Fatalf("accepted a table with %s", c.name)
			}
		})
	}
}

// sized lets a short buffer stand for a large disk: reads past its end see zeros.
type sized struct {
	r    *bytes.Reader
	size int64
}

func (s sized) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(p, off)
	if err != nil && off+int64(len(p)) <= s.size {
		clear(p[n:])
		return len(p), nil
	}
	return n, err
}

func TestCheckLayoutRefusesOtherTables(t *testing.T) {
	tab, _, _ := sdcard.Layout{}.Table(7)
	tab.Partitions = tab.Partitions[:3]
	if err := tab.CheckLayout(); err == nil || !strings.Contains(err.Error(), "partition 4") {
		t.Fatalf("got %v, want a missing partition 4", err)
	}
	tab, _, _ = sdcard.Layout{}.Table(7)
	tab.Partitions[4].Type = 0x0c
	if err := tab.CheckLayout(); err == nil {
		t.Fatal("accepted a FAT root partition")
	}
}

func TestLayoutRejectsBadSizes(t *testing.T) {
	if _, _, err := (sdcard.Layout{RootSize: 1000}).Table(1); err == nil {
		t.Error("accepted a root of 1000 bytes")
	}
	if _, _, err := (sdcard.Layout{}).Table(0); err == nil {
		t.Error("accepted disk id 0")
	}
}

func TestReadAndRewriteOnRealCard(t *testing.T) {
	img := sdcardtest.Make(t, t.TempDir(), sdcardtest.Card{VersionB: "2.0.0"})
	d, err := sdcard.Open(img, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Table.CheckLayout(); err != nil {
		t.Fatal(err)
	}
	ab, err := d.ReadFile(sdcard.PartAutoboot, "autoboot.txt", 512)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ab, sdcardtest.CanonicalAutoboot(2, 3)) {
		t.Fatalf("autoboot.txt read back as %q", ab)
	}
	for _, part := range []int{sdcard.PartBootA, sdcard.PartBootB} {
		b, err := d.ReadFile(part, sdcard.SlotInfoFile, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sdcard.ParseSlotInfo(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.ReadFile(sdcard.PartAutoboot, "autoboot.txt", 100); !errors.Is(err, sdcard.ErrFileTooLarge) {
		t.Errorf("limit: got %v, want ErrFileTooLarge", err)
	}
	if _, err := d.ReadFile(sdcard.PartAutoboot, "nothere.txt", 100); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want ErrNotExist", err)
	}

	// A same-length rewrite is one write of one sector.
	var rec recorder
	rec.w = d.Writer
	d.Writer = &rec
	next := sdcardtest.CanonicalAutoboot(3, 2)
	if err := d.RewriteFile(sdcard.PartAutoboot, "autoboot.txt", next); err != nil {
		t.Fatal(err)
	}
	if len(rec.writes) != 1 || rec.writes[0] != 512 {
		t.Errorf("rewrite made writes of %v bytes, want one of 512", rec.writes)
	}
	got, err := d.ReadFile(sdcard.PartAutoboot, "autoboot.txt", 512)
	if err != nil || !bytes.Equal(got, next) {
		t.Fatalf("after rewrite: %q, %v", got, err)
	}
	if err := d.RewriteFile(sdcard.PartAutoboot, "autoboot.txt", next[:100]); !errors.Is(err, sdcard.ErrLengthChanged) {
		t.Errorf("short rewrite: got %v, want ErrLengthChanged", err)
	}
	// cmdline.txt lives on FAT32 and is rewritten the same way.
	cl, err := d.ReadFile(sdcard.PartBootB, "cmdline.txt", 4096)
	if err != nil {
		t.Fatal(err)
	}
	cl2 := bytes.Replace(cl, []byte("1234abcd-06"), []byte("cafef00d-06"), 1)
	if err := d.RewriteFile(sdcard.PartBootB, "cmdline.txt", cl2); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.ReadFile(sdcard.PartBootB, "cmdline.txt", 4096); !bytes.Equal(got, cl2) {
		t.Fatalf("cmdline after rewrite: %q", got)
	}
	d.Close()
	if _, err := exec.LookPath("fsck.vfat"); err == nil {
		for _, n := range []int{sdcard.PartAutoboot, sdcard.PartBootB} {
			fsckPartition(t, img, n)
		}
	}
}

func fsckPartition(t *testing.T, img string, n int) {
	t.Helper()
	d, err := sdcard.Open(img, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sec, _ := d.Section(n)
	b := make([]byte, sec.Size())
	if _, err := sec.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "part.vfat")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.vfat", "-n", p).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n partition %d: %v\n%s", n, err, out)
	}
}

type recorder struct {
	w interface {
		WriteAt([]byte, int64) (int, error)
	}
	writes []int
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	r.writes = append(r.writes, len(p))
	return r.w.WriteAt(p, off)
}

func FuzzReadTable(f *testing.F) {
	tab, _, _ := sdcard.Layout{AutobootSize: sdcard.MiB, BootSize: sdcard.MiB, RootSize: sdcard.MiB, DataSize: sdcard.MiB}.Table(0x1234)
	var buf writerAtBuf
	if err := tab.Write(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.b[:512])
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		size := int64(len(b)) * 4096
		got, err := sdcard.ReadTable(sized{bytes.NewReader(b), size}, size)
		if err != nil {
			return
		}
		for _, p := range got.Partitions {
			if p.Start <= 0 || p.Size <= 0 || p.End() > size {
				t.Fatalf("accepted partition %+v on a disk of %d bytes", p, size)
			}
		}
	})
}

type writerAtBuf struct{ b []byte }

func (w *writerAtBuf) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(w.b) {
		w.b = append(w.b, make([]byte, need-len(w.b))...)
	}
	copy(w.b[off:], p)
	return len(p), nil
}
