package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
	"github.com/healthguard/gateway-ota/manifest-server/report"
)

// buildBinary builds the real manifest-server command.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH; cannot build the binary")
	}
	bin := filepath.Join(t.TempDir(), "manifest-server")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type lockedLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *lockedLines) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *lockedLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestBinary drives the built command: serve a real published repository
// with timestamp re-signing, take reports, stop on SIGTERM, list devices.
func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	keys, hostKeys := filepath.Join(dir, "keys"), filepath.Join(dir, "host-keys")
	repo, db := filepath.Join(dir, "repo"), filepath.Join(dir, "devices.db")

	// A real repository, whose timestamp expires within the hour.
	if err := publish.Keygen(keys, publish.KeygenOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := publish.Init(repo, keys, publish.Options{TimestampExpiry: time.Hour}); err != nil {
		t.Fatal(err)
	}
	// The server host gets only the online keys.
	if err := os.MkdirAll(hostKeys, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{publish.TimestampKeyFile, publish.SnapshotKeyFile} {
		b, err := os.ReadFile(filepath.Join(keys, k))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hostKeys, k), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(bin, "serve", "--repo", repo, "--db", db, "--listen", "127.0.0.1:0",
		"--keys", hostKeys, "--resign-before", "2h", "--resign-check", "100ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := &lockedLines{}
	addrc := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`msg=listening addr=(\S+)`)
		for sc.Scan() {
			logs.add(sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	var base string
	select {
	case addr := <-addrc:
		base = "http://" + addr
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not log its address:\n%s", logs)
	}

	// The keeper re-signs the short-lived timestamp; the new one verifies
	// against the root with go-tuf.
	rootData, err := os.ReadFile(filepath.Join(keys, publish.RootFile))
	if err != nil {
		t.Fatal(err)
	}
	root, err := metadata.Root().FromBytes(rootData)
	if err != nil {
		t.Fatal(err)
	}
	var ts *metadata.Metadata[metadata.TimestampType]
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/metadata/timestamp.json")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := resp.Header.Get("Cache-Control"), "no-cache"; got != want {
			t.Errorf("timestamp Cache-Control: got %q, want %q", got, want)
		}
		ts, err = metadata.Timestamp().FromBytes(body)
		if err != nil {
			t.Fatalf("served timestamp: %v", err)
		}
		if ts.Signed.Version > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timestamp still version %d; logs:\n%s", ts.Signed.Version, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := root.VerifyDelegate(metadata.TIMESTAMP, ts); err != nil {
		t.Errorf("re-signed timestamp does not verify against the root: %v", err)
	}
	if left := time.Until(ts.Signed.Expires); left < 20*time.Hour {
		t.Errorf("re-signed timestamp expires in %v, want about 24h", left)
	}
	resp, err := http.Get(base + "/metadata/1.root.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("1.root.json: got %d %q, want 200 immutable", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}

	ctx := context.Background()
	for _, r := range []struct {
		device string
		rep    report.Report
	}{
		{"gw-0001", report.Report{Release: "2.0.0", Counter: 2, Slot: "B", Phase: report.PhaseTrying}},
		{"gw-0001", report.Report{Release: "2.0.0", Counter: 2, Slot: "B", Phase: report.PhaseCommitted}},
		{"gw-0002", report.Report{Release: "2.0.0", Counter: 2, Slot: "A", Phase: report.PhaseRolledBack, Error: "health check http://127.0.0.1:8080/healthz: status 503"}},
	} {
		key, err := report.LoadOrCreateKey(filepath.Join(dir, r.device+".key"))
		if err != nil {
			t.Fatal(err)
		}
		seqFile := filepath.Join(dir, r.device+".seq")
		c := &report.Client{URL: base, Key: key, Device: r.device}
		if b, err := os.ReadFile(seqFile); err == nil {
			c.Seq, _ = strconv.ParseUint(string(b), 10, 64)
		}
		if err := c.Send(ctx, r.rep); err != nil {
			t.Fatalf("report of %s: %v", r.device, err)
		}
		if err := os.WriteFile(seqFile, []byte(strconv.FormatUint(c.LastSeq(), 10)), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitc := make(chan error, 1)
	go func() { <-logDone; waitc <- cmd.Wait() }()
	select {
	case err := <-waitc:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v, want exit 0; logs:\n%s", err, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop after SIGTERM")
	}
	all := logs.String()
	for _, want := range []string{"msg=\"re-signed timestamp\"", "msg=request method=POST path=/api/v1/reports status=200", "device=gw-0002", "msg=stopped"} {
		if !strings.Contains(all, want) {
			t.Errorf("logs lack %q:\n%s", want, all)
		}
	}

	out, err := exec.Command(bin, "devices", "--db", db).CombinedOutput()
	if err != nil {
		t.Fatalf("devices: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("devices: got %d lines, want a header and 2 devices:\n%s", len(lines), out)
	}
	if got, want := strings.Join(strings.Fields(lines[0]), " "), "DEVICE RELEASE SLOT PHASE LAST ERROR LAST SEEN"; got != want {
		t.Errorf("header: got %q, want %q", got, want)
	}
	row := regexp.MustCompile(`^gw-0001 +2\.0\.0 +B +committed +- +\d+s ago$`)
	if !row.MatchString(lines[1]) {
		t.Errorf("gw-0001 row: got %q, want it to match %s", lines[1], row)
	}
	row = regexp.MustCompile(`^gw-0002 +2\.0\.0 +A +rolled-back +health check http://127\.0\.0\.1:8080/healthz: status 503 +\d+s ago$`)
	if !row.MatchString(lines[2]) {
		t.Errorf("gw-0002 row: got %q, want it to match %s", lines[2], row)
	}

	out, err = exec.Command(bin, "devices", "--db", db, "--json").Output()
	if err != nil {
		t.Fatalf("devices --json: %v", err)
	}
	var ds []devicedb.Device
	if err := json.Unmarshal(out, &ds); err != nil {
		t.Fatalf("devices --json: %v\n%s", err, out)
	}
	if len(ds) != 2 || ds[0].Phase != "committed" || ds[0].LastSeq != 2 || ds[1].LastError == "" {
		t.Errorf("devices --json: got %+v", ds)
	}
}

func TestBinaryErrors(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"devices without db", []string{"devices"}, `required flag(s) "db" not set`},
		{"devices missing db", []string{"devices", "--db", filepath.Join(dir, "none.db")}, "no such file"},
		{"serve missing repo", []string{"serve", "--repo", filepath.Join(dir, "none"), "--db", filepath.Join(dir, "d.db")}, "is not a directory"},
		{"serve keys without timestamp key", []string{"serve", "--repo", dir, "--db", filepath.Join(dir, "d.db"), "--keys", dir}, "no timestamp.key"},
		{"serve bad log format", []string{"serve", "--repo", dir, "--db", filepath.Join(dir, "d.db"), "--log-format", "xml"}, "unknown --log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(bin, tt.args...).CombinedOutput()
			if err == nil {
				t.Fatalf("got success, want an error; output:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("got output %q, want it to contain %q", out, tt.want)
			}
		})
	}
	out, err := exec.Command(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Range", "X-OTA-Signature", "--resign-before", "SIGTERM"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("serve --help lacks %q", want)
		}
	}
}

// TestExitCodes drives the built command: a bad invocation exits 2, a
// failure 1.
func TestExitCodes(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"no-such-command"}, 2},
		{[]string{"serve", "--no-such-flag"}, 2},
		{[]string{"create-update", "--repo", "r", "--keys", "k"}, 2},                                                                // --version missing
		{[]string{"create-update", "--version", "1.0.0", "--repo", "r", "--keys", "k"}, 2},                                          // no images
		{[]string{"create-update", "--version", "1.0.0", "--docker-image", "a:1", "--repo", t.TempDir(), "--keys", t.TempDir()}, 1}, // no repository
	} {
		err := exec.Command(bin, tc.args...).Run()
		got := 0
		if ee, ok := err.(*exec.ExitError); ok {
			got = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("manifest-server %v: exit %d, want %d", tc.args, got, tc.want)
		}
	}
}
