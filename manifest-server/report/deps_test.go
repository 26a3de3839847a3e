package report

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies keeps the package fit for the device binary: the
// standard library and the project's stdlib-only atomicfile (no database
// driver, no CLI or config libraries).
func TestLeanDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH; cannot list dependencies")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch p {
		case "github.com/healthguard/gateway-ota/manifest-server/report", "github.com/healthguard/gateway-ota/rpi/atomicfile":
		default:
			t.Errorf("report imports %s; want the standard library only", p)
		}
	}
}
