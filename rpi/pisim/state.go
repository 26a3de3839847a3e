package pisim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/atomicfile"
)

// stateFormat is the version of state.json this package writes.
const stateFormat = 1

// Power is the power state of a device.
type Power string

// Power states.
const (
	PowerOff     Power = "off"     // no power, or never booted
	PowerRunning Power = "running" // an OS booted and runs
	PowerBricked Power = "bricked" // powered, but nothing boots
)

// State is what the board keeps between calls, in firmware/state.json.
type State struct {
	Format       int          `json:"format"`
	Model        string       `json:"model"`
	EEPROM       time.Time    `json:"eeprom,omitzero"` // bootloader build timestamp; zero on boards without an EEPROM
	Capabilities uint32       `json:"capabilities"`
	BootMode     rpi.BootMode `json:"boot_mode"`
	// TrybootFlag is the one-shot flag as set through the mailbox. It
	// survives an orderly reboot, is lost with power, and the firmware
	// clears it at the start of every boot.
	TrybootFlag bool   `json:"tryboot_flag"`
	Power       Power  `json:"power"`
	BootCounter int    `json:"boot_counter"` // boots (power-ons and reboots) so far
	LastBoot    *Boot  `json:"last_boot,omitempty"`
	Bricked     string `json:"bricked,omitempty"` // why nothing booted, while Power is bricked
}

// Causes of a boot, as Boot.Cause and Attempt.Cause give them.
const (
	CausePowerOn  = "power-on"
	CauseReboot   = "reboot"
	CausePowerCut = "power-cut"
	CauseWatchdog = "watchdog"
	// Later attempts of one boot:
	CauseRetry = "retry" // the firmware retries after a partition did not boot
	CausePanic = "panic" // the kernel panicked and rebooted
)

// Boot is the outcome of one power-on or reboot.
type Boot struct {
	Counter int    `json:"counter"`
	Cause   string `json:"cause"`
	// Tryboot is the flag the booted system runs with.
	Tryboot bool `json:"tryboot"`
	// Partition is the boot partition the system booted from (0 if none).
	Partition int `json:"partition"`
	// ReportedPartition is what chosen/bootloader/partition says: 0 on a
	// Pi 5 with an EEPROM older than 2024-05-13, else Partition.
	ReportedPartition int `json:"reported_partition"`
	// Slot is "A" for partition 2, "B" for partition 3, else "".
	Slot          string    `json:"slot,omitempty"`
	Cmdline       string    `json:"cmdline,omitempty"`
	Root          string    `json:"root,omitempty"`           // the root= value
	RootPartition int       `json:"root_partition,omitempty"` // the partition it names
	Attempts      []Attempt `json:"attempts"`
}

// Attempt is one try of the firmware to boot: one line of boot.log.
type Attempt struct {
	Boot    int    `json:"boot"`    // the boot counter
	Attempt int    `json:"attempt"` // 1 for the first attempt of a boot
	Cause   string `json:"cause"`
	Tryboot bool   `json:"tryboot"`
	// RebootPartition is a partition number passed to reboot ("reboot 3").
	RebootPartition int `json:"reboot_partition,omitempty"`
	// Autoboot says what came of reading autoboot.txt: "ok", "missing",
	// "oversize", "unreadable" or "invalid", with details.
	Autoboot string `json:"autoboot"`
	// Selected says where the partition number came from.
	Selected  string `json:"selected"`
	Partition int    `json:"partition"`
	Root      string `json:"root,omitempty"`
	// Result is "booted", "fallback" (a later attempt follows) or "failed"
	// (nothing boots); Reason says why it did not boot.
	Result string   `json:"result"`
	Reason string   `json:"reason,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

// Attempt results.
const (
	ResultBooted   = "booted"
	ResultFallback = "fallback"
	ResultFailed   = "failed"
)

func (d *Device) statePath() string { return filepath.Join(d.Dir, "firmware", "state.json") }
func (d *Device) logPath() string   { return filepath.Join(d.Dir, "firmware", "boot.log") }

func (d *Device) readState() (State, error) {
	var st State
	b, err := os.ReadFile(d.statePath())
	if err != nil {
		return st, fmt.Errorf("read device state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("device state %s: %w", d.statePath(), err)
	}
	if st.Format != stateFormat {
		return st, fmt.Errorf("device state %s: format %d, want %d", d.statePath(), st.Format, stateFormat)
	}
	if _, err := lookupBoard(st.Model); err != nil {
		return st, fmt.Errorf("device state %s: %w", d.statePath(), err)
	}
	return st, nil
}

func (d *Device) writeState(st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(d.statePath(), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", d.statePath(), err)
	}
	return nil
}

// appendLog adds the attempts of one boot to boot.log in one write.
func (d *Device) appendLog(as []Attempt) error {
	var buf []byte
	for _, a := range as {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	f, err := os.OpenFile(d.logPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("boot log: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("boot log: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("boot log: %w", err)
	}
	return f.Close()
}

// Log returns every boot attempt recorded in firmware/boot.log, oldest first.
func (d *Device) Log() ([]Attempt, error) {
	b, err := os.ReadFile(d.logPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("boot log: %w", err)
	}
	var out []Attempt
	for i, line := range splitLines(b) {
		var a Attempt
		if err := json.Unmarshal(line, &a); err != nil {
			return nil, fmt.Errorf("boot log line %d: %w", i+1, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}
