package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTPDoer sends HTTP requests; any *http.Client satisfies it.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// Client sends signed reports of one device to a manifest server.
//
// Seq is the last sequence number the device used. The caller loads it
// before the first Send and persists it after every Send (successful or
// not: a number once signed must never be signed again with other
// content), for example next to the key on the data partition. If the
// server says the device is behind (the file was lost), Send moves Seq past
// the server's number and sends once more.
//
// A Client is safe for concurrent use.
type Client struct {
	// URL is the server's base URL, e.g. "https://updates.example.com".
	URL string
	// HTTP sends the requests. If nil, a client with a 30 s timeout is used.
	HTTP HTTPDoer
	// Key is the device's private key (see LoadOrCreateKey).
	Key ed25519.PrivateKey
	// Device is the device id written into every report.
	Device string

	mu sync.Mutex
	// Seq is the last sequence number used; see the type's doc.
	Seq uint64
}

// NextSeq advances Seq and returns the new value.
func (c *Client) NextSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Seq++
	return c.Seq
}

// LastSeq returns Seq, for the caller to persist.
func (c *Client) LastSeq() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Seq
}

// skipTo moves Seq up to at least n.
func (c *Client) skipTo(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Seq < n {
		c.Seq = n
	}
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Sentinels a caller can test a Send error against with errors.Is.
var (
	// ErrRejected: the server refused the device's key or signature (401).
	// Retrying does not help; the operator must act.
	ErrRejected = errors.New("report rejected")
	// ErrReplay: the report's Seq is not above the last accepted one (409).
	ErrReplay = errors.New("report sequence already used")
	// ErrRateLimited: the server asks to come back later (429);
	// StatusError.RetryAfter says when.
	ErrRateLimited = errors.New("rate limited")
)

// ErrorBody is the JSON the server answers with when it refuses a report.
type ErrorBody struct {
	// Error says why, for a human.
	Error string `json:"error"`
	// Code names the reason: invalid, too-large, bad-signature,
	// key-mismatch, unknown-device, replay, rate-limited, internal.
	Code string `json:"code"`
	// LastSeq is the last sequence number the server accepted from the
	// device, on a replay refusal.
	LastSeq uint64 `json:"last_seq,omitempty"`
}

// StatusError is a refusal by the server.
type StatusError struct {
	Status     int
	Body       ErrorBody
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := e.Body.Error
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("server answered %d: %s", e.Status, msg)
}

// Is maps the status to the package's sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrRejected:
		return e.Status == http.StatusUnauthorized
	case ErrReplay:
		return e.Status == http.StatusConflict
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// Send signs and posts one report. It fills in Device, PublicKey and, if
// zero, Seq (from NextSeq) and Time (from the clock).
func (c *Client) Send(ctx context.Context, r Report) error {
	if len(c.Key) != ed25519.PrivateKeySize {
		return errors.New("report client has no device key")
	}
	autoSeq := r.Seq == 0
	r.Device = c.Device
	r.PublicKey = c.Key.Public().(ed25519.PublicKey)
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	for attempt := 0; ; attempt++ {
		if autoSeq {
			r.Seq = c.NextSeq()
		}
		err := c.post(ctx, r)
		var se *StatusError
		if attempt == 0 && autoSeq && errors.As(err, &se) && se.Status == http.StatusConflict && se.Body.LastSeq >= r.Seq {
			c.skipTo(se.Body.LastSeq)
			continue
		}
		return err
	}
}

func (c *Client) post(ctx context.Context, r Report) error {
	if err := r.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	url := strings.TrimSuffix(c.URL, "/") + Path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(c.Key, body))
	doer := c.HTTP
	if doer == nil {
		doer = defaultHTTP
	}
	resp, err := doer.Do(req)
	if err != nil {
		return fmt.Errorf("send report: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil
	}
	se := &StatusError{Status: resp.StatusCode}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if json.Unmarshal(raw, &se.Body) != nil || se.Body.Error == "" {
		se.Body.Error = strings.TrimSpace(string(raw))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return se
}
