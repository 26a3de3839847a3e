package server_test

import (
	"net/http"
	"testing"

	"github.com/healthguard/gateway-ota/manifest-server/registry"
	"github.com/healthguard/gateway-ota/manifest-server/server"
)

func TestRegistryMounted(t *testing.T) {
	reg, err := registry.New(t.TempDir(), registry.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, server.Config{Registry: reg})
	resp, _ := f.do(t, http.MethodGet, "/v2/", nil)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Errorf("GET /v2/: status %d, want %d", got, want)
	}
	if got := resp.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Errorf("GET /v2/: Docker-Distribution-API-Version %q, want registry/2.0", got)
	}
	resp, _ = f.do(t, http.MethodGet, "/v2/app/manifests/v1", nil)
	if got, want := resp.StatusCode, http.StatusNotFound; got != want {
		t.Errorf("GET unknown manifest: status %d, want %d", got, want)
	}
	// The repository is still served beside it.
	resp, _ = f.do(t, http.MethodGet, "/metadata/timestamp.json", nil)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Errorf("GET timestamp.json: status %d, want %d", got, want)
	}
}
