// Package publishtest holds what the tests of release repositories share:
// go-tuf's reference client, the oracle of what a gateway accepts.
package publishtest

import (
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// ReferenceClient is go-tuf's updater for the repository served at baseURL
// (its metadata/ and targets/ below it), trusting root and keeping what it
// verified in metadataDir (a temporary directory when empty). It has not
// refreshed yet.
func ReferenceClient(t testing.TB, baseURL string, root []byte, metadataDir string) *updater.Updater {
	t.Helper()
	cfg, err := config.New(baseURL+"/metadata/", root)
	if err != nil {
		t.Fatal(err)
	}
	if metadataDir == "" {
		metadataDir = t.TempDir()
	}
	cfg.RemoteTargetsURL = baseURL + "/targets/"
	cfg.LocalMetadataDir = metadataDir
	cfg.LocalTargetsDir = t.TempDir()
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return up
}
