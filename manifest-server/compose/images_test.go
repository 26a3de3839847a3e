package compose_test

import (
	"strings"
	"testing"

	"github.com/healthguard/gateway-ota/manifest-server/compose"
)

func TestServiceName(t *testing.T) {
	for ref, want := range map[string]string{
		"healthguard/mqtt-bridge:1.2.0":                                   "mqtt-bridge",
		"127.0.0.1:5000/a/b/App.Server@sha256:" + strings.Repeat("a", 64): "app-server",
		"redis": "redis",
	} {
		if got := compose.ServiceName(ref); got != want {
			t.Errorf("ServiceName(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestFromImages(t *testing.T) {
	set, err := compose.FromImages([]string{"a/x:1", "b/y:2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(set.Services); got != 2 || set.Services[0].Name != "x" || set.Services[1].Image != "b/y:2" {
		t.Errorf("FromImages = %+v", set.Services)
	}
	if _, err := compose.FromImages([]string{"a/x:1", "b/x:2"}); err == nil {
		t.Errorf("FromImages accepted two services named x")
	}
}
