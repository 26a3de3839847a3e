package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxRedirects bounds the same-host redirects an HTTP check follows.
const maxRedirects = 10

func newHTTPClient() *http.Client {
	t := &http.Transport{
		// Proxy stays nil: health checks talk to the device itself, and a
		// library does not read HTTP_PROXY from the environment.
		DialContext:           (&net.Dialer{KeepAlive: -1}).DialContext,
		DisableKeepAlives:     true, // every attempt proves a fresh connection
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // bounded by the attempt's context
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if req.URL.Host != via[0].URL.Host {
				return fmt.Errorf("redirect to another host (%s) not followed", req.URL.Host)
			}
			return nil
		},
	}
}

func (r *runner) httpProbe(ctx context.Context, rawURL string, expect int, timeout time.Duration) error {
	if expect == 0 {
		expect = http.StatusOK
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "ota-updater-health")
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no response within %v", timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is already in the check's name
		}
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != expect {
		if s := snippet(body); s != "" {
			return fmt.Errorf("status %d: %q", resp.StatusCode, s)
		}
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("status %d but the body did not arrive within %v", resp.StatusCode, timeout)
		}
		return fmt.Errorf("status %d but reading the body: %w", resp.StatusCode, err)
	}
	return nil
}

// snippet is the start of a response body fit for a one-line report.
func snippet(body []byte) string {
	const max = 120
	if len(body) > max {
		body = body[:max]
	}
	// A cut multi-byte character at the end is dropped as invalid.
	return oneLine(strings.ToValidUTF8(string(body), ""))
}

func tcpProbe(ctx context.Context, address string, timeout time.Duration) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no connection within %v", timeout)
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // the address is already in the check's name
		}
		return err
	}
	return c.Close()
}

func (r *runner) unitProbe(ctx context.Context, unit string, timeout time.Duration) error {
	active, state, err := r.units(ctx, unit)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer from systemd within %v", timeout)
		}
		return err
	}
	if !active {
		if state == "" {
			state = "unknown"
		}
		return fmt.Errorf("state %s, want active", state)
	}
	return nil
}
