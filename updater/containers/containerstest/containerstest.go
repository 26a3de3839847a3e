// Package containerstest builds the images and the registry the container
// tests and the downtime benchmark run against the real Docker engine:
// images FROM scratch around the small static HTTP service in
// updater/containers/testdata/svc, pushed to the project's OCI registry on
// the loopback (which the engine treats as insecure, so no TLS is needed).
// Nothing is pulled from outside.
//
// Everything it creates carries the label LabelTest=<id>; Cleanup removes
// what carries it.
package containerstest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/healthguard/gateway-ota/manifest-server/registry"
	"github.com/moby/moby/client"
)

// LabelTest marks every container, image, volume and network a test made.
const LabelTest = "com.healthguard.ota.test"

// SocketPath is the engine socket the tests need.
const SocketPath = "/var/run/docker.sock"

// Available says why the engine cannot be used, or "" when it can.
func Available() string {
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat(SocketPath); err != nil {
			return "no Docker engine: " + SocketPath + " is absent and DOCKER_HOST is unset"
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		return "the go tool is needed to build the test service: " + err.Error()
	}
	return ""
}

// Client connects to the engine named by DOCKER_HOST, else the default
// socket, negotiating the API version.
func Client() (*client.Client, error) {
	return client.New(client.FromEnv, client.WithAPIVersionNegotiation())
}

var (
	buildOnce sync.Once
	binary    []byte
	buildErr  error
)

// ServiceBinary builds the test service (static, CGO off) once per process.
func ServiceBinary() ([]byte, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ota-svc-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "testdata", "svc")
		out := filepath.Join(dir, "svc")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build test service: %v\n%s", err, b)
			return
		}
		binary, buildErr = os.ReadFile(out)
	})
	return binary, buildErr
}

// Image describes one test image.
type Image struct {
	// Tag is the local tag, such as "127.0.0.1:5000/svc:1".
	Tag string
	// Env is baked into the image (VERSION, UNHEALTHY, ...).
	Env map[string]string
	// HealthCheck adds a HEALTHCHECK running "svc probe" every second.
	HealthCheck bool
	// Test is the LabelTest value.
	Test string
}

// Build builds img with the engine: FROM scratch, the service binary as
// /svc, the environment and labels.
func Build(ctx context.Context, cli *client.Client, img Image) error {
	bin, err := ServiceBinary()
	if err != nil {
		return err
	}
	var df strings.Builder
	df.WriteString("FROM scratch\nCOPY svc /svc\n")
	keys := make([]string, 0, len(img.Env))
	for k := range img.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&df, "ENV %s=%q\n", k, img.Env[k])
	}
	fmt.Fprintf(&df, "LABEL %s=%q\n", LabelTest, img.Test)
	if img.HealthCheck {
		df.WriteString("HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD [\"/svc\", \"probe\"]\n")
	}
	df.WriteString("EXPOSE 8080\nENTRYPOINT [\"/svc\"]\n")
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(df.String())}, {"svc", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := cli.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{Tags: []string{img.Tag}, Remove: true, ForceRemove: true})
	if err != nil {
		return fmt.Errorf("build %s: %w", img.Tag, err)
	}
	defer res.Body.Close()
	return readStream(res.Body)
}

// readStream drains a JSON message stream of the engine and returns the
// first error it reports.
func readStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
	}
}

// Push pushes a local tag to its registry and returns the pinned reference
// "<name>@sha256:<hex>" of what the registry now holds.
func Push(ctx context.Context, cli *client.Client, tag string) (string, error) {
	res, err := cli.ImagePush(ctx, tag, client.ImagePushOptions{RegistryAuth: "e30="})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", tag, err)
	}
	var digest string
	dec := json.NewDecoder(res)
	for {
		var m struct {
			Error string `json:"error"`
			Aux   struct {
				Digest string `json:"Digest"`
			} `json:"aux"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			res.Close()
			return "", err
		}
		if m.Error != "" {
			res.Close()
			return "", fmt.Errorf("push %s: %s", tag, m.Error)
		}
		if m.Aux.Digest != "" {
			digest = m.Aux.Digest
		}
	}
	res.Close()
	if digest == "" {
		return "", fmt.Errorf("push %s: the engine reported no digest", tag)
	}
	name := tag
	if i := strings.LastIndexByte(tag, ':'); i > strings.LastIndexByte(tag, '/') {
		name = tag[:i]
	}
	return name + "@" + digest, nil
}

// Registry is an OCI distribution registry on the loopback.
type Registry struct {
	// Host is "127.0.0.1:<port>", the registry part of image references.
	Host string
	// Tamper, when set, may replace a response: it is called for every
	// request before the registry sees it and returns true if it answered.
	Tamper func(w http.ResponseWriter, r *http.Request) bool

	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	down bool
}

// StartRegistry starts the project's registry (manifest-server/registry),
// storing into dir, on a loopback port.
func StartRegistry(dir string) (*Registry, error) {
	h, err := registry.New(dir, registry.Options{Logf: func(string, ...any) {}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String(), ln: ln}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		down, tamper := r.down, r.Tamper
		r.mu.Unlock()
		if down {
			http.Error(w, "registry down", http.StatusServiceUnavailable)
			return
		}
		if tamper != nil && tamper(w, req) {
			return
		}
		h.ServeHTTP(w, req)
	})}
	go r.srv.Serve(ln)
	return r, nil
}

// SetDown makes every request fail with 503 (true) or serves again.
func (r *Registry) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// SetTamper installs or removes a tampering hook.
func (r *Registry) SetTamper(f func(w http.ResponseWriter, r *http.Request) bool) {
	r.mu.Lock()
	r.Tamper = f
	r.mu.Unlock()
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// Cleanup removes the containers, images, volumes and networks labelled
// LabelTest=test, and those named in extra (images by reference).
func Cleanup(ctx context.Context, cli *client.Client, test string, images ...string) {
	f := make(client.Filters).Add("label", LabelTest+"="+test)
	if cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs.Items {
			cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range vs.Items {
			cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
		}
	}
	if ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range ns.Items {
			cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
	for _, ref := range images {
		cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}
	if is, err := cli.ImageList(ctx, client.ImageListOptions{All: true, Filters: f}); err == nil {
		for _, im := range is.Items {
			cli.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}
}
