package rpi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeRoot creates files (path relative to the root -> content) in a new
// device root.
func writeRoot(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	for name, b := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func bootloaderRoot(t *testing.T, b Bootloader) string {
	t.Helper()
	files := map[string][]byte{}
	for name, v := range b.Files() {
		files[BootloaderDir+"/"+name] = v
	}
	return writeRoot(t, files)
}

func TestBootloaderRoundTrip(t *testing.T) {
	for _, want := range []Bootloader{
		{Partition: 2, BootMode: BootModeSD},
		{Tryboot: true, Partition: 3, BootMode: BootModeNVMe, Capabilities: 0x7f, HasCapabilities: true,
			BuildTimestamp: time.Unix(1700000000, 0).UTC(), HasBuildTimestamp: true},
		{Tryboot: true, Partition: 0, BootMode: BootModeUSBMSD, Capabilities: 0, HasCapabilities: true},
		{Partition: 63, BuildTimestamp: time.Unix(0, 0).UTC(), HasBuildTimestamp: true},
	} {
		got, err := ReadBootloader(bootloaderRoot(t, want))
		if err != nil {
			t.Fatalf("ReadBootloader(%+v): %v", want, err)
		}
		if got != want {
			t.Errorf("round trip:\ngot  %+v\nwant %+v", got, want)
		}
	}
}

func TestBootloaderFiles(t *testing.T) {
	b := Bootloader{Tryboot: true, Partition: 3, BootMode: BootModeSD}
	f := b.Files()
	if got, want := string(f["tryboot"]), "\x00\x00\x00\x01"; got != want {
		t.Errorf("tryboot = %q, want %q", got, want)
	}
	if got, want := string(f["partition"]), "\x00\x00\x00\x03"; got != want {
		t.Errorf("partition = %q, want %q", got, want)
	}
	if _, ok := f["capabilities"]; ok {
		t.Error("capabilities present without HasCapabilities")
	}
	if _, ok := f["build-timestamp"]; ok {
		t.Error("build-timestamp present without HasBuildTimestamp")
	}
}

func TestReadBootloaderErrors(t *testing.T) {
	good := Bootloader{Partition: 2, BootMode: BootModeSD}.Files()
	tests := []struct {
		name   string
		change func(map[string][]byte)
		want   string
	}{
		{"no tryboot", func(m map[string][]byte) { delete(m, "tryboot") }, "tryboot"},
		{"no partition", func(m map[string][]byte) { delete(m, "partition") }, "partition"},
		{"short", func(m map[string][]byte) { m["tryboot"] = []byte{0, 1} }, "2 bytes"},
		{"long", func(m map[string][]byte) { m["partition"] = make([]byte, 8) }, "5 bytes"},
		{"empty optional", func(m map[string][]byte) { m["build-timestamp"] = nil }, "0 bytes"},
		{"partition out of range", func(m map[string][]byte) { m["partition"] = []byte{0, 0, 1, 0} }, "more than 63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string][]byte{}
			for k, v := range good {
				m[k] = v
			}
			tt.change(m)
			files := map[string][]byte{}
			for k, v := range m {
				files[BootloaderDir+"/"+k] = v
			}
			_, err := ReadBootloader(writeRoot(t, files))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := ReadBootloader(t.TempDir()); err == nil {
		t.Error("ReadBootloader of an empty root succeeded")
	}
}

func TestReadBootloaderOptionalAbsent(t *testing.T) {
	root := writeRoot(t, map[string][]byte{
		BootloaderDir + "/tryboot":   {0, 0, 0, 1},
		BootloaderDir + "/partition": {0, 0, 0, 3},
	})
	got, err := ReadBootloader(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Bootloader{Tryboot: true, Partition: 3}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestBootMode(t *testing.T) {
	tests := []struct {
		mode   BootMode
		str    string
		disk   string
		part5  string
		errDev bool
	}{
		{BootModeSD, "SD/eMMC", "mmcblk0", "mmcblk0p5", false},
		{BootModeUSBMSD, "USB-MSD", "sda", "sda5", false},
		{BootModeNVMe, "NVMe", "nvme0n1", "nvme0n1p5", false},
		{BootModeNetwork, "network", "", "", true},
		{0, "boot-mode(0)", "", "", true},
		{42, "boot-mode(42)", "", "", true},
	}
	for _, tt := range tests {
		if got := tt.mode.String(); got != tt.str {
			t.Errorf("BootMode(%d).String() = %q, want %q", uint32(tt.mode), got, tt.str)
		}
		disk, err := BlockDevice(tt.mode)
		if (err != nil) != tt.errDev || disk != tt.disk {
			t.Errorf("BlockDevice(%v) = %q, %v; want %q, error %v", tt.mode, disk, err, tt.disk, tt.errDev)
		}
		if err == nil {
			if got := PartitionDevice(disk, 5); got != tt.part5 {
				t.Errorf("PartitionDevice(%q, 5) = %q, want %q", disk, got, tt.part5)
			}
		}
	}
	if got := PartitionDevice("loop0", 12); got != "loop0p12" {
		t.Errorf("PartitionDevice(loop0, 12) = %q", got)
	}
}

func TestBootedPartitionOnTrial(t *testing.T) {
	ab := NewAutoboot(2, 3)
	noTrial, _ := ParseAutoboot([]byte("[all]\nboot_partition=2\n"))
	tests := []struct {
		name    string
		b       Bootloader
		a       *Autoboot
		booted  int
		onTrial bool
	}{
		{"normal boot", Bootloader{Partition: 2}, ab, 2, false},
		{"trial boot", Bootloader{Tryboot: true, Partition: 3}, ab, 3, true},
		{"flag set but committed partition booted", Bootloader{Tryboot: true, Partition: 2}, ab, 2, false},
		{"trial partition without flag", Bootloader{Partition: 3}, ab, 3, false},
		{"Pi 5 quirk, normal boot", Bootloader{Partition: 0}, ab, 2, false},
		{"Pi 5 quirk, trial boot", Bootloader{Tryboot: true, Partition: 0}, ab, 3, true},
		{"flag without [tryboot]", Bootloader{Tryboot: true, Partition: 2}, noTrial, 2, false},
		{"Pi 5 quirk, flag without [tryboot]", Bootloader{Tryboot: true}, noTrial, 2, false},
		{"no autoboot.txt", Bootloader{Tryboot: true, Partition: 3}, nil, 3, false},
		{"nothing known", Bootloader{}, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.BootedPartition(tt.a); got != tt.booted {
				t.Errorf("BootedPartition = %d, want %d", got, tt.booted)
			}
			if got := tt.b.OnTrial(tt.a); got != tt.onTrial {
				t.Errorf("OnTrial = %v, want %v", got, tt.onTrial)
			}
		})
	}
}

func TestCmdlineRoot(t *testing.T) {
	tests := []struct{ in, want string }{
		{"console=serial0,115200 root=PARTUUID=1234abcd-05 rootfstype=ext4 ro", "PARTUUID=1234abcd-05"},
		{"root=/dev/mmcblk0p5", "/dev/mmcblk0p5"},
		{"root=/dev/sda5 quiet root=PARTUUID=1234abcd-06", "PARTUUID=1234abcd-06"},
		{"quiet  rootwait\troot=/dev/x\n", "/dev/x"},
		{"rootfstype=ext4 rootwait", ""},
		{"", ""},
		{"quiet -- root=/dev/init-arg", ""},
		{"root=/dev/a -- root=/dev/b", "/dev/a"},
		{`root="PARTUUID=1234abcd-05" x`, "PARTUUID=1234abcd-05"},
		{`dyndbg="file x +p" root=/dev/y`, "/dev/y"},
		{"noroot=/dev/z", ""},
	}
	for _, tt := range tests {
		if got := CmdlineRoot(tt.in); got != tt.want {
			t.Errorf("CmdlineRoot(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadCmdline(t *testing.T) {
	root := writeRoot(t, map[string][]byte{CmdlineFile: []byte("coherent_pool=1M root=PARTUUID=0a0b0c0d-05 rootwait\n")})
	got, err := ReadCmdline(root)
	if err != nil {
		t.Fatal(err)
	}
	if want := "coherent_pool=1M root=PARTUUID=0a0b0c0d-05 rootwait"; got != want {
		t.Errorf("ReadCmdline = %q, want %q", got, want)
	}
	long := writeRoot(t, map[string][]byte{CmdlineFile: []byte(strings.Repeat("x", maxCmdline+1))})
	if _, err := ReadCmdline(long); err == nil {
		t.Error("ReadCmdline of an oversized command line succeeded")
	}
	if _, err := ReadCmdline(t.TempDir()); err == nil {
		t.Error("ReadCmdline without proc/cmdline succeeded")
	}
}

// FuzzCmdlineRoot: any command line splits without panicking, and the root
// found is one parameter: quotes removed, white space only where quoted.
func FuzzCmdlineRoot(f *testing.F) {
	f.Add("console=serial0,115200 root=PARTUUID=1234abcd-05 rootwait")
	f.Fuzz(func(t *testing.T, s string) {
		root := CmdlineRoot(s)
		if strings.Contains(root, `"`) {
			t.Fatalf("CmdlineRoot(%q) = %q keeps a quote", s, root)
		}
		if strings.ContainsAny(root, " \t\n") && !strings.Contains(s, `"`) {
			t.Fatalf("CmdlineRoot(%q) = %q spans parameters", s, root)
		}
	})
}
