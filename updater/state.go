package updater

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/healthguard/gateway-ota/rpi/atomicfile"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater/release"
)

// Phases of the journal.
const (
	PhaseIdle        = "idle"
	PhaseDownloading = "downloading"
	PhaseWriting     = "writing"
	PhaseArmed       = "armed"        // trial armed; the next boot is the trial
	PhaseRollingBack = "rolling-back" // health checks failed; rebooting to the committed slot
	PhaseCommitted   = "committed"
	PhaseRolledBack  = "rolled-back"
	PhaseFailed      = "failed" // the install failed before anything was armed
)

// stateSchema is the version of the state file format.
const stateSchema = 1

// maxStateFile bounds the state file.
const maxStateFile = 1 << 20

// State is the journal of the updater on the data partition.
type State struct {
	Schema int `json:"schema"`
	// Phase of the current or last update.
	Phase string `json:"phase"`
	// Version and Counter of the release being installed or last installed.
	Version string `json:"version,omitempty"`
	Counter uint64 `json:"counter,omitempty"`
	// From is the version that ran when the update started.
	From string `json:"from,omitempty"`
	// Target is the slot the release was written to.
	Target sdcard.Slot `json:"target,omitempty"`
	// Error says why the last update failed or rolled back.
	Error string `json:"error,omitempty"`
	// Manifest is the verified manifest of the release in Target, kept for
	// the trial boot's health checks.
	Manifest *release.Manifest `json:"manifest,omitempty"`
	// Floor is the lowest release counter still accepted (anti-rollback),
	// raised only when a release is committed.
	Floor uint64 `json:"floor"`
	// Failed lists versions whose trial failed or that cannot be installed
	// on this device (ErrIncompatible), with the reason; the daemon
	// does not retry them (an explicit update does).
	Failed map[string]string `json:"failed,omitempty"`
	// Updated is when the state last changed.
	Updated time.Time `json:"updated"`
	// ReportSeq is the last sequence number of a signed report.
	ReportSeq uint64 `json:"report_seq,omitempty"`
	// LastCheck is when the updater last checked for a release.
	LastCheck time.Time `json:"last_check,omitempty"`
}

func loadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Schema: stateSchema, Phase: PhaseIdle}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("state file %s: %d bytes, more than %d", path, len(b), maxStateFile)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if s.Schema != stateSchema {
		return nil, fmt.Errorf("state file %s: schema %d, this updater knows %d", path, s.Schema, stateSchema)
	}
	return &s, nil
}

func saveState(path string, s *State) error {
	s.Schema = stateSchema
	s.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}
