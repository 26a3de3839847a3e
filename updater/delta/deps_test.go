package delta_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The device-side applier stays lean: the standard library and the xz
// decoder, nothing of the build side, no file system parser, no Docker.
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep != "github.com/healthguard/gateway-ota/updater/delta" && !strings.HasPrefix(dep, "github.com/ulikunitz/xz") {
			t.Errorf("package delta depends on %s", dep)
		}
	}
}
