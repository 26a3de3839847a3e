package rpi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// BootloaderDir is where the kernel shows the properties the bootloader and
// firmware put in the device tree's /chosen/bootloader node, relative to the
// device root.
const BootloaderDir = "proc/device-tree/chosen/bootloader"

// CmdlineFile is the kernel command line, relative to the device root.
const CmdlineFile = "proc/cmdline"

// Names of the property files in BootloaderDir.
const (
	propTryboot        = "tryboot"
	propPartition      = "partition"
	propBootMode       = "boot-mode"
	propCapabilities   = "capabilities"
	propBuildTimestamp = "build-timestamp"
)

// CapTrybootAB is the bit of the capabilities property set by bootloaders
// that honour tryboot_a_b and the [tryboot] filter of autoboot.txt.
const CapTrybootAB = 1 << 2

// BootMode is the medium the bootloader loaded the kernel from, as in the
// BOOT_ORDER values of the bootloader configuration documentation
// (https://www.raspberrypi.com/documentation/computers/raspberry-pi.html#BOOT_ORDER).
type BootMode uint32

// Boot modes.
const (
	BootModeSD        BootMode = 1 // SD card or eMMC
	BootModeNetwork   BootMode = 2
	BootModeRPIBoot   BootMode = 3
	BootModeUSBMSD    BootMode = 4
	BootModeBCMUSBMSD BootMode = 5 // USB mass storage on the Pi 4's USB-C port
	BootModeNVMe      BootMode = 6
	BootModeHTTP      BootMode = 7
)

func (m BootMode) String() string {
	switch m {
	case BootModeSD:
		return "SD/eMMC"
	case BootModeNetwork:
		return "network"
	case BootModeRPIBoot:
		return "rpiboot"
	case BootModeUSBMSD:
		return "USB-MSD"
	case BootModeBCMUSBMSD:
		return "BCM-USB-MSD"
	case BootModeNVMe:
		return "NVMe"
	case BootModeHTTP:
		return "HTTP"
	}
	return fmt.Sprintf("boot-mode(%d)", uint32(m))
}

// Bootloader holds what the bootloader told the kernel about this boot.
type Bootloader struct {
	Tryboot           bool      // the one-shot tryboot flag was set for this boot
	Partition         int       // partition the firmware loaded from (0 on Pi 5 bootloaders before 2024-05-13)
	BootMode          BootMode  // 0 when the property is absent
	Capabilities      uint32    // valid when HasCapabilities
	BuildTimestamp    time.Time // bootloader build time, UTC; valid when HasBuildTimestamp
	HasCapabilities   bool
	HasBuildTimestamp bool
}

// ReadBootloader reads BootloaderDir under root. tryboot and partition are
// required; boot-mode, capabilities and build-timestamp are optional (older
// bootloaders and the Pi 3 do not set them). Each property must be a 4-byte
// big-endian integer.
func ReadBootloader(root string) (Bootloader, error) {
	dir := filepath.Join(root, BootloaderDir)
	var b Bootloader
	read := func(name string, required bool) (uint32, bool, error) {
		v, err := readU32(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) && !required {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("read bootloader property: %w", err)
		}
		return v, true, nil
	}
	v, _, err := read(propTryboot, true)
	if err != nil {
		return b, err
	}
	b.Tryboot = v != 0
	if v, _, err = read(propPartition, true); err != nil {
		return b, err
	}
	if v > maxBootPartition {
		return b, fmt.Errorf("read bootloader property: %s is %d, more than %d", propPartition, v, maxBootPartition)
	}
	b.Partition = int(v)
	if v, _, err = read(propBootMode, false); err != nil {
		return b, err
	}
	b.BootMode = BootMode(v)
	if b.Capabilities, b.HasCapabilities, err = read(propCapabilities, false); err != nil {
		return b, err
	}
	if v, b.HasBuildTimestamp, err = read(propBuildTimestamp, false); err != nil {
		return b, err
	}
	if b.HasBuildTimestamp {
		b.BuildTimestamp = time.Unix(int64(v), 0).UTC()
	}
	return b, nil
}

// readU32 reads a device-tree cell: exactly 4 bytes, big-endian.
func readU32(name string) (uint32, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var buf [5]byte
	n, err := io.ReadFull(f, buf[:])
	if err != io.ErrUnexpectedEOF && err != nil && err != io.EOF {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if n != 4 {
		return 0, fmt.Errorf("%s: %d bytes, want a 4-byte big-endian integer", name, n)
	}
	return binary.BigEndian.Uint32(buf[:4]), nil
}

// Files returns the property files that describe b, keyed by their name in
// BootloaderDir, so that a virtual Pi presents exactly what ReadBootloader
// reads. The optional properties appear only when their Has flag is set.
func (b Bootloader) Files() map[string][]byte {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	tryboot := uint32(0)
	if b.Tryboot {
		tryboot = 1
	}
	m := map[string][]byte{
		propTryboot:   u32(tryboot),
		propPartition: u32(uint32(b.Partition)),
		propBootMode:  u32(uint32(b.BootMode)),
	}
	if b.HasCapabilities {
		m[propCapabilities] = u32(b.Capabilities)
	}
	if b.HasBuildTimestamp {
		m[propBuildTimestamp] = u32(uint32(b.BuildTimestamp.Unix()))
	}
	return m
}

// BlockDevice is the kernel's name for the disk the bootloader booted from.
func BlockDevice(mode BootMode) (string, error) {
	switch mode {
	case BootModeSD:
		return "mmcblk0", nil
	case BootModeUSBMSD:
		return "sda", nil
	case BootModeNVMe:
		return "nvme0n1", nil
	}
	return "", fmt.Errorf("no block device known for boot mode %v", mode)
}

// PartitionDevice is the kernel's name for partition n of disk: a "p" goes
// between the two when the disk name ends in a digit (mmcblk0p5, nvme0n1p5,
// but sda5).
func PartitionDevice(disk string, n int) string {
	if disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

// BootedPartition is the partition the firmware booted from. Pi 5
// bootloaders before 2024-05-13 report 0; since no partition is numbered 0,
// a 0 is resolved the way the firmware chose it: from the tryboot flag and
// autoboot.txt. It returns 0 when that is unknown too.
func (b Bootloader) BootedPartition(a *Autoboot) int {
	if b.Partition != 0 || a == nil {
		return b.Partition
	}
	return a.BootPartition(b.Tryboot)
}

// OnTrial reports whether this is a real trial boot: the tryboot flag was set
// and the firmware booted the [tryboot] partition of autoboot.txt. The flag
// alone is not enough (a trial armed without a [tryboot] section boots the
// committed partition).
func (b Bootloader) OnTrial(a *Autoboot) bool {
	if !b.Tryboot || a == nil {
		return false
	}
	t := a.Trial()
	return t != 0 && b.BootedPartition(a) == t
}

// maxCmdline bounds the kernel command line read; the kernel's own limit is
// 2048 bytes on arm64 and 1024 on 32-bit ARM.
const maxCmdline = 8 << 10

// ReadCmdline reads CmdlineFile under root, without surrounding white space.
func ReadCmdline(root string) (string, error) {
	name := filepath.Join(root, CmdlineFile)
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("read kernel command line: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline+1))
	if err != nil {
		return "", fmt.Errorf("read kernel command line: %w", err)
	}
	if len(b) > maxCmdline {
		return "", fmt.Errorf("read kernel command line: %s is longer than %d bytes", name, maxCmdline)
	}
	return strings.TrimSpace(strings.TrimRight(string(b), "\x00")), nil
}

// CmdlineRoot returns the value of the last root= parameter of a kernel
// command line (the kernel keeps the last one), or "" if there is none.
// Parameters after "--" belong to init and are ignored; double quotes group
// a value as the kernel's parser does.
func CmdlineRoot(cmdline string) string {
	root := ""
	for _, p := range cmdlineParams(cmdline) {
		if p == "--" {
			break
		}
		if v, ok := strings.CutPrefix(p, "root="); ok {
			root = v
		}
	}
	return root
}

// cmdlineParams splits a command line at white space outside double quotes
// and removes the quotes, like the kernel's next_arg.
func cmdlineParams(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inParam := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inParam = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'):
			if inParam {
				out = append(out, cur.String())
				cur.Reset()
				inParam = false
			}
		default:
			cur.WriteRune(r)
			inParam = true
		}
	}
	if inParam {
		out = append(out, cur.String())
	}
	return out
}
