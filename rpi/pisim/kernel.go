package pisim

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// commandLine is the command line the kernel gets from cmdline.txt: its
// first line (the file "must be a single line of text", Pi docs
// configuration/kernel-command-line-config.adoc), cut at the kernel's limit.
// The real firmware also prepends options of its own (coherent_pool=...,
// video=...); the model leaves them out.
func commandLine(b []byte) string {
	s := string(b)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > commandLineSize-1 {
		s = s[:commandLineSize-1]
	}
	return strings.TrimSpace(s)
}

// resolveRoot maps a root= value to a partition number of the card, as
// the kernel does without an initramfs (block/early-lookup.c): the MBR form
// of PARTUUID=SSSSSSSS-PP (disk signature, partition number in hex; case is
// ignored), or the device name /dev/mmcblk0pN (/dev/sdaN, /dev/nvme0n1pN
// for the other boot modes).
func (fw *firmware) resolveRoot(v string) (int, error) {
	t := fw.card.Table
	if u, ok := strings.CutPrefix(v, "PARTUUID="); ok {
		for _, p := range t.Partitions {
			if strings.EqualFold(u, sdcard.PartUUID(t.DiskID, p.Number)) {
				return p.Number, nil
			}
		}
		return 0, fmt.Errorf("no partition of this card (disk id %08x) has PARTUUID %s", t.DiskID, u)
	}
	prefix := "/dev/" + strings.TrimSuffix(rpi.PartitionDevice(fw.blkdev, 1), "1")
	if s, ok := strings.CutPrefix(v, prefix); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || strings.HasPrefix(s, "0") {
			return 0, fmt.Errorf("%s names no partition of %s", v, fw.blkdev)
		}
		if _, ok := t.Get(n); !ok {
			return 0, fmt.Errorf("the card has no partition %d", n)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s is neither PARTUUID=<disk id>-<nn> nor %sN on this card", v, prefix)
}

// checkExt4 looks for the ext2/3/4 superblock magic 0xEF53, at byte 56 of
// the superblock that starts 1024 bytes into the partition.
func (fw *firmware) checkExt4(n int) error {
	p, ok := fw.card.Table.Get(n)
	if !ok {
		return fmt.Errorf("the card has no partition %d", n)
	}
	if p.Size < 2048 {
		return fmt.Errorf("partition %d is too small for a file system", n)
	}
	b := make([]byte, 2)
	if _, err := fw.card.File().ReadAt(b, p.Start+1024+56); err != nil {
		return fmt.Errorf("partition %d: %w", n, err)
	}
	if binary.LittleEndian.Uint16(b) != 0xef53 {
		return fmt.Errorf("partition %d has no ext4 superblock", n)
	}
	return nil
}

// rebootFlag decides what an orderly reboot passes to the firmware, from
// the argument systemd hands to reboot(2) (the first line of
// /run/systemd/reboot-param, systemd src/shared/reboot-util.c).
//
//   - The tryboot flag: the Pi kernel sets it when the argument contains
//     " tryboot" with the leading space (drivers/firmware/raspberrypi.c,
//     strstr(data, " tryboot")), hence "0 tryboot" and never "tryboot".
//   - The partition: the watchdog driver reads a leading number below 63
//     and hands it to the firmware (drivers/watchdog/bcm2835_wdt.c, sscanf
//     "%lu"; "0 tryboot" means the default partition, Pi docs
//     config_txt/autoboot.adoc).
func rebootFlag(param string) (flag bool, partition int) {
	flag = rpi.RebootArgumentArms(param)
	s := strings.TrimLeft(param, " \t\n")
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i > 0 {
		if v, err := strconv.ParseUint(s[:i], 10, 32); err == nil && v < 63 {
			partition = int(v)
		}
	}
	return flag, partition
}
