package health_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/healthguard/gateway-ota/updater/health"
	"github.com/healthguard/gateway-ota/updater/release"
)

// The confirmer of a trial boot: run the release's checks under its deadline and
// commit only if they all passed; otherwise report the reason and reboot.
func ExampleRun() {
	var starting atomic.Int32
	starting.Store(2)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if starting.Add(-1) >= 0 { // the service needs a moment after boot
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()

	m := release.Manifest{
		HealthChecks: []release.HealthCheck{
			{Kind: release.CheckHTTP, Name: "app", URL: app.URL + "/healthz"},
			{Kind: release.CheckCommand, Name: "data-mounted", Command: []string{"test", "-d", "/"}},
		},
		HealthDeadline: release.Duration(5 * time.Second),
	}
	res := health.Run(context.Background(), m.HealthChecks, time.Duration(m.HealthDeadline),
		health.Options{Interval: 10 * time.Millisecond})
	for _, c := range res.Checks {
		fmt.Printf("%s %s: ok=%v attempts=%d\n", c.Kind, c.Name, c.OK, c.Attempts)
	}
	if res.OK {
		fmt.Println("commit")
	} else {
		fmt.Println("reboot without the flag:", res.Reason())
	}
	// Output:
	// http app: ok=true attempts=3
	// command data-mounted: ok=true attempts=1
	// commit
}
