package rpi

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckTryboot(t *testing.T) {
	pi3, _ := LookupModel("raspberrypi,3-model-b-plus")
	pi4, _ := LookupModel("raspberrypi,4-model-b")
	cm4, _ := LookupModel("raspberrypi,4-compute-module")
	pi5, _ := LookupModel("raspberrypi,5-model-b")
	unknown := Model{Compatible: "acme,board", Name: "Acme Board"}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	built := func(day string) Bootloader {
		return Bootloader{BuildTimestamp: at(day), HasBuildTimestamp: true}
	}
	withCaps := func(b Bootloader, caps uint32) Bootloader {
		b.Capabilities, b.HasCapabilities = caps, true
		return b
	}
	tests := []struct {
		name string
		m    Model
		b    Bootloader
		want string // "" for nil, else a substring of the error
	}{
		{"Pi 4 new EEPROM", pi4, built("2024-04-15"), ""},
		{"Pi 4 EEPROM of the minimum day", pi4, Bootloader{BuildTimestamp: time.Unix(MinEEPROMTryboot, 0), HasBuildTimestamp: true}, ""},
		{"Pi 4 EEPROM one second too old", pi4, Bootloader{BuildTimestamp: time.Unix(MinEEPROMTryboot-1, 0), HasBuildTimestamp: true}, "built 2022-11-24, need 2022-11-25 or later"},
		{"Pi 4 old EEPROM", pi4, built("2021-04-29"), "built 2021-04-29, need 2022-11-25"},
		{"CM4 old EEPROM", cm4, built("2022-01-01"), "Compute Module 4"},
		{"Pi 4 new EEPROM but capability clear", pi4, withCaps(built("2023-01-10"), 0x3), "lack TRYBOOT_A_B"},
		{"Pi 4 new EEPROM with capability", pi4, withCaps(built("2023-01-10"), 0x7f), ""},
		{"Pi 4 no timestamp, capability set", pi4, withCaps(Bootloader{}, CapTrybootAB), ""},
		{"Pi 4 no timestamp, no capabilities", pi4, Bootloader{}, "neither a build timestamp nor capabilities"},
		{"Pi 5 always", pi5, Bootloader{}, ""},
		{"Pi 5 even with capability clear", pi5, withCaps(built("2023-10-01"), 0), ""},
		{"Pi 3", pi3, Bootloader{}, ""},
		{"Pi 3 capability clear", pi3, withCaps(Bootloader{}, 0x1), "lack TRYBOOT_A_B"},
		{"unknown with capability", unknown, withCaps(Bootloader{}, CapTrybootAB), ""},
		{"unknown without capabilities", unknown, built("2025-01-01"), `unknown board "Acme Board"`},
		{"unknown capability clear", unknown, withCaps(Bootloader{}, 0), "lack TRYBOOT_A_B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTryboot(tt.m, tt.b)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckTryboot = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrTrybootUnsupported) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckTryboot = %v, want ErrTrybootUnsupported containing %q", err, tt.want)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	dt := func(compat string, b Bootloader) string {
		files := map[string][]byte{CompatibleFile: []byte(compat + "\x00")}
		for name, v := range b.Files() {
			files[BootloaderDir+"/"+name] = v
		}
		return writeRoot(t, files)
	}
	old := Bootloader{Partition: 2, BootMode: BootModeSD, BuildTimestamp: time.Unix(1619654400, 0).UTC(), HasBuildTimestamp: true}
	if err := Preflight(dt("raspberrypi,4-model-b", old)); !errors.Is(err, ErrTrybootUnsupported) {
		t.Errorf("Preflight(Pi 4, 2021 EEPROM) = %v, want ErrTrybootUnsupported", err)
	}
	if err := Preflight(dt("raspberrypi,5-model-b", old)); err != nil {
		t.Errorf("Preflight(Pi 5) = %v, want nil", err)
	}
	if err := Preflight(t.TempDir()); err == nil || errors.Is(err, ErrTrybootUnsupported) {
		t.Errorf("Preflight(empty root) = %v, want a read error", err)
	}
}
