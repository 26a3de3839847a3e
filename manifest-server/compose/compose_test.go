package compose_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/manifest-server/compose"
	"github.com/healthguard/gateway-ota/updater/release"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func TestParseGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "gateway.compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := compose.Parse(context.Background(), "gateway.compose.yaml", data, compose.Options{Env: map[string]string{"BRIDGE_VERSION": "1.2.0"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "gateway.golden.json")
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Parse differs from %s (run with -update to accept):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}

	// Pinned, the set is a valid release container set.
	for i := range set.Containers.Services {
		set.Containers.Services[i].Image += "@sha256:" + strings.Repeat("a", 64)
	}
	m := &release.Manifest{Schema: release.SchemaVersion, Version: "1", Counter: 2, Channel: "stable", Compatible: "rpi4",
		Created: timeZero(), Containers: set.Containers}
	if err := m.Validate(); err != nil {
		t.Errorf("pinned set does not validate: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, yaml  string
		unsupported bool
	}{
		{"no services", "services: {}\n", false},
		{"build only", "services:\n  a:\n    build: .\n", true},
		{"privileged", "services:\n  a:\n    image: x\n    privileged: true\n", true},
		{"cap_add", "services:\n  a:\n    image: x\n    cap_add: [SYS_ADMIN]\n", true},
		{"entrypoint", "services:\n  a:\n    image: x\n    entrypoint: [/bin/sh]\n", true},
		{"devices", "services:\n  a:\n    image: x\n    devices: [/dev/mem]\n", true},
		{"network_mode", "services:\n  a:\n    image: x\n    network_mode: host\n", true},
		{"user", "services:\n  a:\n    image: x\n    user: root\n", true},
		{"custom network", "services:\n  a:\n    image: x\n    networks: [back]\nnetworks:\n  back: {}\n", true},
		{"random port", "services:\n  a:\n    image: x\n    ports: [\"80\"]\n", true},
		{"anonymous volume", "services:\n  a:\n    image: x\n    volumes: [/data]\n", true},
		{"relative bind", "services:\n  a:\n    image: x\n    volumes: [./data:/data]\n", false},
		{"tmpfs volume", "services:\n  a:\n    image: x\n    volumes:\n      - type: tmpfs\n        target: /t\n", true},
		{"external volume", "services:\n  a:\n    image: x\n    volumes: [v:/v]\nvolumes:\n  v:\n    external: true\n", true},
		{"unset env", "services:\n  a:\n    image: x\n    environment: [FOO]\n", false},
		{"backup not mounted", "services:\n  a:\n    image: x\n    x-ota-backup: [v]\n", false},
		{"backup not a list", "services:\n  a:\n    image: x\n    x-ota-backup: v\n", false},
		{"bad health extension", "services:\n  a:\n    image: x\n    x-ota-health: {kind: http, uri: x}\n", false},
		{"bad strategy type", "x-ota-strategy: 1\nservices:\n  a:\n    image: x\n", false},
		{"scale", "services:\n  a:\n    image: x\n    scale: 2\n", true},
		{"not yaml", "services: [", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compose.Parse(context.Background(), "c.yaml", []byte(tt.yaml), compose.Options{})
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.yaml)
			}
			if got := errors.Is(err, compose.ErrUnsupported); got != tt.unsupported {
				t.Errorf("Parse error %q: errors.Is(ErrUnsupported) = %v, want %v", err, got, tt.unsupported)
			}
		})
	}
}

func TestParseNeverReadsProcessEnv(t *testing.T) {
	t.Setenv("OTA_COMPOSE_TEST_SECRET", "leaked")
	set, err := compose.Parse(context.Background(), "c.yaml",
		[]byte("services:\n  a:\n    image: x\n    environment:\n      V: \"${OTA_COMPOSE_TEST_SECRET:-unset}\"\n"), compose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.Containers.Services[0].Env["V"], "unset"; got != want {
		t.Errorf("V = %q, want %q", got, want)
	}
}

// FuzzParse: Parse never panics, and a set it returns, once pinned, either
// validates or is refused by release validation with ErrInvalid (the publisher
// validates before signing). Seeds live in testdata/fuzz.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "gateway.compose.yaml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte("services:\n  a:\n    image: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := compose.Parse(context.Background(), "c.yaml", data, compose.Options{Env: map[string]string{"BRIDGE_VERSION": "1"}})
		if err != nil {
			return
		}
		if len(set.Containers.Services) == 0 {
			t.Fatal("accepted a set without services")
		}
		for i := range set.Containers.Services {
			set.Containers.Services[i].Image += "@sha256:" + strings.Repeat("a", 64)
		}
		m := &release.Manifest{Schema: release.SchemaVersion, Version: "1", Counter: 2, Channel: "stable", Compatible: "rpi4",
			Created: timeZero(), Containers: set.Containers}
		if err := m.Validate(); err != nil && !errors.Is(err, release.ErrInvalid) {
			t.Fatalf("validation error without ErrInvalid: %v", err)
		}
	})
}
