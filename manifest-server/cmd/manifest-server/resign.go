package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/healthguard/gateway-ota/imagebuilder/publish"
)

// newResigner returns the func that re-signs metadata/timestamp.json of
// repo with the online timestamp key in keysDir (and renews the snapshot
// if snapshot.key is there too and the snapshot would expire first). The
// keys are checked here, at start, not at the first re-signing hours
// later. publish serialises the writes with an flock, so a release being
// published at the same time is safe.
func newResigner(repo, keysDir string, expiry time.Duration) (func(context.Context) error, error) {
	ks, err := publish.LoadKeys(keysDir)
	if err != nil {
		return nil, fmt.Errorf("timestamp keys: %w", err)
	}
	if ks.Timestamp == nil {
		return nil, errors.New("timestamp keys: no " + publish.TimestampKeyFile + " in " + keysDir)
	}
	r, err := publish.Open(repo, keysDir, publish.Options{TimestampExpiry: expiry})
	if err != nil {
		return nil, fmt.Errorf("open repository for re-signing: %w", err)
	}
	return func(context.Context) error { return r.ResignTimestamp(0) }, nil
}
