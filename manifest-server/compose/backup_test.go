package compose_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/manifest-server/compose"
	"github.com/healthguard/gateway-ota/updater/release"
)

// TestBackupPerService: x-ota-backup marks the volume for the service that
// names it only; another service mounting the same volume does not inherit
// it, whichever comes first. The volume label marks it for every service.
func TestBackupPerService(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       map[string]bool // service -> Backup of its one volume
	}{
		{"first names it", `services:
  a:
    image: x
    volumes: [shared:/data]
    x-ota-backup: [shared]
  b:
    image: x
    volumes: [shared:/data]
volumes:
  shared: {}
`, map[string]bool{"a": true, "b": false}},
		{"second names it", `services:
  a:
    image: x
    volumes: [shared:/data]
  b:
    image: x
    volumes: [shared:/data]
    x-ota-backup: [shared]
volumes:
  shared: {}
`, map[string]bool{"a": false, "b": true}},
		{"label", `services:
  a:
    image: x
    volumes: [shared:/data]
  b:
    image: x
    volumes: [shared:/data]
volumes:
  shared:
    labels: {com.healthguard.ota.backup: "true"}
`, map[string]bool{"a": true, "b": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := compose.Parse(context.Background(), "c.yaml", []byte(tc.yaml), compose.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range set.Containers.Services {
				if len(s.Volumes) != 1 {
					t.Fatalf("service %s: %d volumes", s.Name, len(s.Volumes))
				}
				if got := s.Volumes[0].Backup; got != tc.want[s.Name] {
					t.Errorf("service %s: Backup %v, want %v", s.Name, got, tc.want[s.Name])
				}
			}
		})
	}
}

// TestBackupOfBindMountRefused: x-ota-backup on a bind mount parses, but
// the container set it gives does not validate, so create-update refuses
// it before signing.
func TestBackupOfBindMountRefused(t *testing.T) {
	yaml := "services:\n  a:\n    image: x\n    volumes: [/var/lib/a:/data]\n    x-ota-backup: [/var/lib/a]\n"
	set, err := compose.Parse(context.Background(), "c.yaml", []byte(yaml), compose.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range set.Containers.Services {
		set.Containers.Services[i].Image += "@sha256:" + strings.Repeat("a", 64)
	}
	m := &release.Manifest{Schema: release.SchemaVersion, Version: "1", Counter: 2, Channel: "stable", Compatible: "rpi4",
		Created: timeZero(), Containers: set.Containers}
	if err := m.Validate(); !errors.Is(err, release.ErrInvalid) {
		t.Errorf("backup of a bind mount: Validate gives %v, want ErrInvalid", err)
	}
}
