package rpi

import (
	"strings"
	"testing"
)

func TestModelsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Models() {
		if seen[m.Compatible] {
			t.Errorf("%s listed twice", m.Compatible)
		}
		seen[m.Compatible] = true
		if !strings.HasPrefix(m.Compatible, "raspberrypi,") || m.Name == "" || !m.Known() {
			t.Errorf("incomplete row %+v", m)
		}
		if m.CheckEEPROM != (m.Board == BoardRPi4) {
			t.Errorf("%s: CheckEEPROM %v, want it exactly for %s", m.Compatible, m.CheckEEPROM, BoardRPi4)
		}
	}
	for _, c := range []string{"raspberrypi,3-model-b", "raspberrypi,3-model-b-plus", "raspberrypi,model-zero-2-w",
		"raspberrypi,4-model-b", "raspberrypi,400", "raspberrypi,4-compute-module",
		"raspberrypi,5-model-b", "raspberrypi,5-compute-module"} {
		if !seen[c] {
			t.Errorf("%s missing from the table", c)
		}
	}
}

func TestReadModel(t *testing.T) {
	tests := []struct {
		name       string
		compatible string
		model      string
		want       Model
		wantErr    string
	}{
		{"Pi 4", "raspberrypi,4-model-b\x00brcm,bcm2711\x00", "Raspberry Pi 4 Model B Rev 1.4\x00",
			Model{Compatible: "raspberrypi,4-model-b", Name: "Raspberry Pi 4 Model B", Board: BoardRPi4, CheckEEPROM: true, Revision: "Raspberry Pi 4 Model B Rev 1.4"}, ""},
		{"Pi 5", "raspberrypi,5-model-b\x00brcm,bcm2712\x00", "Raspberry Pi 5 Model B Rev 1.0\x00",
			Model{Compatible: "raspberrypi,5-model-b", Name: "Raspberry Pi 5", Board: BoardRPi5, Revision: "Raspberry Pi 5 Model B Rev 1.0"}, ""},
		{"Zero 2 W, later entry matches", "acme,carrier\x00raspberrypi,model-zero-2-w\x00brcm,bcm2837\x00", "",
			Model{Compatible: "raspberrypi,model-zero-2-w", Name: "Raspberry Pi Zero 2 W", Board: BoardRPi3}, ""},
		{"no trailing NUL", "raspberrypi,400", "Raspberry Pi 400 Rev 1.0",
			Model{Compatible: "raspberrypi,400", Name: "Raspberry Pi 400", Board: BoardRPi4, CheckEEPROM: true, Revision: "Raspberry Pi 400 Rev 1.0"}, ""},
		{"unknown board", "raspberrypi,2-model-b\x00brcm,bcm2836\x00", "Raspberry Pi 2 Model B Rev 1.1\x00",
			Model{Compatible: "raspberrypi,2-model-b", Name: "Raspberry Pi 2 Model B Rev 1.1", Revision: "Raspberry Pi 2 Model B Rev 1.1"}, ""},
		{"empty compatible", "\x00", "", Model{}, "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{CompatibleFile: []byte(tt.compatible)}
			if tt.model != "" {
				files[ModelFile] = []byte(tt.model)
			}
			got, err := ReadModel(writeRoot(t, files))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ReadModel:\ngot  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := ReadModel(t.TempDir()); err == nil {
		t.Error("ReadModel without a device tree succeeded")
	}
}
