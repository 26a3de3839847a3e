// Package server is the manifest server's HTTP handler: the update
// repository as static files, device status intake and the device API.
//
// URL space (a device's base URL is the server's root, e.g.
// "http://updates.example.com:8080/"):
//
//	GET|HEAD /<path>                   a file of the repository directory
//	POST     /api/v1/reports           a signed report.Report
//	GET      /api/v1/devices           every device, JSON
//	GET      /api/v1/devices/{id}/events?limit=N   newest events first, JSON
//	*        /v2/...                   the OCI registry, when Config.Registry is set
//
// The repository is served read-only and exactly as a plain static server
// would, so devices work the same against nginx or a CDN: Range and
// If-Range (resumed downloads), strong ETags and If-None-Match, HEAD,
// Last-Modified. Hash-named files (targets/.../<sha256>.<name>) and
// versioned metadata (metadata/N.<role>.json) never change under their
// name and are served as immutable for a year; everything else, above all
// metadata/timestamp.json, as no-cache. Files are opened through os.Root,
// so no path (.., symlinks) leaves the repository; hidden files (a leading
// '.', such as a publisher's temporary files) and directories are 404.
//
// Reports are authenticated per device (see package report): trust on
// first use, then the registered key and a rising sequence number. The
// handler answers 400 invalid, 401 bad key or signature, 409 replay, 413
// too large, 429 rate limited (with Retry-After), never a 5xx for load.
// Rate limits are token buckets per client IP (RemoteAddr: put the server
// behind a proxy only with that in mind) and per device.
package server

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
)

// Config configures a Server. Repo and DB are required.
type Config struct {
	// Repo is the repository directory served under "/".
	Repo string
	// DB stores devices and their reports.
	DB *devicedb.DB
	// Logger receives one access line per request and the errors. Nil
	// means slog.Default().
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// DeviceRate and DeviceBurst bound the accepted reports per device:
	// DeviceRate per second on average, bursts of DeviceBurst. Zero means
	// 1/s and 30.
	DeviceRate  float64
	DeviceBurst int
	// IPRate and IPBurst bound report requests per client IP (many devices
	// may share one address behind NAT). Zero means 50/s and 500.
	IPRate  float64
	IPBurst int
	// Registry, if set, serves the OCI distribution API under /v2/ (see package
	// manifest-server/registry). Nil leaves /v2/ to the repository (404).
	Registry http.Handler
}

// Server is the manifest server's http.Handler.
type Server struct {
	cfg    Config
	root   *os.Root
	mux    *http.ServeMux
	log    *slog.Logger
	now    func() time.Time
	perDev *limiter
	perIP  *limiter
}

// New returns the handler for cfg. Close releases the repository directory.
func New(cfg Config) (*Server, error) {
	if cfg.Repo == "" {
		return nil, errors.New("server: no repository directory")
	}
	if cfg.DB == nil {
		return nil, errors.New("server: no device database")
	}
	root, err := os.OpenRoot(cfg.Repo)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, root: root, mux: http.NewServeMux(), log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.perDev = newLimiter(orFloat(cfg.DeviceRate, 1), orInt(cfg.DeviceBurst, 30), s.now)
	s.perIP = newLimiter(orFloat(cfg.IPRate, 50), orInt(cfg.IPBurst, 500), s.now)

	s.mux.HandleFunc("POST /api/v1/reports", s.postReport)
	s.mux.HandleFunc("GET /api/v1/devices", s.getDevices)
	s.mux.HandleFunc("GET /api/v1/devices/{id}/events", s.getEvents)
	s.mux.HandleFunc("/", s.serveRepo)
	if cfg.Registry != nil {
		s.mux.Handle("/v2/", cfg.Registry)
		s.mux.Handle("/v2", cfg.Registry)
	}
	return s, nil
}

// Close releases the repository directory.
func (s *Server) Close() error { return s.root.Close() }

// ServeHTTP serves one request and logs it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	s.mux.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	attrs := []any{
		"method", r.Method,
		"path", r.URL.Path,
		"status", rec.status,
		"bytes", rec.bytes,
		"dur", time.Since(start).Round(time.Microsecond),
		"remote", clientIP(r),
	}
	if rg := r.Header.Get("Range"); rg != "" {
		attrs = append(attrs, "range", rg)
	}
	if rec.device != "" {
		attrs = append(attrs, "device", rec.device)
	}
	if rec.errMsg != "" {
		attrs = append(attrs, "err", rec.errMsg)
	}
	level := slog.LevelInfo
	if rec.status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "request", attrs...)
}

func orFloat(v, d float64) float64 {
	if v > 0 {
		return v
	}
	return d
}

func orInt(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}
