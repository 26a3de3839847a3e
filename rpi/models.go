package rpi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Device-tree files that name the board, relative to the device root.
const (
	CompatibleFile = "proc/device-tree/compatible"
	ModelFile      = "proc/device-tree/model"
)

// Board ids: the release "compatible" field. Boards sharing an id run the
// same images.
const (
	BoardRPi3 = "rpi3" // BCM2837/RP3A0: Pi 3, Zero 2 W
	BoardRPi4 = "rpi4" // BCM2711: Pi 4, Pi 400, CM4
	BoardRPi5 = "rpi5" // BCM2712: Pi 5, CM5
)

// Model describes a Raspberry Pi board.
type Model struct {
	Compatible string // device-tree compatible of the board, e.g. "raspberrypi,4-model-b"
	Name       string // e.g. "Raspberry Pi 4 Model B"; for an unknown board, what the device tree says
	Board      string // board id used as the release compatible field; "" for an unknown board
	// CheckEEPROM is true when the bootloader lives in an EEPROM whose
	// version decides whether tryboot_a_b and [tryboot] are honoured.
	CheckEEPROM bool
	// Revision is the device tree's model string as read, e.g.
	// "Raspberry Pi 4 Model B Rev 1.4". Empty in the table.
	Revision string
}

// Known reports whether the board is in the table.
func (m Model) Known() bool { return m.Board != "" }

// models lists the supported boards. Each compatible string is the first one
// in the board's device tree in the Raspberry Pi kernel; the comment above
// each row links the file.
var models = []Model{
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm/boot/dts/broadcom/bcm2710-rpi-3-b.dts
	{Compatible: "raspberrypi,3-model-b", Name: "Raspberry Pi 3 Model B", Board: BoardRPi3},
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm/boot/dts/broadcom/bcm2710-rpi-3-b-plus.dts
	{Compatible: "raspberrypi,3-model-b-plus", Name: "Raspberry Pi 3 Model B+", Board: BoardRPi3},
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm/boot/dts/broadcom/bcm2710-rpi-zero-2-w.dts
	{Compatible: "raspberrypi,model-zero-2-w", Name: "Raspberry Pi Zero 2 W", Board: BoardRPi3},
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm/boot/dts/broadcom/bcm2711-rpi-4-b.dts
	{Compatible: "raspberrypi,4-model-b", Name: "Raspberry Pi 4 Model B", Board: BoardRPi4, CheckEEPROM: true},
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm/boot/dts/broadcom/bcm2711-rpi-400.dts
	{Compatible: "raspberrypi,400", Name: "Raspberry Pi 400", Board: BoardRPi4, CheckEEPROM: true},
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm/boot/dts/broadcom/bcm2711-rpi-cm4.dts
	{Compatible: "raspberrypi,4-compute-module", Name: "Raspberry Pi Compute Module 4", Board: BoardRPi4, CheckEEPROM: true},
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm64/boot/dts/broadcom/bcm2712-rpi-5-b.dts
	{Compatible: "raspberrypi,5-model-b", Name: "Raspberry Pi 5", Board: BoardRPi5},
	// https://github.com/raspberrypi/linux/blob/rpi-6.6.y/arch/arm64/boot/dts/broadcom/bcm2712-rpi-cm5.dtsi
	{Compatible: "raspberrypi,5-compute-module", Name: "Raspberry Pi Compute Module 5", Board: BoardRPi5},
}

// Models returns the table of supported boards.
func Models() []Model { return append([]Model(nil), models...) }

// LookupModel finds a board by its device-tree compatible string.
func LookupModel(compatible string) (Model, bool) {
	for _, m := range models {
		if m.Compatible == compatible {
			return m, true
		}
	}
	return Model{}, false
}

// maxDTString bounds the device-tree strings read.
const maxDTString = 4096

// ReadModel identifies the board from CompatibleFile (a NUL-separated list,
// most specific first) and ModelFile under root. An unknown board is not an
// error: it comes back with Known() false, its first compatible string and
// the device tree's model as Name.
func ReadModel(root string) (Model, error) {
	compat, err := readDTString(filepath.Join(root, CompatibleFile))
	if err != nil {
		return Model{}, fmt.Errorf("read board model: %w", err)
	}
	rev, err := readDTString(filepath.Join(root, ModelFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Model{}, fmt.Errorf("read board model: %w", err)
	}
	var list []string
	for _, c := range strings.Split(compat, "\x00") {
		if c != "" {
			list = append(list, c)
		}
	}
	if len(list) == 0 {
		return Model{}, fmt.Errorf("read board model: %s is empty", CompatibleFile)
	}
	for _, c := range list {
		if m, ok := LookupModel(c); ok {
			m.Revision = rev
			return m, nil
		}
	}
	return Model{Compatible: list[0], Name: rev, Revision: rev}, nil
}

func readDTString(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDTString+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxDTString {
		return "", fmt.Errorf("%s: longer than %d bytes", name, maxDTString)
	}
	return string(bytes.TrimRight(b, "\x00")), nil
}
