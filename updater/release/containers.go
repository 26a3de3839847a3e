package release

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Limits of a container set.
const (
	maxServices    = 256
	maxArgs        = 256
	maxArgLen      = 32 << 10
	maxEnv         = 256
	maxPorts       = 256
	maxVolumes     = 64
	maxPathLen     = 4096
	maxRetries     = 100
	maxImageRefLen = 512
)

func (cs *ContainerSet) validate() error {
	if len(cs.Services) > maxServices {
		return fmt.Errorf("%w: %d services, limit %d", ErrInvalid, len(cs.Services), maxServices)
	}
	switch cs.Strategy {
	case "", StrategyDownloadThenKill, StrategyKillThenDownload, StrategyHandOver:
	default:
		return fmt.Errorf("%w: strategy %q unknown (known: %s, %s, %s)", ErrInvalid, cs.Strategy,
			StrategyDownloadThenKill, StrategyKillThenDownload, StrategyHandOver)
	}
	names := map[string]bool{}
	for _, s := range cs.Services {
		if err := ident("service name", s.Name); err != nil {
			return err
		}
		if names[s.Name] {
			return fmt.Errorf("%w: service %q listed twice", ErrInvalid, s.Name)
		}
		names[s.Name] = true
		if err := s.validate(cs.Strategy); err != nil {
			return fmt.Errorf("service %q: %w", s.Name, err)
		}
	}
	return nil
}

func (s *Service) validate(strategy string) error {
	if err := ValidImageRef(s.Image); err != nil {
		return err
	}
	if err := validArgs("command", s.Command); err != nil {
		return err
	}
	if s.Env != nil && len(s.Env) == 0 {
		return fmt.Errorf("%w: env set but empty", ErrInvalid)
	}
	if len(s.Env) > maxEnv {
		return fmt.Errorf("%w: %d environment variables, limit %d", ErrInvalid, len(s.Env), maxEnv)
	}
	for k, v := range s.Env {
		if err := validEnvKey(k); err != nil {
			return err
		}
		if len(v) > maxArgLen || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%w: env %s: value longer than %d bytes or with NUL", ErrInvalid, k, maxArgLen)
		}
	}
	if s.Ports != nil && len(s.Ports) == 0 {
		return fmt.Errorf("%w: ports set but empty", ErrInvalid)
	}
	if len(s.Ports) > maxPorts {
		return fmt.Errorf("%w: %d ports, limit %d", ErrInvalid, len(s.Ports), maxPorts)
	}
	for _, p := range s.Ports {
		if err := p.validate(); err != nil {
			return err
		}
	}
	if s.Volumes != nil && len(s.Volumes) == 0 {
		return fmt.Errorf("%w: volumes set but empty", ErrInvalid)
	}
	if len(s.Volumes) > maxVolumes {
		return fmt.Errorf("%w: %d volumes, limit %d", ErrInvalid, len(s.Volumes), maxVolumes)
	}
	targets := map[string]bool{}
	for _, v := range s.Volumes {
		if err := v.validate(); err != nil {
			return err
		}
		if targets[v.Target] {
			return fmt.Errorf("%w: volume target %q mounted twice", ErrInvalid, v.Target)
		}
		targets[v.Target] = true
	}
	switch s.Restart {
	case "", RestartNo, RestartAlways, RestartUnlessStopped, RestartOnFailure:
	default:
		return fmt.Errorf("%w: restart %q unknown", ErrInvalid, s.Restart)
	}
	if s.Health != nil {
		if err := s.Health.validate(); err != nil {
			return fmt.Errorf("health: %w", err)
		}
	}
	if t := time.Duration(s.StopTimeout); t < 0 || t > MaxStopTimeout {
		return fmt.Errorf("%w: stop timeout %v not in 0..%v", ErrInvalid, t, MaxStopTimeout)
	}
	if s.HandOver && strategy != StrategyHandOver {
		return fmt.Errorf("%w: hand_over needs the set's strategy %q, not %q", ErrInvalid, StrategyHandOver, strategy)
	}
	return nil
}

// ValidImageRef checks an image reference pinned by digest:
// "<registry>/<repo>[:tag]@sha256:<64 hex>", printable ASCII from the reference
// grammar's characters, not starting with "-", at most 512 bytes.
func ValidImageRef(ref string) error {
	name, _, ok := ImageDigest(ref)
	if !ok || len(ref) > maxImageRefLen {
		return fmt.Errorf("%w: image %q is not pinned by @sha256 digest", ErrInvalid, ref)
	}
	if name == "" || name[0] == '-' || name[0] == '.' || name[0] == '/' || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return fmt.Errorf("%w: image %q: bad repository name", ErrInvalid, ref)
	}
	at := strings.LastIndex(ref, "@")
	for i := 0; i < at; i++ {
		c := ref[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/:", c) >= 0) {
			return fmt.Errorf("%w: image %q has byte %q outside [A-Za-z0-9._/:-]", ErrInvalid, ref, c)
		}
	}
	return nil
}

func validArgs(what string, args []string) error {
	if args == nil {
		return nil
	}
	if len(args) == 0 || len(args) > maxArgs {
		return fmt.Errorf("%w: %s must have 1..%d arguments when set", ErrInvalid, what, maxArgs)
	}
	for _, a := range args {
		if len(a) > maxArgLen || strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("%w: %s argument longer than %d bytes or with NUL", ErrInvalid, what, maxArgLen)
		}
	}
	return nil
}

// validEnvKey: [A-Za-z_][A-Za-z0-9_.-]*, at most 256 bytes; never "=" or NUL.
func validEnvKey(k string) error {
	if k == "" || len(k) > 256 {
		return fmt.Errorf("%w: env key %q: length not in 1..256", ErrInvalid, k)
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-')
		if !ok {
			return fmt.Errorf("%w: env key %q: byte %q not allowed", ErrInvalid, k, c)
		}
	}
	return nil
}

func (p Port) validate() error {
	if p.Host < 1 || p.Host > 65535 || p.Container < 1 || p.Container > 65535 {
		return fmt.Errorf("%w: port %d:%d: want 1..65535", ErrInvalid, p.Host, p.Container)
	}
	if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
		return fmt.Errorf("%w: port protocol %q, want tcp or udp", ErrInvalid, p.Protocol)
	}
	if p.HostIP != "" {
		ip := net.ParseIP(p.HostIP)
		if ip == nil || ip.String() != p.HostIP {
			return fmt.Errorf("%w: port host ip %q is no canonical IP address", ErrInvalid, p.HostIP)
		}
	}
	return nil
}

func (v Volume) validate() error {
	if !cleanAbs(v.Target) || v.Target == "/" {
		return fmt.Errorf("%w: volume target %q: want an absolute clean path other than /", ErrInvalid, v.Target)
	}
	if strings.HasPrefix(v.Source, "/") {
		if !cleanAbs(v.Source) {
			return fmt.Errorf("%w: volume source %q: want an absolute clean path", ErrInvalid, v.Source)
		}
		if v.Backup {
			return fmt.Errorf("%w: backup of bind mount %s is not supported; use a named volume", ErrInvalid, v.Source)
		}
		return nil
	}
	if err := validVolumeName(v.Source); err != nil {
		return err
	}
	return nil
}

func cleanAbs(p string) bool {
	return p != "" && len(p) <= maxPathLen && path.IsAbs(p) && path.Clean(p) == p && strings.IndexByte(p, 0) < 0
}

// validVolumeName: Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 255 bytes.
func validVolumeName(n string) error {
	if n == "" || len(n) > 255 {
		return fmt.Errorf("%w: volume source %q: length not in 1..255", ErrInvalid, n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && strings.IndexByte("_.-", c) >= 0
		if !ok {
			return fmt.Errorf("%w: volume source %q: neither a name [a-zA-Z0-9][a-zA-Z0-9_.-]* nor an absolute path", ErrInvalid, n)
		}
	}
	return nil
}

func (h *ContainerHealth) validate() error {
	for what, d := range map[string]Duration{"interval": h.Interval, "timeout": h.Timeout, "start_period": h.StartPeriod} {
		if t := time.Duration(d); t < 0 || t > MaxHealthDeadline {
			return fmt.Errorf("%w: %s %v not in 0..%v", ErrInvalid, what, t, MaxHealthDeadline)
		}
	}
	if h.Retries < 0 || h.Retries > maxRetries {
		return fmt.Errorf("%w: retries %d not in 0..%d", ErrInvalid, h.Retries, maxRetries)
	}
	if err := validArgs("command", h.Command); err != nil {
		return err
	}
	has := map[string]bool{"url": h.URL != "", "address": h.Address != "", "command": h.Command != nil}
	var allowed string
	switch h.Kind {
	case ContainerHealthDocker:
		allowed = "command"
		if h.Command != nil && h.Command[0] != "CMD" && h.Command[0] != "CMD-SHELL" && h.Command[0] != "NONE" {
			return fmt.Errorf("%w: docker test %q must start with CMD, CMD-SHELL or NONE", ErrInvalid, h.Command[0])
		}
	case ContainerHealthHTTP:
		allowed = "url"
		u, err := url.Parse(h.URL)
		if err != nil {
			return fmt.Errorf("%w: url: %w", ErrInvalid, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: url %q: want http(s)://host/...", ErrInvalid, h.URL)
		}
	case ContainerHealthTCP:
		allowed = "address"
		host, port, err := net.SplitHostPort(h.Address)
		if err != nil {
			return fmt.Errorf("%w: address: %w", ErrInvalid, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return fmt.Errorf("%w: address %q: want host:port", ErrInvalid, h.Address)
		}
	case ContainerHealthExec:
		allowed = "command"
		if h.Command == nil || h.Command[0] == "" {
			return fmt.Errorf("%w: exec check needs a command", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: kind %q unknown", ErrInvalid, h.Kind)
	}
	for field, set := range has {
		if set && field != allowed {
			return fmt.Errorf("%w: %s check sets field %q", ErrInvalid, h.Kind, field)
		}
	}
	return nil
}
