package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"

	"github.com/healthguard/gateway-ota/updater/release"
)

// pinned is a service's image reference split into its parts.
type pinned struct {
	ref    string // as in the manifest
	name   string // normalized repository name, without tag
	digest string // "sha256:<hex>"
}

// canonical is "name@digest", the reference the engine pulls and lists.
func (p pinned) canonical() string { return p.name + "@" + p.digest }

func parsePinned(ref string) (pinned, error) {
	name, digest, ok := release.ImageDigest(ref)
	if !ok {
		return pinned{}, fmt.Errorf("image %q is not pinned by digest: %w", ref, ErrDigestMismatch)
	}
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return pinned{}, fmt.Errorf("image %q: %w", ref, err)
	}
	return pinned{ref: ref, name: n.Name(), digest: digest}, nil
}

// resolve returns the local image ID of a pinned image, or "" when the
// engine does not hold it. An image counts when its RepoDigests hold the
// pinned digest for the name, or when it carries the tag the signed images
// payload gives it (release.ImagesTag).
func (m *Manager) resolve(ctx context.Context, p pinned) (string, error) {
	r, err := m.Client.ImageInspect(ctx, p.canonical())
	switch {
	case err == nil:
		for _, rd := range r.RepoDigests {
			if n, err := reference.ParseNormalizedNamed(rd); err == nil {
				if d, ok := n.(reference.Digested); ok && n.Name() == p.name && d.Digest().String() == p.digest {
					return r.ID, nil
				}
			}
		}
		return "", fmt.Errorf("image %s: the engine's copy does not list the pinned digest: %w", p.ref, ErrDigestMismatch)
	case !cerrdefs.IsNotFound(err):
		return "", fmt.Errorf("inspect image %s: %w", p.ref, err)
	}
	tag, _ := release.ImagesTag(p.name + "@" + p.digest)
	r, err = m.Client.ImageInspect(ctx, tag)
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", tag, err)
	}
	return r.ID, nil
}

// Ensure makes every image of the set present with its pinned digest,
// pulling by digest what is missing. It starts, stops and removes nothing
// (C2). A registry that serves other content for the digest makes the
// engine's pull fail; the result is checked once more against the pinned
// digest (C1).
func (m *Manager) Ensure(ctx context.Context, set *release.ContainerSet) error {
	_, err := m.ensure(ctx, set)
	return err
}

// ensure returns the image ID of every service.
func (m *Manager) ensure(ctx context.Context, set *release.ContainerSet) (map[string]string, error) {
	ids := map[string]string{}
	if set == nil {
		return ids, nil
	}
	for _, s := range set.Services {
		p, err := parsePinned(s.Image)
		if err != nil {
			return nil, err
		}
		id, err := m.resolve(ctx, p)
		if err != nil {
			return nil, err
		}
		if id == "" {
			m.logf("pull %s", p.canonical())
			if err := m.pull(ctx, p); err != nil {
				return nil, err
			}
			if id, err = m.resolve(ctx, p); err != nil {
				return nil, err
			}
			if id == "" {
				return nil, fmt.Errorf("image %s: pulled but not found by its digest: %w", s.Image, ErrDigestMismatch)
			}
		}
		ids[s.Name] = id
	}
	return ids, nil
}

func (m *Manager) pull(ctx context.Context, p pinned) error {
	// An empty JSON object as auth keeps the engine from asking a
	// credential helper; registries that need credentials get them from
	// the engine's own configuration.
	rc, err := m.Client.ImagePull(ctx, p.canonical(), client.ImagePullOptions{RegistryAuth: "e30="})
	if err != nil {
		return pullError(p, err)
	}
	defer rc.Close()
	return pullError(p, drain(rc))
}

func pullError(p pinned, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "verification failed") || strings.Contains(msg, "digest mismatch") || strings.Contains(msg, "does not match") {
		return fmt.Errorf("pull %s: %w: %w", p.ref, err, ErrDigestMismatch)
	}
	return fmt.Errorf("pull %s: %w: %w", p.ref, err, ErrPull)
}

// drain reads an engine JSON message stream to its end and returns the
// first error it carries.
func drain(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if msg.ErrorDetail != nil && msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// Load loads an images payload (the uncompressed tar of `docker image
// save`) into the engine. Its images carry the tags release.ImagesTag
// gives them; the caller has verified the payload against its signed hash.
func (m *Manager) Load(ctx context.Context, tarball io.Reader) error {
	r, err := m.Client.ImageLoad(ctx, tarball, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load images: %w", err)
	}
	defer r.Close()
	if err := drain(r); err != nil {
		return fmt.Errorf("load images: %w", err)
	}
	return nil
}
