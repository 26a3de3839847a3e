// Package health runs the health checks a release signs for its trial boot and
// decides whether the trial passed.
//
// The model: every check starts at once and runs concurrently with the others. A
// check is retried, Options.Interval after each failed attempt, until it passes
// once; from then on it counts as passed, because the services of a freshly booted
// release come up one by one and a check that succeeded has shown what it must. The
// whole run is bounded by one deadline (the release's HealthDeadline): a check that
// has not passed when it expires fails with the error of its last attempt, and the
// trial fails if any check failed. Each attempt is bounded by the check's own
// Timeout. The kinds:
//
//   - http: GET the URL; passes when the status equals Expect (200 if unset). At
//     most 64 KiB of the body are read; redirects are followed only on the same
//     host. No proxy from the environment is used.
//   - tcp: passes when a TCP connection to Address opens.
//   - command: runs argv directly (no shell) in its own process group with
//     OTA_ROOT set to the device root; exit status 0 passes. Up to 4 KiB of
//     stdout and stderr go into the error. At the attempt's timeout the whole
//     group is killed, and so is anything the command left running.
//   - systemd: passes when the unit's ActiveState is "active".
//
// Run never returns an error: a failure is a result, with a one-line Reason for
// reports. An empty list of checks passes.
package health

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/healthguard/gateway-ota/updater/release"
	"github.com/healthguard/gateway-ota/updater/systemd"
)

// DefaultDeadline bounds a Run whose deadline is 0 or negative.
const DefaultDeadline = 2 * time.Minute

// DefaultInterval is the pause between attempts of a failing check when
// Options.Interval is 0.
const DefaultInterval = time.Second

// Caps on what one attempt reads.
const (
	maxBody   = 64 << 10 // HTTP response body
	maxOutput = 4 << 10  // command stdout+stderr
)

// UnitChecker reports whether a systemd unit is active and its ActiveState.
// systemd.UnitActive is one.
type UnitChecker func(ctx context.Context, unit string) (active bool, state string, err error)

// Options configure a Run. The zero value works on a device.
type Options struct {
	// Root is the device root; command checks run with OTA_ROOT=Root ("/" if
	// empty).
	Root string
	// Logf receives progress lines: each new error of a check, its pass, its
	// failure. Nil discards them. It is never called concurrently.
	Logf func(format string, a ...any)
	// Interval is the pause between attempts of a failing check; 0 means
	// DefaultInterval.
	Interval time.Duration
	// Units answers systemd checks; nil means systemd.UnitActive over D-Bus.
	Units UnitChecker
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	// Name is the check's Name, or what it probes (URL, address, command line,
	// unit) when the release gave none.
	Name string
	Kind string
	OK   bool
	// Attempts made, including the one that passed.
	Attempts int
	// Elapsed from the start of the run until the check passed or gave up.
	Elapsed time.Duration
	// Err is the last attempt's error; empty when OK.
	Err string
}

// Result is the outcome of a Run. Checks are in the order of the input.
type Result struct {
	OK      bool
	Checks  []CheckResult
	Elapsed time.Duration
}

// Reason is one line naming the first failing check and its last error, such as
// "http http://127.0.0.1:8080/healthz: status 500 after 12 attempts". It is
// empty when the result is OK.
func (r Result) Reason() string {
	if r.OK {
		return ""
	}
	for _, c := range r.Checks {
		if c.OK {
			continue
		}
		s := c.Kind + " " + c.Name + ": " + c.Err
		switch c.Attempts {
		case 0:
		case 1:
			s += " after 1 attempt"
		default:
			s += fmt.Sprintf(" after %d attempts", c.Attempts)
		}
		return oneLine(s)
	}
	return "health checks failed"
}

// Describe names a check for logs and reports: its Name, or else what it probes.
func Describe(c release.HealthCheck) string {
	if c.Name != "" {
		return c.Name
	}
	switch c.Kind {
	case release.CheckHTTP:
		return c.URL
	case release.CheckTCP:
		return c.Address
	case release.CheckCommand:
		s := strings.Join(c.Command, " ")
		if len(s) > 80 {
			s = s[:77] + "..."
		}
		return s
	case release.CheckSystemd:
		return c.Unit
	}
	return "check"
}

// Run runs the checks concurrently, each until it passes once or the deadline
// (DefaultDeadline if deadline <= 0) or ctx ends, and reports every outcome.
func Run(ctx context.Context, checks []release.HealthCheck, deadline time.Duration, opts Options) Result {
	start := time.Now()
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()

	r := newRunner(opts)
	defer r.close()
	res := Result{Checks: make([]CheckResult, len(checks)), OK: true}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { res.Checks[i] = r.check(ctx, start, c) })
	}
	wg.Wait()
	for _, c := range res.Checks {
		res.OK = res.OK && c.OK
	}
	res.Elapsed = time.Since(start)
	return res
}

// runner holds what the checks of one Run share.
type runner struct {
	root     string
	interval time.Duration
	units    UnitChecker
	client   *http.Client
	env      []string

	logMu sync.Mutex
	logf  func(format string, a ...any)
}

func newRunner(opts Options) *runner {
	r := &runner{
		root:     opts.Root,
		interval: opts.Interval,
		units:    opts.Units,
		logf:     opts.Logf,
	}
	if r.root == "" {
		r.root = "/"
	}
	if r.interval <= 0 {
		r.interval = DefaultInterval
	}
	if r.units == nil {
		r.units = systemd.UnitActive
	}
	r.client = newHTTPClient()
	r.env = commandEnv(r.root)
	return r
}

func (r *runner) close() {
	r.client.CloseIdleConnections()
}

func (r *runner) log(format string, a ...any) {
	if r.logf == nil {
		return
	}
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.logf(format, a...)
}

// probe is one attempt of a check; it returns nil when the check passes.
type probe func(ctx context.Context) error

func (r *runner) probe(c release.HealthCheck, timeout time.Duration) (probe, error) {
	switch c.Kind {
	case release.CheckHTTP:
		return func(ctx context.Context) error { return r.httpProbe(ctx, c.URL, c.Expect, timeout) }, nil
	case release.CheckTCP:
		return func(ctx context.Context) error { return tcpProbe(ctx, c.Address, timeout) }, nil
	case release.CheckCommand:
		if len(c.Command) == 0 || c.Command[0] == "" {
			return nil, fmt.Errorf("command check without a command")
		}
		return func(ctx context.Context) error { return r.commandProbe(ctx, c.Command, timeout) }, nil
	case release.CheckSystemd:
		return func(ctx context.Context) error { return r.unitProbe(ctx, c.Unit, timeout) }, nil
	}
	return nil, fmt.Errorf("unknown check kind %q", c.Kind)
}

// check retries one check until it passes once or ctx ends.
func (r *runner) check(ctx context.Context, start time.Time, c release.HealthCheck) CheckResult {
	res := CheckResult{Name: Describe(c), Kind: c.Kind}
	label := c.Kind + " " + res.Name
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = release.DefaultCheckTimeout
	}
	p, err := r.probe(c, timeout)
	if err != nil {
		res.Err = err.Error()
		res.Elapsed = time.Since(start)
		r.log("health: %s: failed: %s", label, res.Err)
		return res
	}
	var last string
	for {
		res.Attempts++
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := p(actx)
		cancel()
		if err == nil {
			res.OK = true
			res.Elapsed = time.Since(start)
			r.log("health: %s: passed after %d attempt(s), %v", label, res.Attempts, res.Elapsed.Round(time.Millisecond))
			return res
		}
		if ctx.Err() != nil || pastDeadline(ctx) {
			// The run's deadline or cancellation cut this attempt short: its
			// error says nothing about the service, the previous one does.
			// (The network poller can report the deadline a moment before
			// the context's own timer marks it done, hence pastDeadline.)
			if last == "" {
				last = endedBy(ctx, time.Since(start))
			}
			break
		}
		if msg := err.Error(); msg != last {
			r.log("health: %s: attempt %d: %s", label, res.Attempts, oneLine(msg))
			last = msg
		}
		t := time.NewTimer(r.interval)
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
			t.Stop()
		}
		break
	}
	res.Err = last
	res.Elapsed = time.Since(start)
	r.log("health: %s: failed after %d attempt(s): %s", label, res.Attempts, oneLine(last))
	return res
}

// endedBy describes why a run stopped before a check had any result.
func endedBy(ctx context.Context, after time.Duration) string {
	if ctx.Err() == context.Canceled {
		return "canceled before the first result"
	}
	return fmt.Sprintf("no result within the deadline (%v)", after.Round(time.Millisecond))
}

// oneLine collapses whitespace runs, newlines included, into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// pastDeadline reports whether ctx's deadline has passed.
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}
