package updater_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/updater"
)

// A configuration error fails `confirm` only on a trial boot. Its unit
// reboots on failure, so failing on a committed boot would reboot every
// boot; failing a trial returns to the committed slot.
func TestConfirmConfigError(t *testing.T) {
	w := newWorld(t)
	d := w.device(t)
	cfgFile := filepath.Join(d.Root(), "data/ota/updater.yaml")
	if err := os.MkdirAll(filepath.Dir(cfgFile), 0o755); err != nil {
		t.Fatal(err)
	}
	confirm := func() (int, string) {
		var out, errb bytes.Buffer
		code := updater.Main(context.Background(), []string{"--root", d.Root(), "--reboot", "none", "confirm"}, &out, &errb)
		return code, errb.String()
	}
	const bad = "server: [not closed\n"
	if err := os.WriteFile(cfgFile, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stderr := confirm(); code != updater.ExitOK || !strings.Contains(stderr, "config") {
		t.Fatalf("confirm with a bad configuration on a committed boot: exit %d, want 0 with the error logged\n%s", code, stderr)
	}

	os.Remove(cfgFile)
	w.publish(t, "2.0.0", 2)
	if ur, err := w.updater(t, d).Update(context.Background(), updater.UpdateOptions{NoReboot: true}); err != nil || !ur.Armed {
		t.Fatalf("update: %+v %v", ur, err)
	}
	if _, err := d.Reboot(); err != nil {
		t.Fatal(err)
	}
	if st := bootStatus(t, d); !st.Trial {
		t.Fatalf("not on a trial: %+v", st)
	}
	if err := os.WriteFile(cfgFile, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stderr := confirm(); code != updater.ExitUsage {
		t.Fatalf("confirm with a bad configuration on a trial: exit %d, want %d\n%s", code, updater.ExitUsage, stderr)
	}
}
