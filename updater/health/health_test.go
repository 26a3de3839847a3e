package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/healthguard/gateway-ota/updater/release"
)

// fast are options for tests: short interval, logs into the test.
func fast(t *testing.T) Options {
	return Options{Interval: 10 * time.Millisecond, Logf: t.Logf, Root: "/device"}
}

func dur(d time.Duration) release.Duration { return release.Duration(d) }

// flaky serves status fail for the first n requests, then status 200.
func flaky(t *testing.T, n int32, fail int) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= n {
			http.Error(w, "db not ready", fail)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, &hits
}

func only(t *testing.T, r Result) CheckResult {
	t.Helper()
	if len(r.Checks) != 1 {
		t.Fatalf("got %d check results, want 1", len(r.Checks))
	}
	return r.Checks[0]
}

func TestEmptyPasses(t *testing.T) {
	r := Run(context.Background(), nil, time.Second, fast(t))
	if !r.OK || len(r.Checks) != 0 || r.Reason() != "" {
		t.Errorf("Run(no checks) = %+v, reason %q; want OK, no checks, no reason", r, r.Reason())
	}
}

func TestHTTPFailsThenPasses(t *testing.T) {
	s, hits := flaky(t, 3, http.StatusInternalServerError)
	url := s.URL + "/healthz"
	r := Run(context.Background(), []release.HealthCheck{{Kind: release.CheckHTTP, URL: url}}, 5*time.Second, fast(t))
	c := only(t, r)
	if !r.OK || !c.OK || c.Attempts != 4 || c.Err != "" || c.Name != url || c.Kind != "http" {
		t.Errorf("got %+v, want OK after 4 attempts named %s", c, url)
	}
	if got := hits.Load(); got != 4 {
		t.Errorf("server saw %d requests, want 4: a passed check is not probed again", got)
	}
}

func TestHTTPNeverPasses(t *testing.T) {
	s, _ := flaky(t, 1<<30, http.StatusServiceUnavailable)
	url := s.URL + "/healthz"
	deadline := 300 * time.Millisecond
	start := time.Now()
	r := Run(context.Background(), []release.HealthCheck{{Kind: release.CheckHTTP, URL: url}}, deadline, fast(t))
	took := time.Since(start)
	c := only(t, r)
	if r.OK || c.OK {
		t.Fatalf("a server that always answers 503 passed: %+v", c)
	}
	if took < deadline || took > deadline+2*time.Second {
		t.Errorf("Run took %v with a %v deadline", took, deadline)
	}
	if c.Attempts < 3 {
		t.Errorf("got %d attempts in %v at a 10ms interval, want several", c.Attempts, deadline)
	}
	if want := `status 503: "db not ready"`; c.Err != want {
		t.Errorf("Err = %q, want %q", c.Err, want)
	}
	want := fmt.Sprintf(`http %s: status 503: "db not ready" after %d attempts`, url, c.Attempts)
	if got := r.Reason(); got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
}

func TestHTTPExpect(t *testing.T) {
	noContent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer noContent.Close()
	ok, _ := flaky(t, 0, 0)
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckHTTP, Name: "204 wanted", URL: noContent.URL, Expect: 204},
		{Kind: release.CheckHTTP, Name: "200 is not 204", URL: ok.URL, Expect: 204},
	}, 200*time.Millisecond, fast(t))
	if !r.Checks[0].OK {
		t.Errorf("Expect 204 against a 204 server: %+v", r.Checks[0])
	}
	if r.Checks[1].OK || r.Checks[1].Err != `status 200: "ok"` {
		t.Errorf("Expect 204 against a 200 server: %+v, want a failure with status 200", r.Checks[1])
	}
	if r.OK || !strings.HasPrefix(r.Reason(), "http 200 is not 204: status 200") {
		t.Errorf("Reason() = %q, want the second check named", r.Reason())
	}
}

func TestHTTPAttemptTimeout(t *testing.T) {
	unblock := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-unblock:
		}
	}))
	defer s.Close()
	defer close(unblock)
	start := time.Now()
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckHTTP, URL: s.URL, Timeout: dur(100 * time.Millisecond)},
	}, 350*time.Millisecond, fast(t))
	c := only(t, r)
	if c.OK || c.Err != "no response within 100ms" || c.Attempts < 2 {
		t.Errorf("hanging server: %+v, want several attempts failing with \"no response within 100ms\"", c)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Run took %v with a 350ms deadline", took)
	}
}

func TestHTTPRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	defer other.Close()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/off":
			http.Redirect(w, r, other.URL+"/ok", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/ok":
			fmt.Fprintln(w, "ok")
		}
	}))
	defer s.Close()
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckHTTP, URL: s.URL + "/same"},
		{Kind: release.CheckHTTP, URL: s.URL + "/off"},
		{Kind: release.CheckHTTP, URL: s.URL + "/loop"},
	}, 150*time.Millisecond, fast(t))
	if !r.Checks[0].OK {
		t.Errorf("same-host redirect: %+v, want OK", r.Checks[0])
	}
	if c := r.Checks[1]; c.OK || !strings.Contains(c.Err, "redirect to another host") {
		t.Errorf("off-host redirect: %+v, want refused", c)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the other host got %d requests, want 0", n)
	}
	if c := r.Checks[2]; c.OK || !strings.Contains(c.Err, "stopped after 10 redirects") {
		t.Errorf("redirect loop: %+v, want stopped", c)
	}
}

func TestHTTPBodyCapped(t *testing.T) {
	var sent atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
		chunk := []byte(strings.Repeat("x", 32<<10) + "\n")
		for i := 0; i < 1024; i++ { // 32 MiB unless the client stops reading
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer s.Close()
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckHTTP, URL: s.URL + "/ok"},
		{Kind: release.CheckHTTP, URL: s.URL + "/fail"},
	}, 200*time.Millisecond, fast(t))
	if !r.Checks[0].OK {
		t.Errorf("endless 200 body: %+v, want OK", r.Checks[0])
	}
	if c := r.Checks[1]; c.OK || len(c.Err) > 200 || !strings.HasPrefix(c.Err, "status 500: \"xxx") {
		t.Errorf("endless 500 body: OK %v, Err %d bytes %.40q..., want a short error", c.OK, len(c.Err), c.Err)
	}
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckTCP, Address: l.Addr().String()},
		{Kind: release.CheckTCP, Name: "mqtt", Address: closedAddr},
	}, 200*time.Millisecond, fast(t))
	if !r.Checks[0].OK || r.Checks[0].Attempts != 1 {
		t.Errorf("open port: %+v, want OK at once", r.Checks[0])
	}
	if c := r.Checks[1]; c.OK || !strings.Contains(c.Err, "connection refused") {
		t.Errorf("closed port: %+v, want connection refused", c)
	}
	if got := r.Reason(); !strings.HasPrefix(got, "tcp mqtt: ") {
		t.Errorf("Reason() = %q, want it to name tcp mqtt", got)
	}
}

func TestCommand(t *testing.T) {
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckCommand, Command: []string{"true"}},
		{Kind: release.CheckCommand, Command: []string{"false"}},
		{Kind: release.CheckCommand, Name: "noisy", Command: []string{"sh", "-c", "echo out; echo boom >&2; exit 3"}},
		{Kind: release.CheckCommand, Name: "flood", Command: []string{"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; exit 1"}},
		{Kind: release.CheckCommand, Name: "missing", Command: []string{"/nonexistent/check"}},
		// No shell: the metacharacters are plain arguments.
		{Kind: release.CheckCommand, Name: "argv", Command: []string{"test", "a;b", "=", "a;b"}},
	}, 200*time.Millisecond, fast(t))
	want := []struct {
		ok  bool
		err string
	}{
		{true, ""},
		{false, "exit status 1"},
		{false, "exit status 3: out\nboom"},
		{false, "exit status 1: " + strings.Repeat("x", maxOutput) + " [output truncated]"},
		{false, "fork/exec /nonexistent/check: no such file or directory"},
		{true, ""},
	}
	for i, w := range want {
		if c := r.Checks[i]; c.OK != w.ok || c.Err != w.err {
			t.Errorf("check %d (%s): OK %v, Err %.80q; want %v, %.80q", i, c.Name, c.OK, c.Err, w.ok, w.err)
		}
	}
	if got, want := r.Reason(), "command false: exit status 1 after"; !strings.HasPrefix(got, want) {
		t.Errorf("Reason() = %q, want prefix %q", got, want)
	}
}

func TestCommandEnvironment(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "/run/systemd/notify")
	t.Setenv("WATCHDOG_USEC", "60000000")
	t.Setenv("OTA_ROOT", "/elsewhere")
	opts := fast(t)
	opts.Root = "/tmp/virtual pi"
	r := Run(context.Background(), []release.HealthCheck{{
		Kind: release.CheckCommand,
		Command: []string{"sh", "-c", `test "$OTA_ROOT" = "/tmp/virtual pi" && test -z "$NOTIFY_SOCKET$WATCHDOG_USEC" && test "$(pwd)" = / ||
			{ echo "OTA_ROOT=$OTA_ROOT NOTIFY_SOCKET=$NOTIFY_SOCKET WATCHDOG_USEC=$WATCHDOG_USEC pwd=$(pwd)"; exit 1; }`},
	}}, time.Second, opts)
	if c := only(t, r); !c.OK {
		t.Errorf("environment of a command check: %s", c.Err)
	}
	r = Run(context.Background(), []release.HealthCheck{{
		Kind: release.CheckCommand, Command: []string{"sh", "-c", `test "$OTA_ROOT" = /`},
	}}, time.Second, Options{Interval: 10 * time.Millisecond})
	if c := only(t, r); !c.OK {
		t.Errorf("OTA_ROOT without Options.Root: %s, want /", c.Err)
	}
}

// alive reports whether pid runs (a zombie nobody reaped counts as dead).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(after, "Z")
}

func TestCommandTimeoutKillsGroup(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc to look for leftover processes")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	r := Run(context.Background(), []release.HealthCheck{{
		Kind:    release.CheckCommand,
		Command: []string{"sh", "-c", `sleep 30 & echo $! > "$0"; echo waiting; wait`, pidFile},
		Timeout: dur(200 * time.Millisecond),
	}}, 300*time.Millisecond, fast(t))
	took := time.Since(start)
	c := only(t, r)
	if c.OK || c.Err != "killed after 200ms: waiting" {
		t.Errorf("hanging command: %+v, want Err \"killed after 200ms: waiting\"", c)
	}
	if took > 3*time.Second {
		t.Errorf("Run took %v with a 300ms deadline", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; alive(pid) && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("the command's background child %d survived its timeout", pid)
	}
}

func TestCommandLeftoverChild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	// The command passes at once but its child keeps stdout open.
	r := Run(context.Background(), []release.HealthCheck{{
		Kind:    release.CheckCommand,
		Command: []string{"sh", "-c", `sleep 30 & echo $! > "$0"`, pidFile},
		Timeout: dur(10 * time.Second),
	}}, 20*time.Second, fast(t))
	if c := only(t, r); !c.OK || c.Attempts != 1 {
		t.Errorf("command that exits 0 leaving a child: %+v, want OK", c)
	}
	if took := time.Since(start); took > waitDelay+2*time.Second {
		t.Errorf("Run took %v, want about the %v wait delay", took, waitDelay)
	}
	b, _ := os.ReadFile(pidFile)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
		for i := 0; alive(pid) && i < 100; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("the command's leftover child %d still runs", pid)
		}
	}
}

func TestSystemdUnits(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	opts := fast(t)
	opts.Units = func(ctx context.Context, unit string) (bool, string, error) {
		mu.Lock()
		calls[unit]++
		n := calls[unit]
		mu.Unlock()
		switch unit {
		case "app.service":
			if n < 3 {
				return false, "activating", nil
			}
			return true, "active", nil
		case "crashloop.service":
			return false, "failed", nil
		case "slow.service":
			<-ctx.Done()
			return false, "", ctx.Err()
		}
		return false, "", errors.New("unit " + unit + ": connect to systemd: no bus")
	}
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckSystemd, Unit: "app.service"},
		{Kind: release.CheckSystemd, Unit: "crashloop.service"},
		{Kind: release.CheckSystemd, Unit: "nobus.service"},
		{Kind: release.CheckSystemd, Unit: "slow.service", Timeout: dur(50 * time.Millisecond)},
	}, 300*time.Millisecond, opts)
	if c := r.Checks[0]; !c.OK || c.Attempts != 3 {
		t.Errorf("app.service: %+v, want OK at the third attempt", c)
	}
	if c := r.Checks[1]; c.OK || c.Err != "state failed, want active" {
		t.Errorf("crashloop.service: %+v", c)
	}
	if c := r.Checks[2]; c.OK || c.Err != "unit nobus.service: connect to systemd: no bus" {
		t.Errorf("nobus.service: %+v", c)
	}
	if c := r.Checks[3]; c.OK || c.Err != "no answer from systemd within 50ms" {
		t.Errorf("slow.service: %+v", c)
	}
	want := fmt.Sprintf("systemd crashloop.service: state failed, want active after %d attempts", r.Checks[1].Attempts)
	if got := r.Reason(); got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
}

// TestConcurrent proves the checks run at the same time: each server answers only
// once all of them have been asked.
func TestConcurrent(t *testing.T) {
	const n = 4
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	var checks []release.HealthCheck
	for i := 0; i < n; i++ {
		var once sync.Once
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(arrived.Done)
			select {
			case <-all:
			case <-r.Context().Done():
				return
			}
		}))
		defer s.Close()
		checks = append(checks, release.HealthCheck{Kind: release.CheckHTTP, URL: s.URL, Timeout: dur(5 * time.Second)})
	}
	r := Run(context.Background(), checks, 5*time.Second, fast(t))
	if !r.OK {
		t.Fatalf("checks that each wait for all the others: %s", r.Reason())
	}
	for i, c := range r.Checks {
		if c.Attempts != 1 {
			t.Errorf("check %d: %d attempts, want 1", i, c.Attempts)
		}
	}
}

func TestPassedStaysPassed(t *testing.T) {
	// One check passes at once and its service then breaks; the other passes
	// late. Both count as passed.
	var broken atomic.Bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Swap(true) {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer s.Close()
	late, _ := flaky(t, 5, http.StatusBadGateway)
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckHTTP, URL: s.URL},
		{Kind: release.CheckHTTP, URL: late.URL},
	}, 5*time.Second, fast(t))
	if !r.OK || r.Checks[0].Attempts != 1 || r.Checks[1].Attempts != 6 {
		t.Errorf("got %+v, want both OK, after 1 and 6 attempts", r.Checks)
	}
	if r.Elapsed < r.Checks[1].Elapsed || r.Checks[0].Elapsed > r.Checks[1].Elapsed {
		t.Errorf("elapsed: run %v, checks %v and %v", r.Elapsed, r.Checks[0].Elapsed, r.Checks[1].Elapsed)
	}
}

func TestCancel(t *testing.T) {
	s, _ := flaky(t, 1<<30, http.StatusInternalServerError)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := Run(ctx, []release.HealthCheck{
		{Kind: release.CheckHTTP, URL: s.URL},
		{Kind: release.CheckCommand, Command: []string{"sleep", "30"}},
	}, time.Hour, fast(t))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Run took %v after its context was canceled at 100ms", took)
	}
	if r.OK {
		t.Fatal("a canceled run passed")
	}
	if c := r.Checks[0]; c.Err != "status 500: \"db not ready\"" {
		t.Errorf("canceled http check: Err %q, want its last real error", c.Err)
	}
	if c := r.Checks[1]; c.Err != "canceled before the first result" || c.Attempts != 1 {
		t.Errorf("canceled command: %+v", c)
	}
}

func TestDeadlineBeforeFirstResult(t *testing.T) {
	r := Run(context.Background(), []release.HealthCheck{
		{Kind: release.CheckCommand, Name: "slow", Command: []string{"sleep", "30"}, Timeout: dur(time.Minute)},
	}, 100*time.Millisecond, fast(t))
	c := only(t, r)
	if c.OK || !strings.HasPrefix(c.Err, "no result within the deadline (") {
		t.Errorf("got %+v, want a deadline error", c)
	}
	if !strings.HasPrefix(r.Reason(), "command slow: no result within the deadline (") || !strings.HasSuffix(r.Reason(), "after 1 attempt") {
		t.Errorf("Reason() = %q", r.Reason())
	}
}

func TestUnknownKind(t *testing.T) {
	start := time.Now()
	r := Run(context.Background(), []release.HealthCheck{{Kind: "smtp", Name: "mail"}}, time.Minute, fast(t))
	c := only(t, r)
	if r.OK || c.Attempts != 0 || c.Err != `unknown check kind "smtp"` {
		t.Errorf("got %+v, want an immediate failure", c)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("an unknown kind took %v to fail, want at once", took)
	}
	if got, want := r.Reason(), `smtp mail: unknown check kind "smtp"`; got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		r    Result
		want string
	}{
		{"ok", Result{OK: true}, ""},
		{"first failing", Result{Checks: []CheckResult{
			{Kind: "tcp", Name: "db:5432", OK: true, Attempts: 2},
			{Kind: "http", Name: "http://127.0.0.1:8080/healthz", Err: "status 500", Attempts: 12},
			{Kind: "tcp", Name: "mqtt", Err: "connection refused", Attempts: 12},
		}}, "http http://127.0.0.1:8080/healthz: status 500 after 12 attempts"},
		{"one attempt, one line", Result{Checks: []CheckResult{
			{Kind: "command", Name: "check-db", Err: "exit status 1: line one\nline two\n\tline three", Attempts: 1},
		}}, "command check-db: exit status 1: line one line two line three after 1 attempt"},
		{"no checks failed but not OK", Result{}, "health checks failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Reason(); got != tt.want {
				t.Errorf("Reason() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	long := strings.Repeat("a", 100)
	tests := []struct {
		c    release.HealthCheck
		want string
	}{
		{release.HealthCheck{Kind: "http", Name: "api", URL: "http://x/"}, "api"},
		{release.HealthCheck{Kind: "http", URL: "http://x/healthz"}, "http://x/healthz"},
		{release.HealthCheck{Kind: "tcp", Address: "127.0.0.1:1883"}, "127.0.0.1:1883"},
		{release.HealthCheck{Kind: "command", Command: []string{"/usr/bin/check", "--db"}}, "/usr/bin/check --db"},
		{release.HealthCheck{Kind: "command", Command: []string{long}}, long[:77] + "..."},
		{release.HealthCheck{Kind: "systemd", Unit: "docker.service"}, "docker.service"},
		{release.HealthCheck{Kind: "smtp"}, "check"},
	}
	for _, tt := range tests {
		if got := Describe(tt.c); got != tt.want {
			t.Errorf("Describe(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestLogfNotConcurrent(t *testing.T) {
	var inside atomic.Int32
	var lines atomic.Int32
	opts := fast(t)
	opts.Logf = func(format string, a ...any) {
		if inside.Add(1) != 1 {
			t.Error("Logf called concurrently")
		}
		time.Sleep(time.Millisecond)
		lines.Add(1)
		inside.Add(-1)
	}
	var checks []release.HealthCheck
	for i := 0; i < 8; i++ {
		checks = append(checks, release.HealthCheck{Kind: release.CheckCommand, Command: []string{"sh", "-c", "exit " + strconv.Itoa(i%3)}})
	}
	Run(context.Background(), checks, 100*time.Millisecond, opts)
	if lines.Load() == 0 {
		t.Error("Logf never called")
	}
}
