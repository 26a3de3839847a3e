package release

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxTargetPathLen bounds a target path.
const MaxTargetPathLen = 255

// ValidTargetPath checks a TUF target path before it becomes a URL or a file name
// (S13): only [A-Za-z0-9._-] in "/"-separated elements, none empty, "." or "..",
// no leading dot in an element, local by filepath.IsLocal, at most MaxTargetPathLen
// bytes.
func ValidTargetPath(p string) error {
	if p == "" || len(p) > MaxTargetPathLen {
		return fmt.Errorf("%w: target path %q: length %d not in 1..%d", ErrInvalid, p, len(p), MaxTargetPathLen)
	}
	for _, elem := range strings.Split(p, "/") {
		if err := safeName(elem, 128); err != nil {
			return fmt.Errorf("%w: target path %q: %w", ErrInvalid, p, err)
		}
	}
	if !filepath.IsLocal(p) {
		return fmt.Errorf("%w: target path %q is not local", ErrInvalid, p)
	}
	return nil
}

// ValidVersion checks a version string: a safe single path element of at most 64
// bytes from [A-Za-z0-9._-], not starting with a dot. "+" is left out so that a
// version is the same in a URL path and a file name.
func ValidVersion(v string) error {
	if err := safeName(v, 64); err != nil {
		return fmt.Errorf("%w: version: %w", ErrInvalid, err)
	}
	return nil
}

// safeName checks one path element.
func safeName(s string, max int) error {
	if s == "" {
		return fmt.Errorf("empty name")
	}
	if len(s) > max {
		return fmt.Errorf("name %q longer than %d bytes", s, max)
	}
	if s[0] == '.' {
		return fmt.Errorf("name %q starts with a dot", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q has byte %q outside [A-Za-z0-9._-]", s, c)
		}
	}
	return nil
}

// ident checks a channel, board id or service name: [a-z0-9_-], 1..64 bytes,
// starting with a letter or digit.
func ident(what, s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%w: %s %q: length not in 1..64", ErrInvalid, what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && (c == '-' || c == '_'))
		if !ok {
			return fmt.Errorf("%w: %s %q: byte %q outside [a-z0-9_-]", ErrInvalid, what, s, c)
		}
	}
	return nil
}

// ValidSHA256 checks a 64-character lowercase hex digest.
func ValidSHA256(h string) error {
	if len(h) != 64 {
		return fmt.Errorf("%w: sha256 %q: want 64 hex characters, got %d", ErrInvalid, h, len(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: sha256 %q: not lowercase hex", ErrInvalid, h)
		}
	}
	return nil
}

// Validate checks a summary.
func (s Summary) Validate() error {
	if err := ValidVersion(s.Version); err != nil {
		return err
	}
	if s.Counter == 0 {
		return fmt.Errorf("%w: counter must be > 0", ErrInvalid)
	}
	if err := ident("channel", s.Channel); err != nil {
		return err
	}
	return ident("compatible", s.Compatible)
}

// Validate checks every field of the manifest. The errors wrap ErrInvalid.
func (m *Manifest) Validate() error {
	if m.Schema != SchemaVersion {
		return fmt.Errorf("%w: schema %d, this reader knows %d", ErrInvalid, m.Schema, SchemaVersion)
	}
	if err := m.Summary().Validate(); err != nil {
		return err
	}
	if m.Created.IsZero() {
		return fmt.Errorf("%w: created time missing", ErrInvalid)
	}
	if m.ContainerOnly() {
		if m.Rootfs != (Image{}) || m.Boot != (Image{}) || m.Payloads != nil {
			return fmt.Errorf("%w: a container-only release has no rootfs, boot or payloads", ErrInvalid)
		}
		if len(m.Containers.Services) == 0 {
			return fmt.Errorf("%w: a container-only release needs at least one service", ErrInvalid)
		}
		if m.MinOSCounter >= m.Counter {
			return fmt.Errorf("%w: min_os_counter %d must be below the release counter %d", ErrInvalid, m.MinOSCounter, m.Counter)
		}
	} else {
		if err := m.validateOS(); err != nil {
			return err
		}
	}
	if len(m.HealthChecks) > 64 {
		return fmt.Errorf("%w: %d health checks, limit 64", ErrInvalid, len(m.HealthChecks))
	}
	deadline := time.Duration(m.HealthDeadline)
	if deadline < 0 || deadline > MaxHealthDeadline {
		return fmt.Errorf("%w: health deadline %v not in 0..%v", ErrInvalid, deadline, MaxHealthDeadline)
	}
	if len(m.HealthChecks) > 0 && deadline == 0 {
		return fmt.Errorf("%w: health checks need a health deadline", ErrInvalid)
	}
	for i, c := range m.HealthChecks {
		if err := c.validate(deadline); err != nil {
			return fmt.Errorf("health check %d: %w", i, err)
		}
	}
	if m.Containers != nil {
		if err := m.Containers.validate(); err != nil {
			return err
		}
	}
	return nil
}

// validateOS checks the slot images and payloads of a release that is not
// container-only: a release with neither images nor containers fails here.
func (m *Manifest) validateOS() error {
	if err := m.Rootfs.validate("rootfs"); err != nil {
		return err
	}
	if err := m.Boot.validate("boot"); err != nil {
		return err
	}
	if m.MinOSCounter != 0 {
		return fmt.Errorf("%w: min_os_counter is for container-only releases", ErrInvalid)
	}
	if len(m.Payloads) == 0 || len(m.Payloads) > 64 {
		return fmt.Errorf("%w: %d payloads, want 1..64", ErrInvalid, len(m.Payloads))
	}
	seen := map[string]bool{}
	images := 0
	for i, p := range m.Payloads {
		if err := p.validate(m.Version); err != nil {
			return fmt.Errorf("payload %d: %w", i, err)
		}
		if seen[p.Target] {
			return fmt.Errorf("%w: payload %d: target %q listed twice", ErrInvalid, i, p.Target)
		}
		seen[p.Target] = true
		if p.Kind == KindImages {
			images++
		}
	}
	if images > 1 {
		return fmt.Errorf("%w: %d images payloads, want at most 1", ErrInvalid, images)
	}
	if images == 1 && (m.Containers == nil || len(m.Containers.Services) == 0) {
		return fmt.Errorf("%w: an images payload without a container set", ErrInvalid)
	}
	for _, f := range []string{ForRootfs, ForBoot} {
		if _, ok := m.FullPayload(f); !ok {
			return fmt.Errorf("%w: no full payload for %s", ErrInvalid, f)
		}
	}
	return nil
}

func (im Image) validate(what string) error {
	if im.Size <= 0 {
		return fmt.Errorf("%w: %s size %d must be > 0", ErrInvalid, what, im.Size)
	}
	if err := ValidSHA256(im.SHA256); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (p Payload) validate(version string) error {
	if err := ValidTargetPath(p.Target); err != nil {
		return err
	}
	if p.Codec != CodecXZ {
		return fmt.Errorf("%w: codec %q unknown (known: %s)", ErrInvalid, p.Codec, CodecXZ)
	}
	if p.Size <= 0 {
		return fmt.Errorf("%w: size %d must be > 0", ErrInvalid, p.Size)
	}
	if err := ValidSHA256(p.SHA256); err != nil {
		return err
	}
	if p.For != ForRootfs && p.For != ForBoot && p.For != ForImages {
		return fmt.Errorf("%w: for %q, want %q, %q or %q", ErrInvalid, p.For, ForRootfs, ForBoot, ForImages)
	}
	if (p.Kind == KindImages) != (p.For == ForImages) {
		return fmt.Errorf("%w: kind %q with for %q: images go together", ErrInvalid, p.Kind, p.For)
	}
	switch p.Kind {
	case KindImages:
		if p.From != "" || p.FromSHA256 != "" {
			return fmt.Errorf("%w: images payload names a base", ErrInvalid)
		}
	case KindFull:
		if p.From != "" || p.FromSHA256 != "" {
			return fmt.Errorf("%w: full payload names a base", ErrInvalid)
		}
	case KindDelta:
		if err := ValidVersion(p.From); err != nil {
			return fmt.Errorf("delta base: %w", err)
		}
		if p.From == version {
			return fmt.Errorf("%w: delta from its own version", ErrInvalid)
		}
		if err := ValidSHA256(p.FromSHA256); err != nil {
			return fmt.Errorf("delta base: %w", err)
		}
	default:
		return fmt.Errorf("%w: kind %q, want %q, %q or %q", ErrInvalid, p.Kind, KindFull, KindDelta, KindImages)
	}
	return nil
}

func (c HealthCheck) validate(deadline time.Duration) error {
	if len(c.Name) > 64 {
		return fmt.Errorf("%w: name longer than 64 bytes", ErrInvalid)
	}
	t := time.Duration(c.Timeout)
	if t < 0 || t > deadline {
		return fmt.Errorf("%w: timeout %v not in 0..%v (the deadline)", ErrInvalid, t, deadline)
	}
	has := map[string]bool{
		"url":     c.URL != "",
		"expect":  c.Expect != 0,
		"address": c.Address != "",
		"command": c.Command != nil,
		"unit":    c.Unit != "",
	}
	var allowed []string
	switch c.Kind {
	case CheckHTTP:
		allowed = []string{"url", "expect"}
		u, err := url.Parse(c.URL)
		if err != nil {
			return fmt.Errorf("%w: url: %w", ErrInvalid, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: url %q: want http(s)://host/...", ErrInvalid, c.URL)
		}
		if c.Expect != 0 && (c.Expect < 100 || c.Expect > 599) {
			return fmt.Errorf("%w: expect %d is no HTTP status", ErrInvalid, c.Expect)
		}
	case CheckTCP:
		allowed = []string{"address"}
		host, port, err := net.SplitHostPort(c.Address)
		if err != nil {
			return fmt.Errorf("%w: address: %w", ErrInvalid, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return fmt.Errorf("%w: address %q: want host:port", ErrInvalid, c.Address)
		}
	case CheckCommand:
		allowed = []string{"command"}
		if len(c.Command) == 0 || c.Command[0] == "" || len(c.Command) > 64 {
			return fmt.Errorf("%w: command must have 1..64 arguments, the first non-empty", ErrInvalid)
		}
		for _, a := range c.Command {
			if strings.IndexByte(a, 0) >= 0 {
				return fmt.Errorf("%w: command argument contains NUL", ErrInvalid)
			}
		}
	case CheckSystemd:
		allowed = []string{"unit"}
		if err := validUnit(c.Unit); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: kind %q unknown", ErrInvalid, c.Kind)
	}
	for field, set := range has {
		if set && !slices.Contains(allowed, field) {
			return fmt.Errorf("%w: %s check sets field %q", ErrInvalid, c.Kind, field)
		}
	}
	return nil
}

// validUnit checks a systemd unit name: [A-Za-z0-9:_.@-], a known suffix, no
// leading dash so it cannot be read as an option.
func validUnit(u string) error {
	if u == "" || len(u) > 255 || u[0] == '-' || u[0] == '.' {
		return fmt.Errorf("%w: unit %q", ErrInvalid, u)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(":_.@-", c) >= 0) {
			return fmt.Errorf("%w: unit %q has byte %q", ErrInvalid, u, c)
		}
	}
	for _, suffix := range []string{".service", ".socket", ".target", ".mount", ".timer", ".path"} {
		if strings.HasSuffix(u, suffix) && len(u) > len(suffix) {
			return nil
		}
	}
	return fmt.Errorf("%w: unit %q has no known suffix", ErrInvalid, u)
}
