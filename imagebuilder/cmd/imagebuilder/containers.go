package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/manifest-server/compose"
	"github.com/healthguard/gateway-ota/manifest-server/registry/pin"
	"github.com/healthguard/gateway-ota/updater/release"
)

// releaseContainers builds the container set of --compose or --docker-image,
// pinned by digest, and with --embed-images saves its images into a temporary tar
// (the caller removes it). No flags: no set.
func releaseContainers(ctx context.Context, log io.Writer) (*release.ContainerSet, string, error) {
	f := relFlags
	if f.composeFile == "" && len(f.images) == 0 {
		if f.embedImages {
			return nil, "", usageErrorf("--embed-images needs --compose or --docker-image")
		}
		return nil, "", nil
	}
	if f.composeFile != "" && len(f.images) > 0 {
		return nil, "", usageErrorf("give --compose or --docker-image, not both")
	}
	var set *release.ContainerSet
	if f.composeFile != "" {
		data, err := os.ReadFile(f.composeFile)
		if err != nil {
			return nil, "", err
		}
		env := map[string]string{}
		for _, kv := range f.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, "", usageErrorf("--env %q: want KEY=VALUE", kv)
			}
			env[k] = v
		}
		parsed, err := compose.Parse(ctx, f.composeFile, data, compose.Options{Env: env, WorkingDir: filepath.Dir(f.composeFile)})
		if err != nil {
			return nil, "", err
		}
		for _, w := range parsed.Warnings {
			fmt.Fprintln(log, "imagebuilder: warning:", w)
		}
		set = parsed.Containers
	} else {
		var err error
		if set, err = compose.FromImages(f.images); err != nil {
			return nil, "", err
		}
	}
	if f.strategy != "" {
		set.Strategy = f.strategy
	}

	u, err := url.Parse(f.registryURL)
	if err != nil || u.Host == "" {
		return nil, "", usageErrorf("--registry-url %q: want http://host:port", f.registryURL)
	}
	r := &pin.Resolver{PushTo: u.Host}
	if u.Scheme == "http" {
		r.Insecure = []string{u.Host}
	}
	if !f.noEngine {
		engine, err := client.New(client.WithHost(f.dockerHost), client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, "", fmt.Errorf("docker engine: %w", err)
		}
		defer engine.Close()
		r.Engine = engine
	}
	var refs []string
	for i, s := range set.Services {
		p, err := r.Pin(ctx, s.Image)
		if err != nil {
			return nil, "", err
		}
		set.Services[i].Image = p.Ref
		refs = append(refs, p.Ref)
		fmt.Fprintf(log, "imagebuilder: service %s: %s -> %s\n", s.Name, s.Image, p.Ref)
	}
	if !f.embedImages {
		return set, "", nil
	}
	tmp, err := os.CreateTemp("", "images-*.tar")
	if err != nil {
		return nil, "", err
	}
	if err := r.Save(ctx, tmp, refs); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, "", err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return nil, "", err
	}
	return set, tmp.Name(), nil
}
