package rpi

import (
	"errors"
	"fmt"
	"time"
)

// ErrTrybootUnsupported means the bootloader cannot be trusted to honour
// tryboot_a_b and [tryboot]: arming a trial would boot the wrong partition or
// none. The caller reports it and does not retry until the EEPROM is updated.
var ErrTrybootUnsupported = errors.New("bootloader does not support tryboot A/B")

// MinEEPROMTryboot is the build time, in Unix seconds, of the oldest Pi 4
// family EEPROM bootloader that honours tryboot_a_b and [tryboot]
// (2022-11-25); older ones ignore the section or swap partition numbers.
const MinEEPROMTryboot = 1669334400

var minEEPROMTryboot = time.Unix(MinEEPROMTryboot, 0).UTC()

// Preflight reads the bootloader properties and the board model under root
// and checks that a trial boot can be armed safely (see CheckTryboot).
func Preflight(root string) error {
	b, err := ReadBootloader(root)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	m, err := ReadModel(root)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	return CheckTryboot(m, b)
}

// CheckTryboot decides whether the bootloader b of board m honours tryboot
// A/B. It returns nil or an error wrapping ErrTrybootUnsupported that says
// why:
//   - Pi 5 and CM5: always supported (every BCM2712 bootloader has it).
//   - any other board whose bootloader reports capabilities without
//     CapTrybootAB: refused, the bootloader says it cannot.
//   - Pi 4, Pi 400, CM4: the EEPROM must be built on or after
//     MinEEPROMTryboot; without a build timestamp, only CapTrybootAB vouches
//     for it.
//   - Pi 3 and Zero 2 W: supported (bootcode.bin in the autoboot partition
//     brings its own bootloader).
//   - unknown boards: supported only when capabilities show CapTrybootAB.
func CheckTryboot(m Model, b Bootloader) error {
	if m.Board == BoardRPi5 {
		return nil
	}
	name := m.Name
	if name == "" {
		name = m.Compatible
	}
	capTryboot := b.HasCapabilities && b.Capabilities&CapTrybootAB != 0
	if b.HasCapabilities && !capTryboot {
		return fmt.Errorf("%s: bootloader capabilities %#x lack TRYBOOT_A_B (bit 2): %w", name, b.Capabilities, ErrTrybootUnsupported)
	}
	switch {
	case !m.Known():
		if capTryboot {
			return nil
		}
		return fmt.Errorf("unknown board %q: its bootloader reports no TRYBOOT_A_B capability: %w", name, ErrTrybootUnsupported)
	case m.CheckEEPROM:
		if !b.HasBuildTimestamp {
			if capTryboot {
				return nil
			}
			return fmt.Errorf("%s: bootloader reports neither a build timestamp nor capabilities, need an EEPROM from %s or later: %w",
				name, minEEPROMTryboot.Format(time.DateOnly), ErrTrybootUnsupported)
		}
		if b.BuildTimestamp.Before(minEEPROMTryboot) {
			return fmt.Errorf("%s: bootloader EEPROM built %s, need %s or later: %w",
				name, b.BuildTimestamp.UTC().Format(time.DateOnly), minEEPROMTryboot.Format(time.DateOnly), ErrTrybootUnsupported)
		}
		return nil
	default:
		return nil
	}
}
