// Package compose turns a Compose file into a release's container set
// (release.ContainerSet), parsed with the compose-spec reference library.
//
// The model: a container set is what a gateway runs, not how it is built, so only
// what can be carried in signed release metadata and reproduced on the device is
// accepted. Supported per service: image, command, environment, ports (fixed host
// ports), volumes (named volumes and absolute bind mounts), restart, healthcheck,
// stop_grace_period and the default network. Keys that change what runs or what it
// may do (build without image, entrypoint, privileged, cap_add, devices, user,
// network_mode, secrets, ...) are refused with an error naming them; keys that only
// affect how compose itself behaves (depends_on, labels, container_name, deploy,
// logging, ...) are dropped with a warning.
//
// Project-specific extensions:
//
//	x-ota-strategy: hand-over             # top level: the container-only update strategy
//	services:
//	  app:
//	    x-ota-hand-over: true             # may run beside its successor (hand-over)
//	    x-ota-backup: [state]             # volumes to snapshot before a switch
//	    x-ota-health: {kind: http, url: "http://127.0.0.1:8080/healthz", interval: 2s}
//	volumes:
//	  state:
//	    labels: {com.healthguard.ota.backup: "true"}   # same as x-ota-backup
//
// A compose healthcheck becomes a health check of kind "docker" (its test, or the
// image's HEALTHCHECK when it has none); x-ota-health replaces it with an http, tcp
// or exec check the updater runs itself. Images are returned as written: pinning
// them by digest is the publisher's job (see manifest-server's create-update).
// Variables are interpolated from Options.Env only, never from the process
// environment.
package compose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/healthguard/gateway-ota/updater/release"
)

// MaxFileSize bounds a compose file.
const MaxFileSize = 1 << 20

// BackupLabel on a top-level volume marks it for backup in every service using it.
const BackupLabel = "com.healthguard.ota.backup"

// ErrUnsupported is wrapped by the error for a compose feature a container set
// cannot carry.
var ErrUnsupported = errors.New("unsupported in a container set")

// Options tunes Parse. The zero value is usable.
type Options struct {
	// Env holds the variables ${VAR} may name. Nil means none.
	Env map[string]string
	// WorkingDir resolves relative paths of the compose file (env_file, extends);
	// empty means ".".
	WorkingDir string
}

// Set is a parsed compose file.
type Set struct {
	// Containers has one service per compose service, sorted by name, with its image
	// as written in the file (not yet pinned).
	Containers *release.ContainerSet `json:"containers"`
	// Warnings name the compose keys that were dropped.
	Warnings []string `json:"warnings"`
}

// Parse parses the compose file data (named filename in messages).
func Parse(ctx context.Context, filename string, data []byte, opts Options) (*Set, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("compose %s: %d bytes, limit %d", filename, len(data), MaxFileSize)
	}
	wd := opts.WorkingDir
	if wd == "" {
		wd = "."
	}
	env := types.Mapping{}
	for k, v := range opts.Env {
		env[k] = v
	}
	proj, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: filename, Content: data}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("ota", true)
		o.ResolvePaths = false
		o.SkipInclude = true
		o.MaxNodeVisits = 100000
		o.ResourceLoaders = nil
	})
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", filename, err)
	}
	return convert(proj)
}

// supported keys of a service (as the library's JSON encoding names them); the
// values say whether they are handled (true) or dropped with a warning (false).
var serviceKeys = map[string]bool{
	"image": true, "command": true, "environment": true, "ports": true, "volumes": true,
	"restart": true, "healthcheck": true, "stop_grace_period": true, "networks": true,
	"depends_on": false, "labels": false, "container_name": false, "hostname": false,
	"logging": false, "deploy": false, "expose": false, "pull_policy": false,
	"profiles": false, "annotations": false, "develop": false, "attach": false,
	"tty": false, "stdin_open": false,
}

func convert(p *types.Project) (*Set, error) {
	out := &Set{Containers: &release.ContainerSet{}}
	if v, ok := p.Extensions["x-ota-strategy"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("x-ota-strategy: want a string, got %T", v)
		}
		out.Containers.Strategy = s
	}
	backupVolumes := map[string]bool{}
	for name, v := range p.Volumes {
		if b, ok := v.Labels[BackupLabel]; ok {
			on, err := strconv.ParseBool(b)
			if err != nil {
				return nil, fmt.Errorf("volume %s: label %s=%q: want true or false", name, BackupLabel, b)
			}
			backupVolumes[name] = on
		}
		if v.Driver != "" && v.Driver != "local" || len(v.DriverOpts) > 0 || bool(v.External) {
			return nil, fmt.Errorf("volume %s: driver, driver_opts and external are %w", name, ErrUnsupported)
		}
	}
	if len(p.Services) == 0 {
		return nil, errors.New("compose file has no services")
	}
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		svc, warns, err := convertService(p.Services[n], backupVolumes)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", n, err)
		}
		out.Containers.Services = append(out.Containers.Services, svc)
		out.Warnings = append(out.Warnings, warns...)
	}
	return out, nil
}

func convertService(s types.ServiceConfig, backupVolumes map[string]bool) (release.Service, []string, error) {
	svc := release.Service{Name: s.Name, Image: s.Image}
	var warns []string
	// Every key the library decoded, by its JSON name, is either handled, dropped
	// with a warning or refused.
	raw, err := json.Marshal(s)
	if err != nil {
		return svc, nil, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return svc, nil, err
	}
	sorted := make([]string, 0, len(keys))
	for k, v := range keys {
		if string(v) != "null" {
			sorted = append(sorted, k)
		}
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		handled, known := serviceKeys[k]
		switch {
		case k == "build" && s.Image != "":
			warns = append(warns, fmt.Sprintf("service %s: build dropped, the release uses image %s", s.Name, s.Image))
		case !known:
			return svc, nil, fmt.Errorf("key %q is %w", k, ErrUnsupported)
		case !handled:
			warns = append(warns, fmt.Sprintf("service %s: %s dropped", s.Name, k))
		}
	}
	if s.Image == "" {
		return svc, nil, fmt.Errorf("no image: a release needs one (build is %w)", ErrUnsupported)
	}
	for net := range s.Networks {
		if net != "default" {
			return svc, nil, fmt.Errorf("network %q: only the default network is %w", net, ErrUnsupported)
		}
	}
	if s.Scale != nil && *s.Scale != 1 || s.Deploy != nil && s.Deploy.Replicas != nil && *s.Deploy.Replicas != 1 {
		return svc, nil, fmt.Errorf("more than one replica is %w", ErrUnsupported)
	}
	if s.Command != nil {
		svc.Command = []string(s.Command)
	}
	if len(s.Environment) > 0 {
		svc.Env = map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				return svc, nil, fmt.Errorf("environment %s has no value", k)
			}
			svc.Env[k] = *v
		}
	}
	for _, p := range s.Ports {
		port, err := convertPort(p)
		if err != nil {
			return svc, nil, err
		}
		svc.Ports = append(svc.Ports, port)
	}
	backups, err := stringList(s.Extensions["x-ota-backup"], "x-ota-backup")
	if err != nil {
		return svc, nil, err
	}
	// x-ota-backup applies to this service only: a copy, not the shared map.
	backup := make(map[string]bool, len(backupVolumes)+len(backups))
	for k, v := range backupVolumes {
		backup[k] = v
	}
	for _, b := range backups {
		backup[b] = true
	}
	for _, v := range s.Volumes {
		vol, err := convertVolume(v, backup)
		if err != nil {
			return svc, nil, err
		}
		svc.Volumes = append(svc.Volumes, vol)
	}
	for _, b := range backups {
		found := false
		for _, v := range svc.Volumes {
			found = found || v.Source == b
		}
		if !found {
			return svc, nil, fmt.Errorf("x-ota-backup names %q, which the service does not mount", b)
		}
	}
	switch r := s.Restart; {
	case r == "" || r == "no" || r == "always" || r == "unless-stopped" || r == "on-failure":
		svc.Restart = r
	case strings.HasPrefix(r, "on-failure:"):
		svc.Restart = release.RestartOnFailure
		warns = append(warns, fmt.Sprintf("service %s: restart %s: the retry count is dropped", s.Name, r))
	default:
		return svc, nil, fmt.Errorf("restart %q unknown", r)
	}
	if s.StopGracePeriod != nil {
		svc.StopTimeout = release.Duration(*s.StopGracePeriod)
	}
	if s.HealthCheck != nil {
		svc.Health = convertHealth(s.HealthCheck)
		if s.HealthCheck.StartInterval != nil {
			warns = append(warns, fmt.Sprintf("service %s: healthcheck start_interval dropped", s.Name))
		}
	}
	if v, ok := s.Extensions["x-ota-health"]; ok {
		h, err := decodeHealth(v)
		if err != nil {
			return svc, nil, err
		}
		svc.Health = h
	}
	if v, ok := s.Extensions["x-ota-hand-over"]; ok {
		b, ok := v.(bool)
		if !ok {
			return svc, nil, fmt.Errorf("x-ota-hand-over: want true or false, got %T", v)
		}
		svc.HandOver = b
	}
	for k := range s.Extensions {
		switch k {
		case "x-ota-health", "x-ota-hand-over", "x-ota-backup":
		default:
			warns = append(warns, fmt.Sprintf("service %s: extension %s ignored", s.Name, k))
		}
	}
	return svc, warns, nil
}

func convertPort(p types.ServicePortConfig) (release.Port, error) {
	if p.Published == "" {
		return release.Port{}, fmt.Errorf("port %d: a published host port is required (random ports are %w)", p.Target, ErrUnsupported)
	}
	host, err := strconv.Atoi(p.Published)
	if err != nil {
		return release.Port{}, fmt.Errorf("port %s:%d: port ranges are %w", p.Published, p.Target, ErrUnsupported)
	}
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	return release.Port{Host: host, Container: int(p.Target), Protocol: proto, HostIP: p.HostIP}, nil
}

func convertVolume(v types.ServiceVolumeConfig, backupVolumes map[string]bool) (release.Volume, error) {
	vol := release.Volume{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}
	switch v.Type {
	case types.VolumeTypeVolume:
		if v.Source == "" {
			return vol, fmt.Errorf("volume %s: anonymous volumes are %w: name it", v.Target, ErrUnsupported)
		}
		vol.Backup = backupVolumes[v.Source]
	case types.VolumeTypeBind:
		if !path.IsAbs(v.Source) {
			return vol, fmt.Errorf("bind mount %s: the source must be an absolute path on the device", v.Source)
		}
		vol.Backup = backupVolumes[v.Source]
	default:
		return vol, fmt.Errorf("volume %s: type %q is %w", v.Target, v.Type, ErrUnsupported)
	}
	return vol, nil
}

func convertHealth(h *types.HealthCheckConfig) *release.ContainerHealth {
	if h.Disable || len(h.Test) > 0 && h.Test[0] == "NONE" {
		return nil
	}
	out := &release.ContainerHealth{Kind: release.ContainerHealthDocker}
	if len(h.Test) > 0 {
		out.Command = []string(h.Test)
	}
	dur := func(d *types.Duration) release.Duration {
		if d == nil {
			return 0
		}
		return release.Duration(time.Duration(*d))
	}
	out.Interval, out.Timeout, out.StartPeriod = dur(h.Interval), dur(h.Timeout), dur(h.StartPeriod)
	if h.Retries != nil {
		if *h.Retries > 1000 {
			out.Retries = 1001 // refused by release validation
		} else {
			out.Retries = int(*h.Retries)
		}
	}
	return out
}

// decodeHealth reads x-ota-health: the fields of release.ContainerHealth with
// durations as strings ("2s").
func decodeHealth(v any) (*release.ContainerHealth, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("x-ota-health: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var h release.ContainerHealth
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("x-ota-health: %w", err)
	}
	return &h, nil
}

func stringList(v any, what string) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a list of names, got %T", what, v)
	}
	var out []string
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s: want a list of names, got an element of type %T", what, e)
		}
		out = append(out, s)
	}
	return out, nil
}
