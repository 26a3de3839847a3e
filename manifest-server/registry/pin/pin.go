// Package pin resolves container image references to references pinned by
// digest, "<registry>/<repo>[:tag]@sha256:<hex>", the only form a release may carry
// (threats C1, S7): what a device runs is then fixed by signed metadata, whatever
// later happens to the tag or the registry.
//
// The model, per reference:
//
//  1. Already pinned: the registry must hold that digest (HEAD of the manifest).
//  2. On the push registry (Resolver.PushTo): the manifest digest the registry
//     serves for the tag.
//  3. Present in the local Docker engine and a push registry is set: the image is
//     saved from the engine and pushed to PushTo under the same repository path and
//     tag; the digest of what was pushed is pinned. This is how an image built on
//     the build host reaches the manifest server's registry.
//  4. Otherwise: the digest its own registry serves for the tag.
//
// Plain HTTP is used for registries on loopback addresses (as Docker does) and
// for the hosts in Resolver.Insecure; every other registry is reached over HTTPS
// with the default keychain-free anonymous access.
package pin

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"
)

// Engine is the part of the Docker Engine client the Resolver uses; satisfied by
// *client.Client from github.com/moby/moby/client.
type Engine interface {
	ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageSave(ctx context.Context, images []string, opts ...client.ImageSaveOption) (client.ImageSaveResult, error)
}

// Resolver pins image references. The zero value resolves against registries only.
type Resolver struct {
	// PushTo is the registry host (host:port) that receives images found only in
	// the local engine, and the registry pinned images are checked against. Empty
	// means never push.
	PushTo string
	// Engine is the local Docker engine; nil means none.
	Engine Engine
	// Insecure lists registry hosts reached over plain HTTP besides loopback ones.
	Insecure []string
	// Logf reports pushes. Nil means silent.
	Logf func(format string, args ...any)
}

// Pinned is one resolved image.
type Pinned struct {
	// Source is the reference as given.
	Source string
	// Ref is "<registry>/<repo>[:tag]@sha256:<hex>".
	Ref string
	// Digest is "sha256:<hex>", the manifest digest.
	Digest string
	// Pushed says the image came from the local engine and was pushed to PushTo.
	Pushed bool
}

// Pin resolves ref.
func (r *Resolver) Pin(ctx context.Context, ref string) (Pinned, error) {
	p := Pinned{Source: ref}
	parsed, err := r.parse(ref)
	if err != nil {
		return p, fmt.Errorf("pin %s: %w", ref, err)
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if d, ok := parsed.(name.Digest); ok {
		desc, err := remote.Head(d, opts...)
		if err != nil {
			return p, fmt.Errorf("pin %s: the registry does not hold it: %w", ref, err)
		}
		if desc.Digest.String() != d.DigestStr() {
			return p, fmt.Errorf("pin %s: the registry answers digest %s", ref, desc.Digest)
		}
		return r.pinned(p, d.Context(), tagOf(ref), desc.Digest), nil
	}
	tag := parsed.(name.Tag)
	onPushRegistry := r.PushTo != "" && tag.RegistryStr() == r.registryHost()
	if !onPushRegistry && r.PushTo != "" && r.Engine != nil {
		if _, err := r.Engine.ImageInspect(ctx, ref); err == nil {
			return r.push(ctx, p, ref, tag)
		}
	}
	desc, err := remote.Head(tag, opts...)
	if err != nil {
		return p, fmt.Errorf("pin %s: %w", ref, err)
	}
	return r.pinned(p, tag.Context(), tag.TagStr(), desc.Digest), nil
}

func (r *Resolver) pinned(p Pinned, repo name.Repository, tag string, h v1.Hash) Pinned {
	p.Digest = h.String()
	p.Ref = repo.Name()
	if tag != "" {
		p.Ref += ":" + tag
	}
	p.Ref += "@" + p.Digest
	return p
}

// tagOf returns the tag written in ref, if any ("repo:tag@sha256:..." or
// "repo:tag").
func tagOf(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[i+1:]
	}
	return ""
}

// registryHost is the host part of PushTo ("host:port" of "host:port/prefix").
func (r *Resolver) registryHost() string {
	h, _, _ := strings.Cut(r.PushTo, "/")
	return h
}

func (r *Resolver) parse(ref string) (name.Reference, error) {
	if strings.Contains(ref, "@") {
		// A tag before the digest is kept for display; the digest rules.
		at := strings.LastIndexByte(ref, '@')
		base := ref[:at]
		if t := tagOf(ref); t != "" {
			base = base[:len(base)-len(t)-1]
		}
		ref = base + ref[at:]
	}
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if r.insecure(parsed.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return parsed, nil
}

func (r *Resolver) insecure(host string) bool {
	for _, h := range r.Insecure {
		if h == host {
			return true
		}
	}
	hostname, _, err := net.SplitHostPort(host)
	if err != nil {
		hostname = host
	}
	if hostname == "localhost" {
		return true
	}
	ip := net.ParseIP(hostname)
	return ip != nil && ip.IsLoopback()
}

// push saves ref from the engine and writes it to PushTo under its repository path
// (without the registry) and tag.
func (r *Resolver) push(ctx context.Context, p Pinned, ref string, tag name.Tag) (Pinned, error) {
	repoPath := tag.RepositoryStr()
	if prefix, ok := strings.CutPrefix(r.PushTo, r.registryHost()); ok && prefix != "" {
		repoPath = strings.Trim(prefix, "/") + "/" + repoPath
	}
	target, err := r.parse(r.registryHost() + "/" + repoPath + ":" + tag.TagStr())
	if err != nil {
		return p, fmt.Errorf("pin %s: push target: %w", ref, err)
	}
	img, cleanup, err := r.save(ctx, ref, tag)
	if err != nil {
		return p, fmt.Errorf("pin %s: %w", ref, err)
	}
	defer cleanup()
	if err := remote.Write(target, img, remote.WithContext(ctx)); err != nil {
		return p, fmt.Errorf("pin %s: push to %s: %w", ref, target, err)
	}
	d, err := img.Digest()
	if err != nil {
		return p, fmt.Errorf("pin %s: %w", ref, err)
	}
	// The registry now serves that digest: check rather than trust.
	desc, err := remote.Head(target.Context().Digest(d.String()), remote.WithContext(ctx))
	if err != nil || desc.Digest != d {
		return p, fmt.Errorf("pin %s: pushed %s but the registry does not serve it: %v", ref, d, err)
	}
	if r.Logf != nil {
		r.Logf("pushed %s to %s (%s)", ref, target, d)
	}
	p = r.pinned(p, target.Context(), tag.TagStr(), d)
	p.Pushed = true
	return p, nil
}

// save spools `docker image save` of ref into a temporary file and opens it as an
// image.
func (r *Resolver) save(ctx context.Context, ref string, tag name.Tag) (v1.Image, func(), error) {
	rc, err := r.Engine.ImageSave(ctx, []string{ref})
	if err != nil {
		return nil, nil, fmt.Errorf("save from the engine: %w", err)
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "pin-*.tar")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		cleanup()
		return nil, nil, fmt.Errorf("save from the engine: %w", err)
	}
	if err := f.Close(); err != nil {
		cleanup()
		return nil, nil, err
	}
	opener := func() (io.ReadCloser, error) { return os.Open(f.Name()) }
	img, err := tarball.Image(opener, &tag)
	if err != nil {
		// An engine names a Docker Hub image without its registry in the archive.
		short, perr := name.NewTag(ref)
		if perr != nil {
			cleanup()
			return nil, nil, err
		}
		if img, err = tarball.Image(opener, &short); err != nil {
			img, err = tarball.Image(opener, nil)
		}
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("read the saved image: %w", err)
		}
	}
	return img, cleanup, nil
}
