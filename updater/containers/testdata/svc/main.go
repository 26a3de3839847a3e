// Command svc is the service the container tests and the downtime benchmark
// run, built static and wrapped in an image FROM scratch.
//
//	GET /version  the VERSION environment variable
//	GET /healthz  200, or 503 when UNHEALTHY is set or DATA/unhealthy exists
//	PUT /data/F   writes the body to DATA/F; GET /data/F reads it back
//
// It listens on PORT (default 8080) and on SIGTERM stops accepting new
// connections, finishes the requests in flight and exits. "svc probe"
// fetches /healthz once and exits 0 on 200: the image's HEALTHCHECK.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	port := env("PORT", "8080")
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		c := &http.Client{Timeout: 2 * time.Second}
		r, err := c.Get("http://127.0.0.1:" + port + "/healthz")
		if err != nil || r.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		os.Exit(0)
	}
	data := env("DATA", "/data")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv("VERSION"))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, err := os.Stat(filepath.Join(data, "unhealthy"))
		if os.Getenv("UNHEALTHY") != "" || err == nil {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("PUT /data/{name}", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			err = os.WriteFile(filepath.Join(data, filepath.Base(r.PathValue("name"))), b, 0o644)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /data/{name}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(data, filepath.Base(r.PathValue("name"))))
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
