package pisim_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/pisim"
	"github.com/healthguard/gateway-ota/rpi/pisim/pisimtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestBootLogGolden pins firmware/boot.log, the record users read when a
// pipeline run goes wrong, for a few scripted lives of a device.
func TestBootLogGolden(t *testing.T) {
	pisimtest.RequireTools(t)
	arm := func(d *pisim.Device) error { return rpi.DefaultArmer(d.Root()).Arm() }
	type action func(d *pisim.Device) error
	boot := func(f func(d *pisim.Device) (pisim.Boot, error)) action {
		return func(d *pisim.Device) error { _, err := f(d); return err }
	}
	powerOn := boot((*pisim.Device).PowerOn)
	reboot := boot((*pisim.Device).Reboot)
	watchdog := boot((*pisim.Device).Watchdog)
	powerCut := boot((*pisim.Device).PowerCut)
	mailbox := func(d *pisim.Device) error { return d.Mailbox().Arm() }
	tests := []struct {
		name    string
		card    func() pisimtest.Card
		actions []action
	}{
		{"trial-and-rollback", func() pisimtest.Card { return pisimtest.Default(t) },
			[]action{powerOn, arm, reboot, watchdog, mailbox, reboot, powerCut}},
		{"fallbacks", func() pisimtest.Card {
			c := pisimtest.Default(t)
			c.RootB = false
			c.BootB["cmdline.txt"] = []byte("root=PARTUUID=1234abcd-06 rootwait\n")
			return c
		}, []action{powerOn, arm, reboot}},
		{"no-autoboot", func() pisimtest.Card {
			c := pisimtest.Default(t)
			c.Autoboot = nil
			c.BootA = nil
			return c
		}, []action{powerOn, arm, reboot}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t, tc.card(), pisim.Options{})
			for i, a := range tc.actions {
				if err := a(d); err != nil {
					t.Fatalf("action %d: %v", i, err)
				}
			}
			got, err := os.ReadFile(filepath.Join(d.Root(), "firmware", "boot.log"))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".bootlog")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("boot.log differs from %s (run with -update after checking):\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}
