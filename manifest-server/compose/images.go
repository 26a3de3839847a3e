package compose

import (
	"fmt"
	"strings"

	"github.com/healthguard/gateway-ota/updater/release"
)

// FromImages is the container set of bare image references (the --docker-image
// flags): one service per image, named by ServiceName, restart unless-stopped, no
// health check beyond "running". Images are returned as written (not yet pinned).
func FromImages(refs []string) (*release.ContainerSet, error) {
	set := &release.ContainerSet{}
	seen := map[string]bool{}
	for _, img := range refs {
		n := ServiceName(img)
		if n == "" || seen[n] {
			return nil, fmt.Errorf("image %q: no distinct service name from its repository", img)
		}
		seen[n] = true
		set.Services = append(set.Services, release.Service{Name: n, Image: img, Restart: release.RestartUnlessStopped})
	}
	return set, nil
}

// ServiceName derives a service name from an image reference: the last element of
// its repository, lowercased, bytes outside [a-z0-9_-] replaced by "-"
// ("healthguard/mqtt-bridge:1.2.0" -> "mqtt-bridge").
func ServiceName(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	ref = ref[strings.LastIndexByte(ref, '/')+1:]
	var b strings.Builder
	for _, c := range strings.ToLower(ref) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.TrimLeft(b.String(), "-_")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}
