package release

import (
	"errors"
	"testing"
)

// TestVolumeBackupOfBindMount: a backup is only possible of a named volume;
// a bind mount marked for backup is refused when the release is made, not
// only on the device.
func TestVolumeBackupOfBindMount(t *testing.T) {
	for _, tc := range []struct {
		v    Volume
		want bool // valid
	}{
		{Volume{Source: "state", Target: "/data", Backup: true}, true},
		{Volume{Source: "/etc/ssl/certs", Target: "/etc/ssl/certs", ReadOnly: true}, true},
		{Volume{Source: "/var/lib/app", Target: "/data", Backup: true}, false},
	} {
		err := tc.v.validate()
		if (err == nil) != tc.want {
			t.Errorf("%+v: got %v, want valid %v", tc.v, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v does not wrap ErrInvalid", tc.v, err)
		}
	}
	m := sample()
	m.Containers.Services[1].Volumes[1].Backup = true // the /etc/ssl/certs bind mount
	if err := m.Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("manifest with a backup of a bind mount: got %v, want ErrInvalid", err)
	}
}
