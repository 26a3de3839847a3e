package release

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const (
	hashA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hashB = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// sample is a manifest that passes Validate and exercises every field.
func sample() *Manifest {
	return &Manifest{
		Schema:     SchemaVersion,
		Version:    "2.1.0",
		Counter:    21,
		Channel:    "stable",
		Compatible: "rpi4",
		Created:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Rootfs:     Image{Size: 3 << 30, SHA256: hashA},
		Boot:       Image{Size: 256 << 20, SHA256: hashB},
		Payloads: []Payload{
			{Kind: KindFull, Target: PayloadPath("2.1.0", "rootfs.ext4.xz"), Codec: CodecXZ, Size: 900 << 20, SHA256: hashA, For: ForRootfs},
			{Kind: KindFull, Target: PayloadPath("2.1.0", "boot.vfat.xz"), Codec: CodecXZ, Size: 30 << 20, SHA256: hashB, For: ForBoot},
			{Kind: KindDelta, Target: PayloadPath("2.1.0", "rootfs-from-2.0.0.delta.xz"), Codec: CodecXZ, Size: 10 << 20, SHA256: hashB, For: ForRootfs, From: "2.0.0", FromSHA256: hashB},
		},
		HealthChecks: []HealthCheck{
			{Kind: CheckHTTP, Name: "api", URL: "http://127.0.0.1:8080/healthz", Expect: 204, Timeout: Duration(3 * time.Second)},
			{Kind: CheckTCP, Address: "127.0.0.1:1883"},
			{Kind: CheckCommand, Command: []string{"/usr/bin/test", "-e", "/run/app.ready"}},
			{Kind: CheckSystemd, Unit: "app.service"},
		},
		HealthDeadline: Duration(2 * time.Minute),
		Containers: &ContainerSet{Services: []Service{
			{Name: "app", Image: "registry.example.com/app@sha256:" + hashA},
			{
				Name:    "mqtt-bridge",
				Image:   "127.0.0.1:5000/healthguard/mqtt-bridge:1.2.0@sha256:" + hashB,
				Command: []string{"/bridge", "--listen", ":8080"},
				Env:     map[string]string{"LOG_LEVEL": "debug", "BROKER": "tcp://127.0.0.1:1883"},
				Ports: []Port{
					{Host: 8080, Container: 8080, Protocol: "tcp", HostIP: "127.0.0.1"},
					{Host: 5683, Container: 5683, Protocol: "udp"},
				},
				Volumes: []Volume{
					{Source: "bridge-state", Target: "/var/lib/bridge", Backup: true},
					{Source: "/etc/ssl/certs", Target: "/etc/ssl/certs", ReadOnly: true},
				},
				Restart: RestartUnlessStopped,
				Health: &ContainerHealth{Kind: ContainerHealthHTTP, URL: "http://127.0.0.1:8080/healthz",
					Interval: Duration(2 * time.Second), Timeout: Duration(time.Second), StartPeriod: Duration(5 * time.Second), Retries: 3},
				StopTimeout: Duration(20 * time.Second),
			},
		}},
	}
}

// sampleContainerOnly is a container-only release that passes Validate.
func sampleContainerOnly() *Manifest {
	return &Manifest{
		Schema:     SchemaVersion,
		Version:    "2.1.1",
		Counter:    22,
		Channel:    "stable",
		Compatible: "rpi4",
		Created:    time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC),
		Containers: &ContainerSet{
			Strategy: StrategyHandOver,
			Services: []Service{
				{Name: "app", Image: "registry.example.com/app:2@sha256:" + hashA, HandOver: true,
					Health: &ContainerHealth{Kind: ContainerHealthDocker}},
				{Name: "db", Image: "registry.example.com/db@sha256:" + hashB,
					Health: &ContainerHealth{Kind: ContainerHealthExec, Command: []string{"/bin/check"}}},
				{Name: "mqtt", Image: "mqtt@sha256:" + hashB,
					Health: &ContainerHealth{Kind: ContainerHealthTCP, Address: "127.0.0.1:1883"}},
			},
		},
		MinOSCounter: 21,
	}
}

func TestMarshalGolden(t *testing.T) {
	for _, tt := range []struct {
		golden string
		sample func() *Manifest
	}{
		{"release.golden.json", sample},
		{"container-only.golden.json", sampleContainerOnly},
	} {
		t.Run(tt.golden, func(t *testing.T) { testGolden(t, tt.golden, tt.sample) })
	}
}

func testGolden(t *testing.T, name string, sample func() *Manifest) {
	got, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Marshal differs from %s (run with -update to accept):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
	m, err := ParseManifest(want)
	if err != nil {
		t.Fatalf("ParseManifest(golden): %v", err)
	}
	if !reflect.DeepEqual(m, sample()) {
		t.Errorf("round trip: got %+v, want %+v", m, sample())
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *Manifest)
	}{
		{"schema 0", func(m *Manifest) { m.Schema = 0 }},
		{"schema 2", func(m *Manifest) { m.Schema = 2 }},
		{"empty version", func(m *Manifest) { m.Version = "" }},
		{"version dotdot", func(m *Manifest) { m.Version = ".." }},
		{"version slash", func(m *Manifest) { m.Version = "1/2" }},
		{"version NUL", func(m *Manifest) { m.Version = "1\x00" }},
		{"version leading dot", func(m *Manifest) { m.Version = ".hidden" }},
		{"counter 0", func(m *Manifest) { m.Counter = 0 }},
		{"empty channel", func(m *Manifest) { m.Channel = "" }},
		{"channel upper", func(m *Manifest) { m.Channel = "Stable" }},
		{"compatible empty", func(m *Manifest) { m.Compatible = "" }},
		{"compatible space", func(m *Manifest) { m.Compatible = "rpi 4" }},
		{"created zero", func(m *Manifest) { m.Created = time.Time{} }},
		{"rootfs size 0", func(m *Manifest) { m.Rootfs.Size = 0 }},
		{"rootfs size negative", func(m *Manifest) { m.Rootfs.Size = -1 }},
		{"rootfs hash upper", func(m *Manifest) { m.Rootfs.SHA256 = strings.ToUpper(hashA) }},
		{"boot hash short", func(m *Manifest) { m.Boot.SHA256 = hashA[:63] }},
		{"no payloads", func(m *Manifest) { m.Payloads = nil }},
		{"no full boot", func(m *Manifest) { m.Payloads = m.Payloads[:1] }},
		{"payload traversal", func(m *Manifest) { m.Payloads[0].Target = "../../etc/shadow" }},
		{"payload absolute", func(m *Manifest) { m.Payloads[0].Target = "/etc/shadow" }},
		{"payload empty element", func(m *Manifest) { m.Payloads[0].Target = "releases//x" }},
		{"payload NUL", func(m *Manifest) { m.Payloads[0].Target = "releases/x\x00" }},
		{"payload backslash", func(m *Manifest) { m.Payloads[0].Target = `releases\x` }},
		{"payload codec", func(m *Manifest) { m.Payloads[0].Codec = "zstd" }},
		{"payload size 0", func(m *Manifest) { m.Payloads[0].Size = 0 }},
		{"payload kind", func(m *Manifest) { m.Payloads[0].Kind = "patch" }},
		{"payload for", func(m *Manifest) { m.Payloads[0].For = "data" }},
		{"full with base", func(m *Manifest) { m.Payloads[0].From = "1.0" }},
		{"delta without base hash", func(m *Manifest) { m.Payloads[2].FromSHA256 = "" }},
		{"delta from itself", func(m *Manifest) { m.Payloads[2].From = m.Version }},
		{"duplicate target", func(m *Manifest) { m.Payloads[1].Target = m.Payloads[0].Target }},
		{"checks without deadline", func(m *Manifest) { m.HealthDeadline = 0 }},
		{"deadline too long", func(m *Manifest) { m.HealthDeadline = Duration(2 * time.Hour) }},
		{"timeout over deadline", func(m *Manifest) { m.HealthChecks[0].Timeout = Duration(3 * time.Minute) }},
		{"http bad scheme", func(m *Manifest) { m.HealthChecks[0].URL = "file:///etc/passwd" }},
		{"http bad status", func(m *Manifest) { m.HealthChecks[0].Expect = 99 }},
		{"http with unit", func(m *Manifest) { m.HealthChecks[0].Unit = "x.service" }},
		{"tcp no port", func(m *Manifest) { m.HealthChecks[1].Address = "127.0.0.1" }},
		{"tcp port 0", func(m *Manifest) { m.HealthChecks[1].Address = "127.0.0.1:0" }},
		{"command empty", func(m *Manifest) { m.HealthChecks[2].Command = []string{} }},
		{"command NUL", func(m *Manifest) { m.HealthChecks[2].Command = []string{"/bin/true\x00"} }},
		{"unit option", func(m *Manifest) { m.HealthChecks[3].Unit = "--root=/" }},
		{"unit no suffix", func(m *Manifest) { m.HealthChecks[3].Unit = "app" }},
		{"kind unknown", func(m *Manifest) { m.HealthChecks[3].Kind = "ping" }},
		{"image by tag", func(m *Manifest) { m.Containers.Services[0].Image = "registry.example.com/app:latest" }},
		{"image short digest", func(m *Manifest) { m.Containers.Services[0].Image = "app@sha256:abc" }},
		{"service twice", func(m *Manifest) {
			m.Containers.Services = append(m.Containers.Services, m.Containers.Services[0])
		}},
		{"image space", func(m *Manifest) { m.Containers.Services[0].Image = "app x@sha256:" + hashA }},
		{"image option", func(m *Manifest) { m.Containers.Services[0].Image = "-app@sha256:" + hashA }},
		{"image no name", func(m *Manifest) { m.Containers.Services[0].Image = "@sha256:" + hashA }},
		{"service name upper", func(m *Manifest) { m.Containers.Services[0].Name = "App" }},
		{"strategy unknown", func(m *Manifest) { m.Containers.Strategy = "yolo" }},
		{"hand over without strategy", func(m *Manifest) { m.Containers.Services[1].HandOver = true }},
		{"command empty", func(m *Manifest) { m.Containers.Services[1].Command = []string{} }},
		{"command NUL", func(m *Manifest) { m.Containers.Services[1].Command = []string{"a\x00"} }},
		{"env empty", func(m *Manifest) { m.Containers.Services[1].Env = map[string]string{} }},
		{"env key equals", func(m *Manifest) { m.Containers.Services[1].Env["A=B"] = "x" }},
		{"env key digit", func(m *Manifest) { m.Containers.Services[1].Env["1A"] = "x" }},
		{"env key empty", func(m *Manifest) { m.Containers.Services[1].Env[""] = "x" }},
		{"env value NUL", func(m *Manifest) { m.Containers.Services[1].Env["A"] = "\x00" }},
		{"port 0", func(m *Manifest) { m.Containers.Services[1].Ports[0].Host = 0 }},
		{"port too high", func(m *Manifest) { m.Containers.Services[1].Ports[0].Container = 65536 }},
		{"port protocol", func(m *Manifest) { m.Containers.Services[1].Ports[0].Protocol = "sctp" }},
		{"port host ip", func(m *Manifest) { m.Containers.Services[1].Ports[0].HostIP = "localhost" }},
		{"ports empty", func(m *Manifest) { m.Containers.Services[1].Ports = []Port{} }},
		{"volume target relative", func(m *Manifest) { m.Containers.Services[1].Volumes[0].Target = "data" }},
		{"volume target unclean", func(m *Manifest) { m.Containers.Services[1].Volumes[0].Target = "/data/../etc" }},
		{"volume target root", func(m *Manifest) { m.Containers.Services[1].Volumes[0].Target = "/" }},
		{"volume source dotdot", func(m *Manifest) { m.Containers.Services[1].Volumes[0].Source = "../etc" }},
		{"volume source unclean", func(m *Manifest) { m.Containers.Services[1].Volumes[1].Source = "/etc//ssl" }},
		{"volume source underscore first", func(m *Manifest) { m.Containers.Services[1].Volumes[0].Source = "_x" }},
		{"volume source empty", func(m *Manifest) { m.Containers.Services[1].Volumes[0].Source = "" }},
		{"volume target twice", func(m *Manifest) {
			m.Containers.Services[1].Volumes[1].Target = m.Containers.Services[1].Volumes[0].Target
		}},
		{"restart unknown", func(m *Manifest) { m.Containers.Services[1].Restart = "sometimes" }},
		{"stop timeout negative", func(m *Manifest) { m.Containers.Services[1].StopTimeout = Duration(-time.Second) }},
		{"stop timeout huge", func(m *Manifest) { m.Containers.Services[1].StopTimeout = Duration(time.Hour) }},
		{"health kind", func(m *Manifest) { m.Containers.Services[1].Health.Kind = "ping" }},
		{"health http scheme", func(m *Manifest) { m.Containers.Services[1].Health.URL = "ftp://x/" }},
		{"health http with command", func(m *Manifest) { m.Containers.Services[1].Health.Command = []string{"x"} }},
		{"health retries", func(m *Manifest) { m.Containers.Services[1].Health.Retries = -1 }},
		{"health interval", func(m *Manifest) { m.Containers.Services[1].Health.Interval = Duration(-1) }},
		{"health tcp", func(m *Manifest) {
			m.Containers.Services[1].Health = &ContainerHealth{Kind: ContainerHealthTCP, Address: "x"}
		}},
		{"health exec empty", func(m *Manifest) {
			m.Containers.Services[1].Health = &ContainerHealth{Kind: ContainerHealthExec}
		}},
		{"health docker test", func(m *Manifest) {
			m.Containers.Services[1].Health = &ContainerHealth{Kind: ContainerHealthDocker, Command: []string{"curl"}}
		}},
		{"min os counter on OS release", func(m *Manifest) { m.MinOSCounter = 1 }},
		{"images payload without containers", func(m *Manifest) {
			m.Containers = nil
			m.Payloads = append(m.Payloads, imagesPayload())
		}},
		{"images payload twice", func(m *Manifest) {
			p := imagesPayload()
			p.Target += "2"
			m.Payloads = append(m.Payloads, imagesPayload(), p)
		}},
		{"images kind for rootfs", func(m *Manifest) {
			p := imagesPayload()
			p.For = ForRootfs
			m.Payloads = append(m.Payloads, p)
		}},
		{"images with base", func(m *Manifest) {
			p := imagesPayload()
			p.From, p.FromSHA256 = "2.0.0", hashA
			m.Payloads = append(m.Payloads, p)
		}},
		{"neither images nor containers", func(m *Manifest) {
			m.Rootfs, m.Boot, m.Payloads, m.Containers = Image{}, Image{}, nil, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sample()
			tt.mutate(m)
			err := m.Validate()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate() = %v, want an error wrapping ErrInvalid", err)
			}
			if _, err := m.Marshal(); err == nil {
				t.Errorf("Marshal accepted an invalid manifest")
			}
		})
	}
}

func imagesPayload() Payload {
	return Payload{Kind: KindImages, Target: PayloadPath("2.1.0", ImagesPayloadName), Codec: CodecXZ, Size: 1 << 20, SHA256: hashA, For: ForImages}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m *Manifest)
	}{
		{"images payload", func(m *Manifest) { m.Payloads = append(m.Payloads, imagesPayload()) }},
		{"OS release without containers", func(m *Manifest) { m.Containers = nil }},
		{"docker test override", func(m *Manifest) {
			m.Containers.Services[1].Health = &ContainerHealth{Kind: ContainerHealthDocker, Command: []string{"CMD-SHELL", "curl -f localhost"}}
		}},
		{"ipv6 host ip", func(m *Manifest) { m.Containers.Services[1].Ports[0].HostIP = "::1" }},
		{"empty protocol", func(m *Manifest) { m.Containers.Services[1].Ports[0].Protocol = "" }},
		{"kill-then-download", func(m *Manifest) { m.Containers.Strategy = StrategyKillThenDownload }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sample()
			tt.mutate(m)
			if err := m.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestContainerOnly(t *testing.T) {
	if sample().ContainerOnly() {
		t.Errorf("OS release reports ContainerOnly")
	}
	m := sampleContainerOnly()
	if !m.ContainerOnly() {
		t.Fatalf("container-only release does not report ContainerOnly")
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"rootfs"`, `"boot"`, `"payloads"`} {
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("container-only manifest mentions %s:\n%s", key, b)
		}
	}
	tests := []struct {
		name   string
		mutate func(m *Manifest)
	}{
		{"no services", func(m *Manifest) { m.Containers.Services = nil }},
		{"boot image", func(m *Manifest) { m.Boot = Image{Size: 1, SHA256: hashA} }},
		{"rootfs hash only", func(m *Manifest) { m.Rootfs.SHA256 = hashA }},
		{"empty payload list", func(m *Manifest) { m.Payloads = []Payload{} }},
		{"min os counter not below counter", func(m *Manifest) { m.MinOSCounter = m.Counter }},
		{"hand over with other strategy", func(m *Manifest) { m.Containers.Strategy = StrategyDownloadThenKill }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sampleContainerOnly()
			tt.mutate(m)
			if err := m.Validate(); !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestImageDigest(t *testing.T) {
	const d = "sha256:" + hashA
	tests := []struct {
		ref, name, tag string
		ok             bool
	}{
		{"app@" + d, "app", "app:sha256-" + hashA, true},
		{"127.0.0.1:5000/a/b:1.2.0@" + d, "127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:sha256-" + hashA, true},
		{"127.0.0.1:5000/a/b@" + d, "127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:sha256-" + hashA, true},
		{"app:1.0", "", "", false},
		{"app@sha256:abc", "", "", false},
	}
	for _, tt := range tests {
		name, digest, ok := ImageDigest(tt.ref)
		if name != tt.name || ok != tt.ok || (ok && digest != d) {
			t.Errorf("ImageDigest(%q) = %q, %q, %v; want %q, %q, %v", tt.ref, name, digest, ok, tt.name, d, tt.ok)
		}
		if tag, _ := ImagesTag(tt.ref); tag != tt.tag {
			t.Errorf("ImagesTag(%q) = %q, want %q", tt.ref, tag, tt.tag)
		}
	}
}

func TestParseManifestRejectsEncoding(t *testing.T) {
	good, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"unknown field", bytes.Replace(good, []byte(`"schema": 1,`), []byte(`"schema": 1, "hooks": ["rm -rf /"],`), 1)},
		{"trailing data", append(append([]byte{}, good...), []byte("{}")...)},
		{"negative counter", bytes.Replace(good, []byte(`"counter": 21`), []byte(`"counter": -1`), 1)},
		{"duration number", bytes.Replace(good, []byte(`"health_deadline": "2m0s"`), []byte(`"health_deadline": 120`), 1)},
		{"oversize", append(append([]byte{}, good...), bytes.Repeat([]byte(" "), MaxManifestSize)...)},
		{"empty", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.data, good) {
				t.Fatal("test case did not change the document")
			}
			if _, err := ParseManifest(tt.data); !errors.Is(err, ErrInvalid) {
				t.Errorf("ParseManifest = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestValidTargetPath(t *testing.T) {
	for _, p := range []string{"releases/1.0/release.json", "a", "releases/v2_0-rc.1/rootfs.ext4.xz"} {
		if err := ValidTargetPath(p); err != nil {
			t.Errorf("ValidTargetPath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "/abs", "../x", "a/../b", "a/./b", "a/", ".git/config", "a b", "a\x00b", "ä", strings.Repeat("a/", 200) + "a"} {
		if err := ValidTargetPath(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidTargetPath(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

func TestSummary(t *testing.T) {
	m := sample()
	b, err := m.Summary().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"version":"2.1.0","counter":21,"channel":"stable","compatible":"rpi4"}`; got != want {
		t.Errorf("summary = %s, want %s", got, want)
	}
	s, err := ParseSummary(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Matches(m); err != nil {
		t.Errorf("Matches(own manifest) = %v", err)
	}
	m.Counter++
	if err := s.Matches(m); !errors.Is(err, ErrInvalid) {
		t.Errorf("Matches(counter changed) = %v, want ErrInvalid", err)
	}
	if _, err := ParseSummary([]byte(`{"version":"1","counter":0,"channel":"s","compatible":"rpi4"}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseSummary(counter 0) = %v, want ErrInvalid", err)
	}
}

func TestPayloadLookup(t *testing.T) {
	m := sample()
	p, ok := m.FullPayload(ForBoot)
	if !ok || p.Target != "releases/2.1.0/boot.vfat.xz" {
		t.Errorf("FullPayload(boot) = %+v, %v", p, ok)
	}
	if p, ok := m.DeltaPayload(ForRootfs, hashB); !ok || p.From != "2.0.0" {
		t.Errorf("DeltaPayload(rootfs, base) = %+v, %v", p, ok)
	}
	if _, ok := m.DeltaPayload(ForRootfs, hashA); ok {
		t.Errorf("DeltaPayload found a delta for an unknown base")
	}
}

// FuzzParseManifest: whatever ParseManifest accepts is valid and survives a
// Marshal/ParseManifest round trip unchanged. Seeds live in testdata/fuzz.
func FuzzParseManifest(f *testing.F) {
	good, err := sample().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	co, err := sampleContainerOnly().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(co)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("ParseManifest returned an invalid manifest: %v", err)
		}
		for _, p := range m.Payloads {
			if !filepath.IsLocal(p.Target) {
				t.Fatalf("non-local target %q accepted", p.Target)
			}
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, m2)
		}
	})
}
