package containers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/updater/release"
)

// Probe defaults for a ContainerHealth whose fields are 0.
const (
	DefaultProbeInterval = time.Second
	DefaultProbeTimeout  = 3 * time.Second
)

// WaitHealthy waits until every service of the set runs (not restarting)
// and passes its health check, or the deadline passes. The check of a
// service is its Health: "docker" reads the engine's health state (the
// image's HEALTHCHECK or the set's Command); "http" wants a 2xx from URL
// and "tcp" a connection to Address, both from this host; "exec" runs
// Command in the container. A URL or Address whose host is the service's
// name is sent to the container's address on the set's network. Without
// Health a service is healthy when it runs, and when its image has a
// HEALTHCHECK, when the engine says so. A service fails early when its
// container stops, when the engine marks it unhealthy, or after Retries
// failed probes past StartPeriod. The error wraps ErrUnhealthy and names
// every failing service.
func (m *Manager) WaitHealthy(ctx context.Context, set *release.ContainerSet, deadline time.Duration) error {
	if set == nil {
		return nil
	}
	until := time.Now().Add(deadline)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, s := range set.Services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := m.Name(s.Name)
			if c, err := m.current(ctx, s.Name); err == nil && c != nil {
				name = strings.TrimPrefix(c.Name, "/")
			}
			if err := m.waitService(ctx, s, name, until); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// waitService waits for the container name of s to be healthy.
func (m *Manager) waitService(ctx context.Context, s release.Service, name string, until time.Time) error {
	h := s.Health
	if h == nil {
		h = &release.ContainerHealth{}
	}
	interval, timeout := time.Duration(h.Interval), time.Duration(h.Timeout)
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	start := time.Now()
	failures := 0
	last := "not checked"
	fail := func(why string) error {
		return fmt.Errorf("service %s: %s: %w", s.Name, why, ErrUnhealthy)
	}
	for {
		c, err := m.inspect(ctx, name)
		switch {
		case err != nil:
			last = err.Error()
		case c == nil:
			return fail("no container " + name)
		case c.State == nil || c.State.Restarting || !c.State.Running:
			st := "not running"
			if c.State != nil {
				st = fmt.Sprintf("%s (exit code %d)", c.State.Status, c.State.ExitCode)
			}
			return fail("container " + st)
		default:
			ok, why, final := m.probe(ctx, s, h, c, timeout)
			if ok {
				return nil
			}
			last = why
			if final {
				return fail(why)
			}
			if time.Since(start) >= time.Duration(h.StartPeriod) {
				failures++
				if h.Retries > 0 && failures >= h.Retries {
					return fail(fmt.Sprintf("%d probes failed, the last: %s", failures, why))
				}
			}
		}
		if time.Now().Add(interval).After(until) {
			return fail("not healthy by the deadline: " + last)
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err().Error())
		case <-time.After(interval):
		}
	}
}

// probe runs one check. final says the failure cannot turn into success
// (the engine declared the container unhealthy).
func (m *Manager) probe(ctx context.Context, s release.Service, h *release.ContainerHealth, c *container.InspectResponse, timeout time.Duration) (ok bool, why string, final bool) {
	engineHealth := func() (bool, string, bool) {
		if c.State.Health == nil {
			return true, "", false
		}
		switch c.State.Health.Status {
		case container.Healthy:
			return true, "", false
		case container.Unhealthy:
			why := "the engine reports it unhealthy"
			if n := len(c.State.Health.Log); n > 0 {
				if out := strings.TrimSpace(c.State.Health.Log[n-1].Output); out != "" {
					why += ": " + out
				} else {
					why += fmt.Sprintf(" (health check exit code %d)", c.State.Health.Log[n-1].ExitCode)
				}
			}
			return false, why, true
		}
		return false, "health " + string(c.State.Health.Status), false
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch h.Kind {
	case "", release.ContainerHealthDocker:
		return engineHealth()
	case release.ContainerHealthHTTP:
		u, err := url.Parse(h.URL)
		if err != nil {
			return false, err.Error(), true
		}
		u.Host = m.target(s, c, u.Host)
		req, err := http.NewRequestWithContext(pctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return false, err.Error(), true
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error(), false
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return false, fmt.Sprintf("GET %s: %s", h.URL, resp.Status), false
		}
		return true, "", false
	case release.ContainerHealthTCP:
		conn, err := (&net.Dialer{}).DialContext(pctx, "tcp", m.target(s, c, h.Address))
		if err != nil {
			return false, err.Error(), false
		}
		conn.Close()
		return true, "", false
	case release.ContainerHealthExec:
		code, err := m.exec(pctx, c.ID, h.Command)
		if err != nil {
			return false, err.Error(), false
		}
		if code != 0 {
			return false, fmt.Sprintf("%s exited %d", strings.Join(h.Command, " "), code), false
		}
		return true, "", false
	}
	return false, "unknown health kind " + h.Kind, true
}

// target rewrites host:port when the host is the service's name: to the
// container's address on the project network.
func (m *Manager) target(s release.Service, c *container.InspectResponse, hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host != s.Name || c.NetworkSettings == nil {
		return hostport
	}
	if ep := c.NetworkSettings.Networks[m.project()]; ep != nil && ep.IPAddress.IsValid() {
		return net.JoinHostPort(ep.IPAddress.String(), port)
	}
	return hostport
}

// exec runs argv in the container and returns its exit code.
func (m *Manager) exec(ctx context.Context, id string, argv []string) (int, error) {
	e, err := m.Client.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: argv})
	if err != nil {
		return -1, err
	}
	if _, err := m.Client.ExecStart(ctx, e.ID, client.ExecStartOptions{Detach: true}); err != nil {
		return -1, err
	}
	for {
		r, err := m.Client.ExecInspect(ctx, e.ID, client.ExecInspectOptions{})
		if err != nil {
			return -1, err
		}
		if !r.Running {
			return r.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
