package pisim

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
)

// firmware is the bootloader and start firmware of one boot, looking at
// one card. Its methods only read the card: the firmware never writes to
// the disk (raspberrypi/firmware issue 864, docs/tryboot.md item 4).
type firmware struct {
	card    *sdcard.Disk // nil when the card has no readable partition table
	cardErr error
	board   board
	eeprom  time.Time
	blkdev  string // the card's kernel name: mmcblk0, sda, nvme0n1
}

// try is what one boot attempt starts from.
type try struct {
	flag            bool
	rebootPartition int
}

// clean reports whether nothing but autoboot.txt steers the attempt: a
// failed clean attempt would fail the same way every time it is retried.
func (t try) clean() bool { return !t.flag && t.rebootPartition == 0 }

// failure kinds of an attempt.
type failure int

const (
	booted        failure = iota
	firmwareFault         // the firmware found nothing to boot: it retries
	kernelPanic           // the kernel started and panicked: it reboots
)

// kernelView is what a booted kernel sees.
type kernelView struct {
	partition int
	cmdline   string
	root      string
	rootPart  int
}

// Files whose presence makes a FAT partition bootable: a kernel the
// firmware can start, or the firmware itself (Pi docs
// computers/config_txt/boot.adoc, "kernel": kernel8.img on 64-bit Pi 3/4,
// kernel_2712.img on Pi 5, kernel7l.img, kernel7.img, kernel.img on 32-bit;
// start4.elf / start.elf is the GPU firmware of Pi 4 / earlier models).
// Pi 5 needs no start*.elf, so the check is an "or", kept lenient on
// purpose: any of them together with cmdline.txt makes the partition
// bootable.
var bootFiles = []string{"kernel8.img", "kernel_2712.img", "kernel7l.img", "kernel7.img", "kernel.img", "start4.elf", "start.elf"}

// cmdlineFile is the kernel command line in a boot partition.
const cmdlineFile = "cmdline.txt"

// maxCmdlineFile bounds the read of cmdline.txt; commandLineSize is the
// kernel's limit on the command line (COMMAND_LINE_SIZE, 2048 bytes with
// its NUL on arm and arm64), beyond which the kernel cuts it.
const (
	maxCmdlineFile  = 64 << 10
	commandLineSize = 2048
)

// attempt runs the firmware once and, if it finds a partition to boot,
// the kernel up to mounting its root file system.
func (fw *firmware) attempt(t try, a *Attempt) (kernelView, failure) {
	a.Tryboot = t.flag
	a.RebootPartition = t.rebootPartition
	if fw.card == nil {
		a.Autoboot = "unreadable: " + fw.cardErr.Error()
		a.Selected = "boot_partition=0"
		a.Reason = "the card has no readable partition table: " + fw.cardErr.Error()
		return kernelView{}, firmwareFault
	}
	if fw.board.bootcode {
		// Pi 3 and earlier: the boot ROM loads bootcode.bin from the first
		// FAT partition; without it nothing else runs (Pi docs
		// raspberry-pi/boot-flow.adoc; Nerves keeps it on the autoboot
		// partition, docs/tryboot.md "Requirements").
		if _, err := fw.findFile(1, "bootcode.bin"); err != nil {
			a.Autoboot = "not read"
			a.Selected = "none"
			a.Reason = "the boot ROM found no bootcode.bin on partition 1: " + err.Error()
			return kernelView{}, firmwareFault
		}
	}
	ab := fw.readAutoboot(a)
	part := fw.choose(ab, t, a)
	var names map[string]string // the root directory of part, once read
	if part == 0 {
		// boot_partition=0: the first bootable FAT partition (Pi docs
		// config_txt/autoboot.adoc). Boot partitions on an MBR disk are
		// primary ones (docs/tryboot.md, "Layout").
		var why []string
		for n := 1; n <= 4; n++ {
			nm, err := fw.bootable(n)
			if err != nil {
				why = append(why, err.Error())
				continue
			}
			part, names = n, nm
			break
		}
		if part == 0 {
			a.Selected += ", partition walk found none"
			a.Reason = "no bootable FAT partition among partitions 1-4: " + strings.Join(why, "; ")
			return kernelView{}, firmwareFault
		}
		a.Selected += fmt.Sprintf(", partition walk: first bootable FAT partition is %d", part)
	}
	a.Partition = part
	if names == nil {
		var err error
		if names, err = fw.bootable(part); err != nil {
			a.Reason = err.Error()
			return kernelView{}, firmwareFault
		}
	}
	b, err := fw.card.ReadFile(part, names[cmdlineFile], maxCmdlineFile)
	if err != nil {
		a.Reason = fmt.Sprintf("partition %d: %v", part, err)
		return kernelView{}, firmwareFault
	}
	kv := kernelView{partition: part, cmdline: commandLine(b)}

	// The kernel mounts root= (init/do_mounts.c). What it cannot find or
	// mount makes it panic: "VFS: Unable to mount root fs".
	// The last root= wins (rpi.CmdlineRoot parses as the kernel does).
	root := rpi.CmdlineRoot(kv.cmdline)
	kv.root = root
	a.Root = root
	if root == "" {
		a.Reason = "kernel panic: cmdline.txt has no root="
		fw.panicNote(kv.cmdline, a)
		return kv, kernelPanic
	}
	n, err := fw.resolveRoot(root)
	if err == nil {
		err = fw.checkExt4(n)
	}
	if err != nil {
		a.Reason = fmt.Sprintf("kernel panic: cannot mount root=%s: %v", root, err)
		fw.panicNote(kv.cmdline, a)
		return kv, kernelPanic
	}
	kv.rootPart = n
	return kv, booted
}

// panicNote records how a real kernel would leave the panic: with panic=N
// (N > 0) it reboots after N seconds; without, it hangs until a watchdog
// or a power cut (docs/tryboot.md, "Watchdog": add panic=10). The model reboots
// in both cases.
func (fw *firmware) panicNote(cmdline string, a *Attempt) {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "panic="); ok && v != "0" && !strings.HasPrefix(v, "-") {
			return
		}
	}
	a.Notes = append(a.Notes, "cmdline has no panic=N: a real kernel would hang here until a watchdog bite or a power cut; the model reboots")
}

// readAutoboot reads and parses autoboot.txt from partition 1. Whatever
// goes wrong, the firmware goes on with boot_partition=0 (docs/tryboot.md,
// "Requirements": it falls back to partition 0 when autoboot.txt is
// missing or unreadable).
func (fw *firmware) readAutoboot(a *Attempt) *rpi.Autoboot {
	b, err := fw.card.ReadFile(sdcard.PartAutoboot, rpi.AutobootFile, rpi.AutobootMaxSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		a.Autoboot = "missing"
		return nil
	case errors.Is(err, sdcard.ErrFileTooLarge):
		// At most 512 bytes (Pi docs config_txt/autoboot.adoc).
		a.Autoboot = "oversize: " + err.Error()
		return nil
	case err != nil:
		a.Autoboot = "unreadable: " + err.Error()
		return nil
	}
	ab, err := rpi.ParseAutoboot(b)
	if err != nil {
		a.Autoboot = "invalid: " + err.Error()
		return nil
	}
	ta := 0
	if ab.TrybootAB() {
		ta = 1
	}
	a.Autoboot = fmt.Sprintf("ok: [all] boot_partition=%d, [tryboot] boot_partition=%d, tryboot_a_b=%d", ab.Committed(), ab.Trial(), ta)
	return ab
}

// choose returns the boot partition autoboot.txt and the reboot argument
// name, 0 for "first bootable".
func (fw *firmware) choose(ab *rpi.Autoboot, t try, a *Attempt) int {
	if t.rebootPartition != 0 {
		// boot_partition applies "unless the partition number was already
		// specified as a parameter to the reboot command (e.g. sudo reboot
		// 2)"; 0 means the default (Pi docs config_txt/autoboot.adoc).
		a.Selected = fmt.Sprintf("reboot partition %d", t.rebootPartition)
		return t.rebootPartition
	}
	if ab == nil {
		a.Selected = "boot_partition=0"
		return 0
	}
	trial := t.flag
	if trial && !fw.board.honoursAB(fw.eeprom) {
		a.Notes = append(a.Notes, fmt.Sprintf("EEPROM build %s predates %s: the bootloader ignores [tryboot] in autoboot.txt",
			fw.eeprom.Format(time.DateOnly), fw.board.abSince.Format(time.DateOnly)))
		trial = false
	}
	if trial && !ab.TrybootAB() {
		// Without tryboot_a_b=1 the firmware swaps config.txt for
		// tryboot.txt (Pi docs config_txt/autoboot.adoc); the partition
		// choice of [tryboot] is modelled as applying all the same.
		a.Notes = append(a.Notes, "tryboot_a_b is not set: a real firmware would load tryboot.txt instead of config.txt; the model applies [tryboot] boot_partition all the same")
	}
	p := ab.BootPartition(trial)
	switch {
	case trial && ab.Trial() != 0 && p == ab.Trial():
		a.Selected = fmt.Sprintf("[tryboot] boot_partition=%d", p)
	case p != 0:
		a.Selected = fmt.Sprintf("[all] boot_partition=%d", p)
	default:
		a.Selected = "boot_partition=0"
	}
	return p
}

// bootable checks that partition n holds something the firmware boots and
// returns the names of its root-directory files, by lower-case name (FAT
// names are case-insensitive).
func (fw *firmware) bootable(n int) (map[string]string, error) {
	if n < 1 || n > 4 {
		return nil, fmt.Errorf("partition %d is not a primary partition (boot partitions are 1-4)", n)
	}
	p, ok := fw.card.Table.Get(n)
	if !ok {
		return nil, fmt.Errorf("the card has no partition %d", n)
	}
	if p.Type == sdcard.TypeExtendedLBA || p.Type == sdcard.TypeExtendedCHS {
		return nil, fmt.Errorf("partition %d is the extended partition", n)
	}
	names, err := fw.rootDir(n)
	if err != nil {
		return nil, err
	}
	if _, ok := names[cmdlineFile]; !ok {
		return nil, fmt.Errorf("partition %d has no %s", n, cmdlineFile)
	}
	for _, f := range bootFiles {
		if _, ok := names[f]; ok {
			return names, nil
		}
	}
	return nil, fmt.Errorf("partition %d has no kernel or firmware file (%s)", n, strings.Join(bootFiles, ", "))
}

func (fw *firmware) rootDir(n int) (map[string]string, error) {
	fsys, err := fw.card.FAT(n)
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", n, err)
	}
	ents, err := fsys.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("partition %d: root directory: %w", n, err)
	}
	names := map[string]string{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		names[strings.ToLower(e.Name())] = e.Name()
	}
	return names, nil
}

// findFile returns the on-disk name of a root-directory file of FAT
// partition n.
func (fw *firmware) findFile(n int, name string) (string, error) {
	names, err := fw.rootDir(n)
	if err != nil {
		return "", err
	}
	if real, ok := names[strings.ToLower(name)]; ok {
		return real, nil
	}
	return "", fmt.Errorf("partition %d has no %s", n, name)
}
