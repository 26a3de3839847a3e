// Command benchdowntime measures how long a service is unreachable while
// its container is replaced: by the updater's container manager with
// download-then-kill and with hand-over, and by `docker compose up -d` (or
// docker-compose) recreating the same service. A prober polls
// http://web:8080/version every 10 ms from a container on the service's
// network and counts failed probes and the longest gap between two
// successful ones. It needs the Docker engine and the go tool; nothing is
// pulled from outside (images are built FROM scratch around the test
// service and pushed to a registry on the loopback).
//
// Usage: go run ./scripts/benchdowntime (see scripts/bench-downtime.sh).
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/updater/containers"
	"github.com/healthguard/gateway-ota/updater/containers/containerstest"
	"github.com/healthguard/gateway-ota/updater/release"
)

// result is what the prober writes.
type result struct {
	Probes int `json:"probes"`
	Failed int `json:"failed"`
	// DNSFailed counts the failed probes whose name lookup failed or was
	// still under way when the probe timed out (the engine's embedded DNS
	// answered too late or not at all): they never reached a container.
	DNSFailed int           `json:"dns_failed"`
	MaxGap    time.Duration `json:"max_gap"`
	// Errors are the first few failures and Last the last few, for the
	// reader.
	Errors []string `json:"errors,omitempty"`
	Last   []string `json:"last,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		probe(os.Args[2:])
		return
	}
	flag.BoolVar(&verbose, "v", false, "print the first failed probes of each method")
	flag.StringVar(&only, "only", "", "run only this method: download-then-kill, hand-over or compose")
	flag.IntVar(&runs, "runs", 1, "run each method this many times, a row per run, and sum them up")
	flag.Parse()
	if runs < 1 {
		fmt.Fprintln(os.Stderr, "benchdowntime: -runs must be at least 1")
		os.Exit(2)
	}
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "benchdowntime:", err)
		os.Exit(1)
	}
}

// probe polls a URL every interval until SIGTERM, then writes a result.
func probe(args []string) {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	url := fs.String("url", "http://web:8080/version", "URL to poll")
	every := fs.Duration("interval", 10*time.Millisecond, "poll interval")
	out := fs.String("out", "/out/result.json", "result file")
	fs.Parse(args)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	c := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 300 * time.Millisecond}).DialContext}}
	var r result
	lastOK := time.Time{}
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			b, _ := json.Marshal(r)
			os.WriteFile(*out, b, 0o644)
			return
		case <-t.C:
		}
		r.Probes++
		began := time.Now()
		var dnsDone, connStart time.Time
		var addrs string
		var dnsFailed bool
		trace := &httptrace.ClientTrace{
			DNSDone: func(i httptrace.DNSDoneInfo) {
				dnsDone = time.Now()
				addrs = fmt.Sprint(i.Addrs)
				dnsFailed = i.Err != nil
			},
			ConnectStart: func(string, string) {
				if connStart.IsZero() {
					connStart = time.Now()
				}
			},
		}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, *url, nil)
		resp, err := c.Do(req)
		ok := err == nil && resp.StatusCode == http.StatusOK
		if err == nil {
			resp.Body.Close()
		}
		now := time.Now()
		if !ok {
			r.Failed++
			if dnsDone.IsZero() || dnsFailed {
				r.DNSFailed++
			}
			if err == nil {
				err = errors.New(resp.Status)
			}
			msg := began.Format("15:04:05.000 ") + err.Error() +
				fmt.Sprintf(" (dns %v %s, connect after %v)", dnsDone.Sub(began).Round(time.Millisecond), addrs, connStart.Sub(began).Round(time.Millisecond))
			if len(r.Errors) < 5 {
				r.Errors = append(r.Errors, msg)
			} else {
				r.Last = append(r.Last, msg)
				if len(r.Last) > 5 {
					r.Last = r.Last[1:]
				}
			}
			continue
		}
		if !lastOK.IsZero() && now.Sub(lastOK) > r.MaxGap {
			r.MaxGap = now.Sub(lastOK)
		}
		lastOK = now
	}
}

const test = "benchdowntime"

var (
	verbose bool
	only    string
	runs    int
)

func run(ctx context.Context) error {
	if why := containerstest.Available(); why != "" {
		return errors.New(why)
	}
	cli, err := containerstest.Client()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "benchdowntime-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	reg, err := containerstest.StartRegistry(filepath.Join(tmp, "registry"))
	if err != nil {
		return err
	}
	defer reg.Close()
	refs := map[string]string{}
	var cleanup []string
	for _, v := range []string{"1", "2"} {
		tag := reg.Host + "/web:" + v
		if err := containerstest.Build(ctx, cli, containerstest.Image{Tag: tag, Env: map[string]string{"VERSION": v}, Test: test}); err != nil {
			return err
		}
		if refs[v], err = containerstest.Push(ctx, cli, tag); err != nil {
			return err
		}
		cleanup = append(cleanup, tag, refs[v])
	}
	proberImage, err := buildProber(ctx, cli, tmp)
	if err != nil {
		return err
	}
	cleanup = append(cleanup, proberImage)
	defer containerstest.Cleanup(context.Background(), cli, test, cleanup...)

	fmt.Printf("%-34s %8s %8s %8s %12s\n", "method", "probes", "failed", "in DNS", "longest gap")
	row := func(name string, r result) {
		fmt.Printf("%-34s %8d %8d %8d %12s\n", name, r.Probes, r.Failed, r.DNSFailed, r.MaxGap.Round(time.Millisecond))
		if verbose {
			for _, e := range r.Errors {
				fmt.Printf("    %s\n", e)
			}
			if len(r.Last) > 0 {
				fmt.Println("    ...")
			}
			for _, e := range r.Last {
				fmt.Printf("    %s\n", e)
			}
		}
	}
	type method struct {
		name string
		run  func() (string, result, error)
	}
	var methods []method
	for _, strategy := range []string{release.StrategyDownloadThenKill, release.StrategyHandOver} {
		if only != "" && only != strategy {
			continue
		}
		methods = append(methods, method{run: func() (string, result, error) {
			r, err := managerRun(ctx, cli, tmp, proberImage, refs, strategy)
			return "ota-updater " + strategy, r, err
		}})
	}
	if only == "" || only == "compose" {
		methods = append(methods, method{run: func() (string, result, error) {
			return composeRun(ctx, cli, tmp, proberImage, refs)
		}})
	}
	type total struct {
		clean, failed, dns int
		minGap, maxGap     time.Duration
	}
	totals := make([]total, len(methods))
	for i := range runs {
		for j := range methods {
			m := &methods[j]
			name, r, err := m.run()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			m.name = name
			row(name, r)
			t := &totals[j]
			t.failed += r.Failed
			t.dns += r.DNSFailed
			if r.Failed == 0 {
				t.clean++
			}
			if i == 0 || r.MaxGap < t.minGap {
				t.minGap = r.MaxGap
			}
			t.maxGap = max(t.maxGap, r.MaxGap)
		}
	}
	if runs > 1 {
		fmt.Printf("\n%-34s %6s %14s %14s %8s %20s\n", "method", "runs", "runs w/o fail", "failed probes", "in DNS", "longest gap")
		for j, m := range methods {
			t := totals[j]
			fmt.Printf("%-34s %6d %14d %14d %8d %20s\n", m.name, runs, t.clean, t.failed, t.dns,
				fmt.Sprintf("%v-%v", t.minGap.Round(time.Millisecond), t.maxGap.Round(time.Millisecond)))
		}
	}
	return nil
}

// buildProber builds an image FROM scratch around this program, built
// static.
func buildProber(ctx context.Context, cli *client.Client, tmp string) (string, error) {
	bin := filepath.Join(tmp, "prober")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = sourceDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build prober: %v\n%s", err, b)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte("FROM scratch\nCOPY prober /prober\nLABEL " + containerstest.LabelTest + "=" + test + "\nENTRYPOINT [\"/prober\", \"probe\"]\n")
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))})
	tw.Write(df)
	tw.WriteHeader(&tar.Header{Name: "prober", Mode: 0o755, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	const tag = "ota-bench-prober:latest"
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true})
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var sink bytes.Buffer
	sink.ReadFrom(res.Body)
	if bytes.Contains(sink.Bytes(), []byte(`"error"`)) {
		return "", fmt.Errorf("build prober image: %s", sink.String())
	}
	return tag, nil
}

// sourceDir is this program's directory (the script runs it from the
// repository root).
func sourceDir() string {
	if _, err := os.Stat("scripts/benchdowntime/main.go"); err == nil {
		return "scripts/benchdowntime"
	}
	return "."
}

// withProber runs the prober on network while f runs, with a second of
// steady state before and after.
func withProber(ctx context.Context, cli *client.Client, tmp, image, netName string, f func() error) (result, error) {
	out, err := os.MkdirTemp(tmp, "probe-")
	if err != nil {
		return result{}, err
	}
	os.Chmod(out, 0o777)
	c, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Labels: map[string]string{containerstest.LabelTest: test}},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(netName), Mounts: []mount.Mount{{Type: mount.TypeBind, Source: out, Target: "/out"}}},
	})
	if err != nil {
		return result{}, err
	}
	defer cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
	if _, err := cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return result{}, err
	}
	time.Sleep(time.Second)
	ferr := f()
	time.Sleep(time.Second)
	timeout := 5
	cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &timeout})
	if ferr != nil {
		return result{}, ferr
	}
	b, err := os.ReadFile(filepath.Join(out, "result.json"))
	if err != nil {
		return result{}, fmt.Errorf("prober result: %w", err)
	}
	var r result
	return r, json.Unmarshal(b, &r)
}

func managerRun(ctx context.Context, cli *client.Client, tmp, prober string, refs map[string]string, strategy string) (result, error) {
	project := "otabench"
	dir, err := os.MkdirTemp(tmp, "manager-")
	if err != nil {
		return result{}, err
	}
	run := test + "-" + strategy
	m := &containers.Manager{Client: cli, Dir: dir, Project: project, Labels: map[string]string{containerstest.LabelTest: run}}
	if verbose {
		m.Logf = func(format string, args ...any) {
			fmt.Printf("    %s manager: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}
	mk := func(version string, counter uint64, v string) *release.Manifest {
		s := release.Service{Name: "web", Image: refs[v], Restart: release.RestartUnlessStopped, StopTimeout: release.Duration(5 * time.Second),
			Health: &release.ContainerHealth{Kind: release.ContainerHealthHTTP, URL: "http://web:8080/healthz", Interval: release.Duration(100 * time.Millisecond)}}
		if strategy == release.StrategyHandOver {
			s.HandOver = true
		}
		return &release.Manifest{Version: version, Counter: counter, HealthDeadline: release.Duration(30 * time.Second),
			Containers: &release.ContainerSet{Strategy: strategy, Services: []release.Service{s}}}
	}
	r1, r2 := mk("1", 1, "1"), mk("2", 2, "2")
	step := func(from, to *release.Manifest) error {
		if _, err := m.Apply(ctx, from, to, ""); err != nil {
			return err
		}
		if err := m.WaitHealthy(ctx, to.Containers, 30*time.Second); err != nil {
			return err
		}
		return m.Committed(ctx, to)
	}
	if err := step(nil, r1); err != nil {
		return result{}, err
	}
	// The images are present: the measured switch is the stop and start.
	if err := m.Ensure(ctx, r2.Containers); err != nil {
		return result{}, err
	}
	r, err := withProber(ctx, cli, tmp, prober, project, func() error { return step(r1, r2) })
	containerstest.Cleanup(context.Background(), cli, run)
	return r, err
}

// composeRun recreates the same service with the compose tool installed:
// the compose v2 plugin, else docker-compose, else docker stop/run.
func composeRun(ctx context.Context, cli *client.Client, tmp, prober string, refs map[string]string) (string, result, error) {
	project := "otabenchcompose"
	file := filepath.Join(tmp, "compose.yaml")
	write := func(v string) error {
		y := fmt.Sprintf("services:\n  web:\n    image: %s\n    restart: unless-stopped\n    stop_grace_period: 5s\n    labels:\n      %s: %s\nnetworks:\n  default:\n    labels:\n      %s: %s\n",
			refs[v], containerstest.LabelTest, test, containerstest.LabelTest, test)
		return os.WriteFile(file, []byte(y), 0o644)
	}
	var argv []string
	name := ""
	if exec.Command("docker", "compose", "version").Run() == nil {
		argv, name = []string{"docker", "compose"}, "docker compose up -d"
	} else if _, err := exec.LookPath("docker-compose"); err == nil {
		argv, name = []string{"docker-compose"}, "docker-compose up -d"
	}
	if argv == nil {
		return stopRun(ctx, cli, tmp, prober, refs)
	}
	up := func() error {
		cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], "-p", project, "-f", file, "up", "-d")...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v\n%s", argv, err, b)
		}
		return nil
	}
	defer exec.Command(argv[0], append(argv[1:], "-p", project, "-f", file, "down")...).Run()
	if err := write("1"); err != nil {
		return name, result{}, err
	}
	if err := up(); err != nil {
		return name, result{}, err
	}
	time.Sleep(500 * time.Millisecond)
	if err := write("2"); err != nil {
		return name, result{}, err
	}
	r, err := withProber(ctx, cli, tmp, prober, project+"_default", up)
	return name + " (recreate)", r, err
}

// stopRun is the baseline without a compose tool: docker stop, docker run.
func stopRun(ctx context.Context, cli *client.Client, tmp, prober string, refs map[string]string) (string, result, error) {
	net := "otabenchplain"
	docker := func(args ...string) error {
		if b, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("docker %v: %v\n%s", args, err, b)
		}
		return nil
	}
	lbl := containerstest.LabelTest + "=" + test + "-plain"
	if err := docker("network", "create", "--label", lbl, net); err != nil {
		return "", result{}, err
	}
	if err := docker("run", "-d", "--name", "otabenchplain-web1", "--label", lbl, "--network", net, "--network-alias", "web", refs["1"]); err != nil {
		return "", result{}, err
	}
	r, err := withProber(ctx, cli, tmp, prober, net, func() error {
		if err := docker("stop", "-t", "5", "otabenchplain-web1"); err != nil {
			return err
		}
		return docker("run", "-d", "--name", "otabenchplain-web2", "--label", lbl, "--network", net, "--network-alias", "web", refs["2"])
	})
	containerstest.Cleanup(context.Background(), cli, test+"-plain")
	return "docker stop + docker run", r, err
}
