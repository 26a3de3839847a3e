package pisim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

func TestRebootFlag(t *testing.T) {
	tests := []struct {
		param     string
		flag      bool
		partition int
	}{
		{"", false, 0},
		{"0 tryboot", true, 0},
		{"0 tryboot\n", true, 0},
		{"tryboot", false, 0}, // the kernel needs the leading space
		{" tryboot", true, 0},
		{"3", false, 3},
		{"3 tryboot", true, 3},
		{"62", false, 62},
		{"63", false, 0}, // 63 means halt to the firmware: not a partition
		{"99999999999999999999 tryboot", true, 0},
		{"0 trybootx", true, 0}, // strstr, as the kernel does
		{"2tryboot", false, 2},
	}
	for _, tc := range tests {
		flag, part := rebootFlag(tc.param)
		if flag != tc.flag || part != tc.partition {
			t.Errorf("rebootFlag(%q) = %v, %d; want %v, %d", tc.param, flag, part, tc.flag, tc.partition)
		}
	}
}

func FuzzRebootFlag(f *testing.F) {
	for _, s := range []string{"", "0 tryboot", "tryboot", "3", "62 tryboot", "63", "\t7 x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flag, part := rebootFlag(s)
		if flag != strings.Contains(s, " tryboot") {
			t.Errorf("rebootFlag(%q): flag %v", s, flag)
		}
		if part < 0 || part >= 63 {
			t.Errorf("rebootFlag(%q): partition %d out of 0..62", s, part)
		}
	})
}

func TestCommandLine(t *testing.T) {
	long := strings.Repeat("a", 3000)
	tests := []struct{ in, want string }{
		{"root=PARTUUID=1234abcd-05 rootwait\n", "root=PARTUUID=1234abcd-05 rootwait"},
		{"  a b  \r\nsecond line ignored\n", "a b"},
		{"", ""},
		{long, long[:commandLineSize-1]},
	}
	for _, tc := range tests {
		if got := commandLine([]byte(tc.in)); got != tc.want {
			t.Errorf("commandLine(%.40q) = %.40q, want %.40q", tc.in, got, tc.want)
		}
	}
}

// tableCard writes only a partition table: enough to resolve root=.
func tableCard(t testing.TB) *sdcard.Disk {
	tab, size, err := sdcard.Layout{AutobootSize: 1 << 20, BootSize: 1 << 20, RootSize: 1 << 20, DataSize: 1 << 20}.Table(0x1234abcd)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "card.img")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d, err := sdcard.Open(name, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestResolveRoot(t *testing.T) {
	card := tableCard(t)
	tests := []struct {
		blkdev, root string
		want         int // 0: error
	}{
		{"mmcblk0", "PARTUUID=1234abcd-05", 5},
		{"mmcblk0", "PARTUUID=1234ABCD-06", 6},
		{"mmcblk0", "PARTUUID=1234abcd-5", 0},
		{"mmcblk0", "PARTUUID=deadbeef-05", 0},
		{"mmcblk0", "PARTUUID=1234abcd-08", 0},
		{"mmcblk0", "/dev/mmcblk0p5", 5},
		{"mmcblk0", "/dev/mmcblk0p05", 0},
		{"mmcblk0", "/dev/mmcblk0p9", 0},
		{"mmcblk0", "/dev/sda5", 0},
		{"sda", "/dev/sda6", 6},
		{"nvme0n1", "/dev/nvme0n1p7", 7},
		{"mmcblk0", "UUID=0e8f4e5a-1c3b-4c1e-9d1e-2f3a4b5c6d7e", 0},
		{"mmcblk0", "LABEL=rootfs", 0},
	}
	for _, tc := range tests {
		fw := &firmware{card: card, blkdev: tc.blkdev}
		got, err := fw.resolveRoot(tc.root)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%s: resolveRoot(%q) = %d, want an error", tc.blkdev, tc.root, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: resolveRoot(%q) = %d, %v; want %d", tc.blkdev, tc.root, got, err, tc.want)
		}
	}
}

func FuzzResolveRoot(f *testing.F) {
	for _, s := range []string{"PARTUUID=1234abcd-05", "/dev/mmcblk0p6", "/dev/mmcblk0p", "PARTUUID=", "/dev/mmcblk0p-1", "/dev/mmcblk0p99999999999999999999"} {
		f.Add(s)
	}
	card := tableCard(f)
	fw := &firmware{card: card, blkdev: "mmcblk0"}
	f.Fuzz(func(t *testing.T, root string) {
		n, err := fw.resolveRoot(root)
		if err != nil {
			return
		}
		if _, ok := card.Table.Get(n); !ok {
			t.Errorf("resolveRoot(%q) = %d: not a partition of the card", root, n)
		}
		// A partition found must have a zeroed (blank) superblock here.
		if fw.checkExt4(n) == nil {
			t.Errorf("partition %d of a blank card has an ext4 superblock", n)
		}
	})
}
