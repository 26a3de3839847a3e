package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
	"github.com/healthguard/gateway-ota/manifest-server/compose"
	"github.com/healthguard/gateway-ota/manifest-server/registry/pin"
	"github.com/healthguard/gateway-ota/updater/release"
)

type createUpdateConfig struct {
	version        string
	images         []string
	composeFile    string
	env            []string
	counter        uint64
	channel        string
	compatible     string
	strategy       string
	minOSCounter   uint64
	healthDeadline time.Duration
	repo           string
	keys           string
	registryURL    string
	dockerHost     string
	noEngine       bool
	now            func() time.Time
}

func init() {
	var c createUpdateConfig
	cmd := &cobra.Command{
		Use:   "create-update --version V (--docker-image REF... | --compose FILE) --repo DIR --keys DIR",
		Short: "Publish a container-only release: images pinned by digest, signed",
		Long: `create-update publishes a container-only release: a new container set that
gateways switch to without a reboot (no slot image, no payloads).

The set comes from --docker-image (repeatable: one service per image, named
after the last element of its repository, e.g. healthguard/mqtt-bridge:1.2.0 ->
service "mqtt-bridge", restart unless-stopped) or from a compose file
(--compose; see package manifest-server/compose for the keys it accepts and
the x-ota-* extensions). --env KEY=VALUE feeds ${KEY} in the compose file; the
process environment is never read for it.

Every image is pinned by digest before anything is signed (threat C1):
  - an image present only in the local Docker engine (--docker-host) is pushed
    to the registry of --registry-url under the same repository path and tag,
    and the pushed digest is pinned;
  - an image already on a registry is pinned to the digest that registry serves
    for its tag; one given by digest must be held by its registry.
The release names "<registry>/<repo>:<tag>@sha256:<hex>", so a moved tag or a
tampered registry cannot change what the gateways run.

The release is then signed with the keys in --keys (targets, snapshot,
timestamp keys as "imagebuilder keygen" writes them) and added to the
repository --repo, exactly as imagebuilder publishes OS releases. --counter
defaults to the highest published counter + 1. --min-os-counter declares the
lowest OS release counter the set needs (threat C4).

Output names each pinned digest.`,
		Example: `  manifest-server create-update --version 1.2.0 \
      --docker-image healthguard/mqtt-bridge:1.2.0 \
      --repo repo --keys keys --registry-url http://127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return createUpdate(cmd.Context(), c, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.version, "version", "", "release version (required)")
	f.StringArrayVar(&c.images, "docker-image", nil, "image of one service (repeatable)")
	f.StringVar(&c.composeFile, "compose", "", "compose file with the container set")
	f.StringArrayVar(&c.env, "env", nil, "KEY=VALUE for ${KEY} in the compose file (repeatable)")
	f.Uint64Var(&c.counter, "counter", 0, "anti-rollback counter (default: highest published + 1)")
	f.StringVar(&c.channel, "channel", "stable", "release channel")
	f.StringVar(&c.compatible, "compatible", "rpi4", "board id the release is for")
	f.StringVar(&c.strategy, "strategy", "", "update strategy: download-then-kill (default), kill-then-download or hand-over; overrides the compose file's x-ota-strategy")
	f.Uint64Var(&c.minOSCounter, "min-os-counter", 0, "lowest OS release counter the container set needs")
	f.DurationVar(&c.healthDeadline, "health-deadline", 2*time.Minute, "time the containers have to become healthy")
	f.StringVar(&c.repo, "repo", "", "repository directory (required)")
	f.StringVar(&c.keys, "keys", "", "directory with the targets, snapshot and timestamp keys (required)")
	f.StringVar(&c.registryURL, "registry-url", "http://127.0.0.1:8080", "registry that receives images found only in the local engine (the manifest server's own)")
	f.StringVar(&c.dockerHost, "docker-host", "unix:///var/run/docker.sock", "Docker engine holding locally built images")
	f.BoolVar(&c.noEngine, "no-engine", false, "do not look for images in a local Docker engine")
	cmd.MarkFlagRequired("version")
	cmd.MarkFlagRequired("repo")
	cmd.MarkFlagRequired("keys")
	rootCmd.AddCommand(cmd)
}

func createUpdate(ctx context.Context, c createUpdateConfig, out io.Writer) error {
	if (len(c.images) == 0) == (c.composeFile == "") {
		return usageErrorf("give either --docker-image (one or more) or --compose")
	}
	if err := release.ValidVersion(c.version); err != nil {
		return err
	}
	set, err := containerSet(ctx, c)
	if err != nil {
		return err
	}
	if c.strategy != "" {
		set.Strategy = c.strategy
	}
	repo, err := publish.Open(c.repo, c.keys, publish.Options{})
	if err != nil {
		return fmt.Errorf("repository: %w", err)
	}
	if c.counter == 0 {
		if c.counter, err = nextCounter(repo); err != nil {
			return err
		}
	}

	u, err := url.Parse(c.registryURL)
	if err != nil || u.Host == "" {
		return usageErrorf("--registry-url %q: want http://host:port", c.registryURL)
	}
	r := &pin.Resolver{PushTo: u.Host}
	if u.Scheme == "http" {
		r.Insecure = []string{u.Host}
	}
	if !c.noEngine {
		engine, err := client.New(client.WithHost(c.dockerHost), client.WithAPIVersionNegotiation())
		if err != nil {
			return fmt.Errorf("docker engine: %w", err)
		}
		defer engine.Close()
		r.Engine = engine
	}
	for i, s := range set.Services {
		p, err := r.Pin(ctx, s.Image)
		if err != nil {
			return err
		}
		set.Services[i].Image = p.Ref
		how := "pinned"
		if p.Pushed {
			how = "pushed and pinned"
		}
		fmt.Fprintf(out, "%s: %s %s -> %s\n", s.Name, how, s.Image, p.Ref)
	}

	now := time.Now
	if c.now != nil {
		now = c.now
	}
	m := &release.Manifest{
		Schema: release.SchemaVersion, Version: c.version, Counter: c.counter,
		Channel: c.channel, Compatible: c.compatible,
		Created:        now().UTC().Truncate(time.Second),
		HealthDeadline: release.Duration(c.healthDeadline),
		Containers:     set,
		MinOSCounter:   c.minOSCounter,
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := repo.AddRelease(m, nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "published container-only release %s (counter %d, channel %s, %s) with %d services into %s\n",
		m.Version, m.Counter, m.Channel, m.Compatible, len(set.Services), c.repo)
	return nil
}

// containerSet is the set of --compose or of the --docker-image flags, unpinned.
func containerSet(ctx context.Context, c createUpdateConfig) (*release.ContainerSet, error) {
	if c.composeFile != "" {
		data, err := os.ReadFile(c.composeFile)
		if err != nil {
			return nil, err
		}
		env := map[string]string{}
		for _, kv := range c.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, usageErrorf("--env %q: want KEY=VALUE", kv)
			}
			env[k] = v
		}
		set, err := compose.Parse(ctx, c.composeFile, data, compose.Options{Env: env, WorkingDir: path.Dir(c.composeFile)})
		if err != nil {
			return nil, err
		}
		for _, w := range set.Warnings {
			fmt.Fprintln(os.Stderr, "manifest-server: warning:", w)
		}
		return set.Containers, nil
	}
	return compose.FromImages(c.images)
}

// nextCounter is one above the highest counter among the published releases.
func nextCounter(repo *publish.Repo) (uint64, error) {
	targets, err := repo.Targets()
	if err != nil {
		return 0, err
	}
	var highest uint64
	for p, tf := range targets {
		if !strings.HasPrefix(p, "releases/") || !strings.HasSuffix(p, "/release.json") || tf.Custom == nil {
			continue
		}
		s, err := release.ParseSummary(*tf.Custom)
		if err != nil {
			return 0, fmt.Errorf("published release %s: %w", p, err)
		}
		highest = max(highest, s.Counter)
	}
	return highest + 1, nil
}
