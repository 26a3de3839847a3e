package updater

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"testing"
)

func TestConfigKeys(t *testing.T) {
	keys := configKeys(reflect.TypeFor[Config](), "")
	for _, k := range []string{"server", "http_timeout", "stop_units", "containers.project", "containers.keep_releases"} {
		if !slices.Contains(keys, k) {
			t.Errorf("configKeys lacks %q: %v", k, keys)
		}
	}
	for _, k := range []string{"containers", "containers.labels", "Now", "Progress", "Logf"} {
		if slices.Contains(keys, k) {
			t.Errorf("configKeys lists %q: %v", k, keys)
		}
	}
}

// Every configuration key can be set from the environment, not only those
// that also have a flag: a bad value of one is a configuration error.
func TestEnvironmentSetsEveryKey(t *testing.T) {
	for _, tc := range []struct{ env, value string }{
		{"OTA_HTTP_TIMEOUT", "bogus"},
		{"OTA_POLL_INTERVAL", "bogus"},
		{"OTA_CONTAINERS_KEEP_RELEASES", "bogus"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			var out, errb bytes.Buffer
			if got := Main(context.Background(), []string{"--root", t.TempDir(), "status"}, &out, &errb); got != ExitUsage {
				t.Errorf("%s=%s: exit %d, want %d (configuration error)\n%s", tc.env, tc.value, got, ExitUsage, errb.String())
			}
		})
	}
	t.Setenv("OTA_HTTP_TIMEOUT", "5s")
	var out, errb bytes.Buffer
	if got := Main(context.Background(), []string{"--root", t.TempDir(), "status"}, &out, &errb); got == ExitUsage {
		t.Errorf("OTA_HTTP_TIMEOUT=5s: exit %d\n%s", got, errb.String())
	}
}
