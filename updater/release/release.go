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
)

// What a payload produces.
const (
	ForRootfs = "rootfs"
	ForBoot   = "boot"
)

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
	Rootfs Image `json:"rootfs"`
	// Boot is the uncompressed boot partition image.
	Boot Image `json:"boot"`
	// Payloads carry Rootfs and Boot to the device. There is at least one full
	// payload for each, so a device can always fall back to a full install (P3).
	Payloads []Payload `json:"payloads"`

	// HealthChecks all must pass within HealthDeadline on the trial boot.
	HealthChecks   []HealthCheck `json:"health_checks,omitempty"`
	HealthDeadline Duration      `json:"health_deadline"`

	// Containers is the container set, pinned by digest; nil for none.
	Containers *ContainerSet `json:"containers,omitempty"`
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

// ContainerSet is the containers a release runs. A later issue fills it in; for now
// it pins images by digest so a tag move cannot change what runs (C1).
type ContainerSet struct {
	Services []Service `json:"services"`
}

// Service is one container of the set.
type Service struct {
	Name string `json:"name"`
	// Image is a reference that contains "@sha256:<64 hex>".
	Image string `json:"image"`
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
