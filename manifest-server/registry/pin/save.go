package pin

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/healthguard/gateway-ota/updater/release"
)

// Save writes the images of pinned references (as Pin returns them) to w as one tar
// in the format of `docker image save`, which the engine's image load reads: the
// embedded images payload of a release (release.KindImages). Each image is fetched
// from its registry by digest, its digest checked, and tagged in the tar as
// release.ImagesTag(ref), so the device finds it after loading.
func (r *Resolver) Save(ctx context.Context, w io.Writer, refs []string) error {
	set := map[name.Tag]v1.Image{}
	for _, ref := range refs {
		tagStr, ok := release.ImagesTag(ref)
		if !ok {
			return fmt.Errorf("save %s: not pinned by digest", ref)
		}
		parsed, err := r.parse(ref)
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		d, ok := parsed.(name.Digest)
		if !ok {
			return fmt.Errorf("save %s: not pinned by digest", ref)
		}
		img, err := remote.Image(d, remote.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		got, err := img.Digest()
		if err != nil {
			return fmt.Errorf("save %s: %w", ref, err)
		}
		if got.String() != d.DigestStr() {
			return fmt.Errorf("save %s: the registry served %s", ref, got)
		}
		tag, err := name.NewTag(tagStr)
		if err != nil {
			return fmt.Errorf("save %s: tag %s: %w", ref, tagStr, err)
		}
		set[tag] = img
	}
	if err := tarball.MultiWrite(set, w); err != nil {
		return fmt.Errorf("save images: %w", err)
	}
	return nil
}
