package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/manifest-server/devicedb"
	"github.com/healthguard/gateway-ota/manifest-server/server"
	"github.com/healthguard/gateway-ota/manifest-server/timestamp"
)

type serveConfig struct {
	repo         string
	db           string
	listen       string
	keys         string
	resignBefore time.Duration
	resignEvery  time.Duration
	tsExpiry     time.Duration
	logFormat    string
	deviceRate   float64
	deviceBurst  int
	registry     string
	noRegistry   bool
	pushFrom     []string
}

func init() {
	var c serveConfig
	cmd := &cobra.Command{
		Use:   "serve --repo DIR --db FILE [--listen ADDR] [--keys DIR]",
		Short: "Serve the repository and accept device reports",
		Long: `serve hosts the repository directory read-only under "/" and the device API
under "/api/v1/". Give devices the server's root as their base URL, e.g.
http://updates.example.com:8080/.

Repository files are served like a static web server does, with resumable
Range requests, strong ETags, Last-Modified and HEAD. Hash-named targets and
versioned metadata (metadata/N.<role>.json) are marked immutable for a year;
metadata/timestamp.json and all else "no-cache". Directories, hidden files and
anything outside the directory are 404.

Device reports: POST /api/v1/reports, a JSON report signed with the device's
ed25519 key in the X-OTA-Signature header. The first report of a device
registers its key; later ones must verify against it and carry a higher
sequence number. GET /api/v1/devices and /api/v1/devices/{id}/events return
what the database knows, as JSON (no authentication: keep this API on a
trusted network or behind a proxy that adds it).

With --keys DIR (a directory holding timestamp.key, and optionally
snapshot.key, as "imagebuilder keygen" writes them; the offline root and
release keys do not belong on this host), metadata/timestamp.json is re-signed
with the online timestamp key whenever it would expire within --resign-before,
for --timestamp-expiry more. Without --keys the repository is served as it is
and someone else must keep the timestamp fresh.

The OCI image registry: /v2/ serves the distribution API, so "docker push
HOST:PORT/app:1.2.0" and "docker pull" work against this server (Docker talks
plain HTTP to a registry on 127.0.0.0/8; for others configure it as an
insecure registry or put TLS in front). Blobs and manifests are stored under
--registry DIR (default: "registry" beside the database), so a restart loses
nothing; uploads are checked against their digests and a blob whose bytes no
longer match is never served. Pulls are open; pushes only from the networks in
--registry-push-from (default loopback). --no-registry turns it off.

One log line per request goes to stderr ("text" or "json", --log-format).
SIGTERM or SIGINT stops the server gracefully: it finishes the requests in
flight (up to 30 s) and closes the database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.repo, "repo", "", "repository directory to serve (required)")
	f.StringVar(&c.db, "db", "", "SQLite database file for device reports, created if missing (required)")
	f.StringVar(&c.listen, "listen", ":8080", "address to listen on (host:port; port 0 picks a free one, logged at start)")
	f.StringVar(&c.keys, "keys", "", "directory with the online timestamp key; enables re-signing the timestamp")
	f.DurationVar(&c.resignBefore, "resign-before", 6*time.Hour, "re-sign the timestamp when it expires within this long")
	f.DurationVar(&c.resignEvery, "resign-check", time.Minute, "how often to look at the timestamp's expiry")
	f.DurationVar(&c.tsExpiry, "timestamp-expiry", publish.DefaultTimestampExpiry, "lifetime of a re-signed timestamp (longer than --resign-before)")
	f.StringVar(&c.logFormat, "log-format", "text", `log format: "text" or "json"`)
	f.Float64Var(&c.deviceRate, "device-rate", 1, "reports per second accepted per device on average")
	f.IntVar(&c.deviceBurst, "device-burst", 30, "reports per device accepted in a burst")
	f.StringVar(&c.registry, "registry", "", `directory of the OCI registry's blobs and manifests (default: "registry" beside --db)`)
	f.BoolVar(&c.noRegistry, "no-registry", false, "do not serve the OCI registry under /v2/")
	f.StringSliceVar(&c.pushFrom, "registry-push-from", []string{"127.0.0.0/8", "::1/128"}, "networks (CIDR) allowed to push to the registry")
	cmd.MarkFlagRequired("repo")
	cmd.MarkFlagRequired("db")
	rootCmd.AddCommand(cmd)
}

func runServe(ctx context.Context, c serveConfig) error {
	var log *slog.Logger
	switch c.logFormat {
	case "text":
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	case "json":
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	default:
		return fmt.Errorf("unknown --log-format %q (want text or json)", c.logFormat)
	}
	if st, err := os.Stat(c.repo); err != nil || !st.IsDir() {
		return fmt.Errorf("repository %s is not a directory", c.repo)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()

	db, err := devicedb.Open(ctx, c.db)
	if err != nil {
		return err
	}
	defer db.Close()
	var reg http.Handler
	if !c.noRegistry {
		if reg, err = openRegistry(c, log); err != nil {
			return err
		}
	}
	h, err := server.New(server.Config{
		Repo: c.repo, DB: db, Logger: log,
		DeviceRate: c.deviceRate, DeviceBurst: c.deviceBurst,
		Registry: reg,
	})
	if err != nil {
		return err
	}
	defer h.Close()

	keeperDone := make(chan struct{})
	if c.keys != "" {
		if c.resignBefore >= c.tsExpiry {
			return usageErrorf("--resign-before %v must be shorter than --timestamp-expiry %v", c.resignBefore, c.tsExpiry)
		}
		resign, err := newResigner(c.repo, c.keys, c.tsExpiry)
		if err != nil {
			return err
		}
		k := &timestamp.Keeper{
			Path:   filepath.Join(c.repo, "metadata", "timestamp.json"),
			Resign: resign, Before: c.resignBefore, Every: c.resignEvery, Logger: log,
		}
		go func() {
			defer close(keeperDone)
			k.Run(ctx)
		}()
	} else {
		close(keeperDone)
	}

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "repo", c.repo, "db", c.db, "resign", c.keys != "")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-keeperDone
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
