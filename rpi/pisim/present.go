package pisim

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/healthguard/gateway-ota/rpi"
)

// clearVolatile empties proc/ and run/: they exist only while an OS runs
// (run/ is a tmpfs, docs/tryboot.md item 2 puts reboot-param there).
func (d *Device) clearVolatile() error {
	for _, sub := range []string{"proc", "run"} {
		dir := filepath.Join(d.Dir, sub)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clear %s: %w", sub, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("clear %s: %w", sub, err)
		}
	}
	return nil
}

// present writes what the booted kernel shows: the bootloader properties
// in /proc/device-tree/chosen/bootloader (Pi docs
// configuration/device-tree.adoc, "chosen/bootloader"; rendered by
// rpi.Bootloader), the model and compatible strings, and /proc/cmdline.
func (d *Device) present(b board, st State, res Boot) error {
	bl := rpi.Bootloader{
		Tryboot:           res.Tryboot,
		Partition:         res.ReportedPartition,
		BootMode:          st.BootMode,
		Capabilities:      st.Capabilities,
		BuildTimestamp:    st.EEPROM,
		HasCapabilities:   b.eeprom,
		HasBuildTimestamp: b.eeprom,
	}
	files := map[string][]byte{
		rpi.ModelFile:      append([]byte(b.model), 0),
		rpi.CompatibleFile: b.compatibleBytes(),
		rpi.CmdlineFile:    []byte(res.Cmdline + "\n"),
	}
	for name, content := range bl.Files() {
		files[rpi.BootloaderDir+"/"+name] = content
	}
	if err := os.MkdirAll(filepath.Join(d.Dir, filepath.FromSlash(rpi.BootloaderDir)), 0o755); err != nil {
		return fmt.Errorf("present boot: %w", err)
	}
	for name, content := range files {
		p := filepath.Join(d.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("present boot: %w", err)
		}
		// Not synced: proc/ is rebuilt at every boot.
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return fmt.Errorf("present boot: %w", err)
		}
	}
	return nil
}
