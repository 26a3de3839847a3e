package pisim

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/healthguard/gateway-ota/rpi"
)

// board is what the model knows of one Raspberry Pi model.
type board struct {
	name string
	// model and compatible are what the kernel shows under
	// /proc/device-tree (from the board's device tree in the Pi kernel,
	// arch/arm/boot/dts/broadcom/bcm27*-rpi-*.dts).
	model      string
	compatible []string
	// eeprom: the second-stage bootloader lives in an SPI EEPROM and hands
	// its build timestamp and capabilities to the kernel (Pi 4 and later;
	// Pi docs configuration/device-tree.adoc, "chosen/bootloader"). Earlier
	// models load bootcode.bin from the first FAT partition instead.
	eeprom bool
	// abSince is the first EEPROM build that honours [tryboot] and
	// tryboot_a_b in autoboot.txt; older ones ignore the section
	// (docs/tryboot.md, "Requirements": Pi 4 needs 2022-11-25, the timestamp
	// Pantavisor enforces; every Pi 5 EEPROM supports it).
	abSince time.Time
	// partitionSince is the first EEPROM build that reports the boot
	// partition in chosen/bootloader/partition; older Pi 5 bootloaders
	// report 0 (docs/tryboot.md, "The model" item 3; Pantavisor works around it).
	partitionSince time.Time
	// bootcode: the boot ROM loads bootcode.bin from the first FAT partition
	// of the card before anything else (Pi docs raspberry-pi/boot-flow.adoc
	// for Pi 3 and earlier; Nerves keeps it in the autoboot partition).
	bootcode bool
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err) // only called on the constants below
	}
	return t
}

var boards = map[string]board{
	"pi3": {
		name:       "pi3",
		model:      "Raspberry Pi 3 Model B Rev 1.2",
		compatible: []string{"raspberrypi,3-model-b", "brcm,bcm2837"},
		bootcode:   true,
	},
	"pi4": {
		name:       "pi4",
		model:      "Raspberry Pi 4 Model B Rev 1.5",
		compatible: []string{"raspberrypi,4-model-b", "brcm,bcm2711"},
		eeprom:     true,
		abSince:    time.Unix(rpi.MinEEPROMTryboot, 0).UTC(), // 2022-11-25
	},
	"pi5": {
		name:           "pi5",
		model:          "Raspberry Pi 5 Model B Rev 1.0",
		compatible:     []string{"raspberrypi,5-model-b", "brcm,bcm2712"},
		eeprom:         true,
		partitionSince: day("2024-05-13"),
	},
}

// DefaultModel and DefaultEEPROM are what a zero Options means.
const DefaultModel = "pi4"

// DefaultEEPROM is the bootloader build date of a device created with a
// zero Options.EEPROM: recent enough for every tryboot feature.
var DefaultEEPROM = day("2024-06-01")

// Models lists the board names Options.Model accepts.
func Models() []string {
	var out []string
	for n := range boards {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func lookupBoard(name string) (board, error) {
	b, ok := boards[name]
	if !ok {
		return board{}, fmt.Errorf("unknown model %q (known: %s)", name, strings.Join(Models(), ", "))
	}
	return b, nil
}

// honoursAB reports whether the bootloader applies [tryboot] sections.
func (b board) honoursAB(eeprom time.Time) bool {
	return !b.eeprom || !eeprom.Before(b.abSince)
}

// reportsPartition reports whether chosen/bootloader/partition carries the
// partition booted rather than 0.
func (b board) reportsPartition(eeprom time.Time) bool {
	return !b.eeprom || !eeprom.Before(b.partitionSince)
}

// capabilities is what chosen/bootloader/capabilities holds.
func (b board) capabilities(eeprom time.Time) uint32 {
	if b.eeprom && b.honoursAB(eeprom) {
		return rpi.CapTrybootAB // bit 2, docs/tryboot.md item 3
	}
	return 0
}

// compatibleBytes is /proc/device-tree/compatible: NUL-terminated strings.
func (b board) compatibleBytes() []byte {
	return []byte(strings.Join(b.compatible, "\x00") + "\x00")
}
