package trust_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The device-side verifier stays lean: no build-side packages, no Docker SDK.
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/healthguard/gateway-ota/imagebuilder", "github.com/docker/", "manifest-server"} {
			if strings.HasPrefix(dep, banned) || strings.Contains(dep, banned) {
				t.Errorf("package trust depends on %s", dep)
			}
		}
	}
}
