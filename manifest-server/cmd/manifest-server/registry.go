package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"

	"github.com/healthguard/gateway-ota/manifest-server/registry"
)

// openRegistry opens the registry directory of c: --registry, or "registry"
// beside the database.
func openRegistry(c serveConfig, log *slog.Logger) (*registry.Registry, error) {
	dir := c.registry
	if dir == "" {
		dir = filepath.Join(filepath.Dir(c.db), "registry")
	}
	var nets []netip.Prefix
	for _, s := range c.pushFrom {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, usageErrorf("--registry-push-from %q: %w", s, err)
		}
		nets = append(nets, p.Masked())
	}
	r, err := registry.New(dir, registry.Options{
		Logf: func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) },
		AllowWrite: func(req *http.Request) bool {
			host, _, err := net.SplitHostPort(req.RemoteAddr)
			if err != nil {
				return false
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return false
			}
			ip = ip.Unmap()
			for _, p := range nets {
				if p.Contains(ip) {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		return nil, err
	}
	log.Info("registry", "dir", dir, "push_from", c.pushFrom)
	return r, nil
}
