// Package release is the schema of a release manifest: the one signed document that
// binds everything a gateway installs for one version (S4, S7).
//
// The model: a release is published into a TUF repository as the target
// "releases/<version>/release.json" (see ManifestPath). The target's signed hash and
// length cover the manifest bytes; the manifest in turn names, by signed hash and
// length, every payload the device writes (the full slot image, the boot partition
// image, later deltas), the hashes of the uncompressed images the slot must end up
// holding, the health checks the trial boot must pass and the container set. The
// target entry's "custom" field carries a Summary (version, counter, channel,
// compatible) so a device can choose a release from targets.json alone and then fetch
// only that manifest.
//
// "Newer" is decided by Counter alone: the anti-rollback floor a device persists is a
// counter, and a roll-forward release that carries an old payload gets a higher
// counter (R5). Version is for display and for path names, so it is not parsed as
// semver: comparing two orders would let them disagree.
//
// Everything that comes from a manifest and later becomes a path, a URL or a command
// is checked by Validate: ParseManifest never returns a manifest that fails it.
package release

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// SchemaVersion is the manifest schema this package reads and writes.
const SchemaVersion = 1

// MaxManifestSize bounds a manifest's encoded size. Parsers refuse anything larger
// before decoding it (S8, P2).
const MaxManifestSize = 1 << 20

// ErrInvalid is wrapped by every validation and parse error of this package.
var ErrInvalid = errors.New("invalid release")

// Payload kinds.
const (
	KindFull  = "full"
	KindDelta = "delta"
	// KindImages is the container images of the set, embedded for air-gapped sites:
	// an xz-compressed tar in the format of `docker image save` (manifest.json with
	// RepoTags, loadable by the engine's image load). Each service's image is tagged
	// in it as ImagesTag(service.Image). Its For is ForImages.
	KindImages = "images"
)

// What a payload produces.
const (
	ForRootfs = "rootfs"
	ForBoot   = "boot"
	// ForImages is the container images of the set (payload KindImages).
	ForImages = "images"
)

// ImagesPayloadName is the file name of the embedded images payload, published as
// PayloadPath(version, ImagesPayloadName).
const ImagesPayloadName = "images.tar.xz"

// CodecXZ names xz compression (the only codec so far). The codec is named in every
// payload so another can follow without a schema change.
const CodecXZ = "xz"

// Health check kinds.
const (
	CheckHTTP    = "http"
	CheckTCP     = "tcp"
	CheckCommand = "command"
	CheckSystemd = "systemd"
)

// Manifest is one release: what the device installs and how it proves it healthy.
type Manifest struct {
	Schema     int       `json:"schema"`
	Version    string    `json:"version"`
	Counter    uint64    `json:"counter"`
	Channel    string    `json:"channel"`
	Compatible string    `json:"compatible"`
	Created    time.Time `json:"created"`

	// Rootfs is the uncompressed slot image the root partition must hold.
	Rootfs Image `json:"rootfs,omitzero"`
	// Boot is the uncompressed boot partition image.
	Boot Image `json:"boot,omitzero"`
	// Payloads carry Rootfs and Boot to the device. There is at least one full
	// payload for each, so a device can always fall back to a full install (P3).
	// A container-only release has none.
	Payloads []Payload `json:"payloads,omitempty"`

	// HealthChecks all must pass within HealthDeadline on the trial boot.
	HealthChecks   []HealthCheck `json:"health_checks,omitempty"`
	HealthDeadline Duration      `json:"health_deadline"`

	// Containers is the container set, pinned by digest; nil for none.
	Containers *ContainerSet `json:"containers,omitempty"`
	// MinOSCounter is, for a container-only release, the lowest counter of the OS
	// release the set needs (C4); 0 for none.
	MinOSCounter uint64 `json:"min_os_counter,omitempty"`
}

// ContainerOnly reports a release that updates only the container set: no slot
// images, no payloads. The device switches containers without a reboot.
func (m *Manifest) ContainerOnly() bool {
	return m.Rootfs.Size == 0 && len(m.Payloads) == 0 && m.Containers != nil
}

// Image is the content of a partition after installation.
type Image struct {
	// Size in bytes of the uncompressed image.
	Size int64 `json:"size"`
	// SHA256 of the uncompressed image, lowercase hex.
	SHA256 string `json:"sha256"`
}

// Payload is one downloadable file that produces an Image.
type Payload struct {
	Kind string `json:"kind"`
	// Target is the TUF target path of the payload file.
	Target string `json:"target"`
	Codec  string `json:"codec"`
	// Size and SHA256 are of the payload file as downloaded (compressed).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// For is the image the payload produces: ForRootfs or ForBoot.
	For string `json:"for"`
	// From and FromSHA256 name the base a delta applies to; empty for a full payload.
	From       string `json:"from,omitempty"`
	FromSHA256 string `json:"from_sha256,omitempty"`
}

// HealthCheck is one check of the trial boot. Only the fields of its Kind are set.
type HealthCheck struct {
	Kind string `json:"kind"`
	// Name is shown in reports; optional.
	Name string `json:"name,omitempty"`
	// URL for CheckHTTP (http or https).
	URL string `json:"url,omitempty"`
	// Expect is the HTTP status CheckHTTP wants; 0 means 200.
	Expect int `json:"expect,omitempty"`
	// Address is host:port for CheckTCP.
	Address string `json:"address,omitempty"`
	// Command is argv for CheckCommand (no shell); exit status 0 passes.
	Command []string `json:"command,omitempty"`
	// Unit is the systemd unit CheckSystemd wants active.
	Unit string `json:"unit,omitempty"`
	// Timeout bounds one attempt; 0 means DefaultCheckTimeout.
	Timeout Duration `json:"timeout,omitempty"`
}

// DefaultCheckTimeout is the per-attempt timeout of a check whose Timeout is 0.
const DefaultCheckTimeout = 5 * time.Second

// MaxHealthDeadline bounds HealthDeadline: the trial boot must end.
const MaxHealthDeadline = time.Hour

// ContainerSet is the containers a release runs. Every image is pinned by digest, so
// a moved tag or a tampered registry cannot change what runs (C1, S7).
type ContainerSet struct {
	Services []Service `json:"services"`
	// Strategy of a container-only update: StrategyDownloadThenKill (the default when
	// empty), StrategyKillThenDownload or StrategyHandOver. An OS release starts its
	// set on the trial boot and ignores it.
	Strategy string `json:"strategy,omitempty"`
}

// Container-only update strategies, as balena defines them.
const (
	// StrategyDownloadThenKill fetches every new image, then stops the old
	// containers gracefully and starts the new ones (the default).
	StrategyDownloadThenKill = "download-then-kill"
	// StrategyKillThenDownload stops the old containers and removes their images
	// before fetching, for devices short of disk.
	StrategyKillThenDownload = "kill-then-download"
	// StrategyHandOver starts a new container before its old one stops, for the
	// services marked HandOver; the others switch as with download-then-kill.
	StrategyHandOver = "hand-over"
)

// Restart policies of a service (Docker's). Empty means RestartNo.
const (
	RestartNo            = "no"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
	RestartOnFailure     = "on-failure"
)

// Container health check kinds.
const (
	// ContainerHealthDocker is Docker's own health check: the image's HEALTHCHECK,
	// or Command in Docker's form (["CMD", argv...] or ["CMD-SHELL", "cmd"]) when set.
	ContainerHealthDocker = "docker"
	// ContainerHealthHTTP wants a 2xx from URL, fetched by the updater on the host.
	ContainerHealthHTTP = "http"
	// ContainerHealthTCP wants a TCP connection to Address, made on the host.
	ContainerHealthTCP = "tcp"
	// ContainerHealthExec runs Command (argv, no shell) inside the container;
	// exit status 0 passes.
	ContainerHealthExec = "exec"
)

// DefaultStopTimeout is the graceful stop time of a service whose StopTimeout is 0:
// SIGTERM, then SIGKILL after it.
const DefaultStopTimeout = 10 * time.Second

// MaxStopTimeout bounds a service's StopTimeout.
const MaxStopTimeout = 10 * time.Minute

// Service is one container of the set.
type Service struct {
	// Name is the service name, [a-z0-9_-].
	Name string `json:"name"`
	// Image is "<registry>/<repo>@sha256:<64 hex>"; a tag may precede the digest
	// (repo:tag@sha256:...), the digest rules.
	Image string `json:"image"`
	// Command replaces the image's CMD when set.
	Command []string `json:"command,omitempty"`
	// Env is the container's environment.
	Env map[string]string `json:"env,omitempty"`
	// Ports published on the host.
	Ports []Port `json:"ports,omitempty"`
	// Volumes mounted into the container.
	Volumes []Volume `json:"volumes,omitempty"`
	// Restart is a Restart* policy; empty means RestartNo.
	Restart string `json:"restart,omitempty"`
	// Health proves the container healthy; nil means "running" is enough.
	Health *ContainerHealth `json:"health,omitempty"`
	// StopTimeout is the graceful stop time; 0 means DefaultStopTimeout.
	StopTimeout Duration `json:"stop_timeout,omitempty"`
	// HandOver says the service tolerates its old and new containers running at
	// once (StrategyHandOver only).
	HandOver bool `json:"hand_over,omitempty"`
}

// Port is one published port. Protocol is "tcp" (also when empty) or "udp"; HostIP
// empty binds every address.
type Port struct {
	Host      int    `json:"host"`
	Container int    `json:"container"`
	Protocol  string `json:"protocol,omitempty"`
	HostIP    string `json:"host_ip,omitempty"`
}

// Volume is one mount. Source is a named volume ([a-zA-Z0-9][a-zA-Z0-9_.-]*) or an
// absolute host path (a bind mount); Target is an absolute path in the container.
type Volume struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Backup asks for a snapshot of the volume before a switch, restored on
	// rollback (F8, C3).
	Backup bool `json:"backup,omitempty"`
}

// ContainerHealth is how a service proves itself healthy. Only the fields of its Kind
// are set; the durations and Retries tune the probe (0 means the device's default).
type ContainerHealth struct {
	Kind string `json:"kind"`
	// URL for ContainerHealthHTTP.
	URL string `json:"url,omitempty"`
	// Address host:port for ContainerHealthTCP.
	Address string `json:"address,omitempty"`
	// Command for ContainerHealthExec, or Docker's test for ContainerHealthDocker.
	Command     []string `json:"command,omitempty"`
	Interval    Duration `json:"interval,omitempty"`
	Timeout     Duration `json:"timeout,omitempty"`
	StartPeriod Duration `json:"start_period,omitempty"`
	Retries     int      `json:"retries,omitempty"`
}

// Summary is what a release's target entry carries in its "custom" field.
type Summary struct {
	Version    string `json:"version"`
	Counter    uint64 `json:"counter"`
	Channel    string `json:"channel"`
	Compatible string `json:"compatible"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string
// ("90s"). Convert with time.Duration(d).
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "90s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ManifestPath is the target path of a version's manifest.
func ManifestPath(version string) string {
	return "releases/" + version + "/release.json"
}

// PayloadPath is the target path of a file published with a version, such as
// "rootfs.ext4.xz".
func PayloadPath(version, name string) string {
	return "releases/" + version + "/" + name
}

// ParseManifest decodes and validates a manifest. Unknown fields, trailing data and
// documents over MaxManifestSize are refused.
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: manifest is %d bytes, limit %d", ErrInvalid, len(data), MaxManifestSize)
	}
	var m Manifest
	if err := decodeStrict(data, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ParseSummary decodes and validates a target's custom summary.
func ParseSummary(data []byte) (Summary, error) {
	var s Summary
	if len(data) > 4096 {
		return s, fmt.Errorf("%w: summary is %d bytes", ErrInvalid, len(data))
	}
	if err := decodeStrict(data, &s); err != nil {
		return s, fmt.Errorf("%w: summary: %w", ErrInvalid, err)
	}
	return s, s.Validate()
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the document")
	}
	return nil
}

// Marshal encodes the manifest as indented JSON with a trailing newline. It validates
// first, so a publisher cannot write a manifest devices would refuse.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Summary is the custom summary of the manifest's target entry.
func (m *Manifest) Summary() Summary {
	return Summary{Version: m.Version, Counter: m.Counter, Channel: m.Channel, Compatible: m.Compatible}
}

// Marshal is the encoding of the summary as a target's custom field.
func (s Summary) Marshal() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// Matches reports, as an error wrapping ErrInvalid, a manifest whose fields disagree
// with the summary signed in its target entry.
func (s Summary) Matches(m *Manifest) error {
	if got := m.Summary(); got != s {
		return fmt.Errorf("%w: manifest says %+v, its signed target entry says %+v", ErrInvalid, got, s)
	}
	return nil
}

// FullPayload returns the full payload that produces the image named by forImage.
func (m *Manifest) FullPayload(forImage string) (Payload, bool) {
	for _, p := range m.Payloads {
		if p.Kind == KindFull && p.For == forImage {
			return p, true
		}
	}
	return Payload{}, false
}

// DeltaPayload returns the delta that turns an image with hash baseSHA256 into the
// image named by forImage.
func (m *Manifest) DeltaPayload(forImage, baseSHA256 string) (Payload, bool) {
	for _, p := range m.Payloads {
		if p.Kind == KindDelta && p.For == forImage && p.FromSHA256 == baseSHA256 {
			return p, true
		}
	}
	return Payload{}, false
}

// ImageDigest splits a pinned image reference "name[:tag]@sha256:<hex>" into its
// name (without tag) and its digest "sha256:<hex>". ok is false for a reference that
// is not pinned.
func ImageDigest(ref string) (name, digest string, ok bool) {
	i := strings.LastIndex(ref, "@sha256:")
	if i <= 0 || ValidSHA256(ref[i+len("@sha256:"):]) != nil {
		return "", "", false
	}
	name, digest = ref[:i], ref[i+1:]
	// A tag follows the last ":" after the last "/" (a registry port precedes it).
	if j := strings.LastIndexByte(name, ':'); j > strings.LastIndexByte(name, '/') {
		name = name[:j]
	}
	return name, digest, true
}

// ImagesTag is the tag under which the embedded images payload (KindImages) carries
// the image a service pins: "<name>:sha256-<hex>". Docker's image load keeps tags but
// not registry digests, so the digest travels in the tag; the payload's signed hash
// binds the tar, whose layers and config the engine checks by content address.
func ImagesTag(ref string) (string, bool) {
	name, digest, ok := ImageDigest(ref)
	if !ok {
		return "", false
	}
	return name + ":sha256-" + strings.TrimPrefix(digest, "sha256:"), true
}
