package updater

import (
	"context"
	"fmt"
	"time"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// CheckResult says whether a newer release is available.
type CheckResult struct {
	Current        string `json:"current"`
	CurrentCounter uint64 `json:"current_counter"`
	Floor          uint64 `json:"floor"`
	Compatible     string `json:"compatible"`
	Channel        string `json:"channel"`
	Available      bool   `json:"available"`
	Version        string `json:"version,omitempty"`
	Counter        uint64 `json:"counter,omitempty"`
	// PreviouslyFailed is the reason the available release's trial failed
	// before, if it did.
	PreviouslyFailed string `json:"previously_failed,omitempty"`
}

// Check refreshes the signed metadata and says whether a release newer than
// the running one is available for this board and channel. It returns the
// result with ErrNoUpdate when there is none.
func (u *Updater) Check(ctx context.Context) (*CheckResult, error) {
	if u.cfg.Server == "" {
		return nil, ErrNoServer
	}
	st, err := u.boot.Status()
	if err != nil {
		return nil, err
	}
	s, err := loadState(u.statePath())
	if err != nil {
		return nil, err
	}
	tc := u.trustClient()
	cand, res, err := u.choose(ctx, tc, st, s, "")
	if err != nil {
		return res, err
	}
	res.Available, res.Version, res.Counter = true, cand.Version, cand.Counter
	res.PreviouslyFailed = s.Failed[cand.Version]
	u.recordCheck()
	return res, nil
}

// recordCheck notes the time of the check in the journal. It is written
// under the lock into the journal as it is then: an update running beside
// this check owns the journal, and its phase must not be overwritten with
// the copy read before (the check is then simply not recorded).
func (u *Updater) recordCheck() {
	unlock, err := u.lock()
	if err != nil {
		return
	}
	defer unlock()
	s, err := loadState(u.statePath())
	if err != nil {
		return
	}
	s.LastCheck = time.Now().UTC()
	if err := saveState(u.statePath(), s); err != nil {
		u.cfg.Logf("save state: %v", err)
	}
}

// choose refreshes the metadata and picks the release to install: the one
// named, or the newest for this board and channel. It refuses releases at
// or below the running counter or below the floor (S5).
func (u *Updater) choose(ctx context.Context, tc *trust.Client, st *bootctl.Status, s *State, version string) (trust.Release, *CheckResult, error) {
	cur := st.Slot(st.Booted)
	res := &CheckResult{Current: cur.Version, CurrentCounter: cur.Counter, Floor: s.Floor, Compatible: u.compatible(st), Channel: u.cfg.Channel}
	if res.Compatible == "" {
		return trust.Release{}, res, fmt.Errorf("board id unknown: set compatible in the config: %w", ErrIncompatible)
	}
	if _, err := tc.Refresh(ctx); err != nil {
		return trust.Release{}, res, err
	}
	var cand trust.Release
	found := false
	if version == "" {
		cand, found = tc.Latest(res.Compatible, u.cfg.Channel)
	} else {
		for _, r := range tc.Releases() {
			if r.Version == version {
				cand, found = r, true
			}
		}
		if !found {
			return cand, res, fmt.Errorf("release %s is not among the signed releases: %w", version, ErrNoUpdate)
		}
		if cand.Compatible != res.Compatible {
			return cand, res, fmt.Errorf("release %s is for board %q, this is %q: %w", version, cand.Compatible, res.Compatible, ErrIncompatible)
		}
	}
	if !found {
		return cand, res, ErrNoUpdate
	}
	floor := max(s.Floor, cur.Counter)
	if cand.Counter < s.Floor {
		if version == "" {
			// The newest release of the channel is older than what ran
			// here (a channel change): nothing to install, not a fault.
			return cand, res, fmt.Errorf("the newest release %s has counter %d, below the floor %d: %w", cand.Version, cand.Counter, s.Floor, ErrNoUpdate)
		}
		return cand, res, fmt.Errorf("release %s has counter %d, below the floor %d: %w", cand.Version, cand.Counter, s.Floor, ErrRollback)
	}
	if cand.Counter <= floor {
		if version != "" {
			return cand, res, fmt.Errorf("release %s (counter %d) is not newer than the running %s (counter %d): %w", cand.Version, cand.Counter, cur.Version, cur.Counter, ErrRollback)
		}
		return cand, res, ErrNoUpdate
	}
	return cand, res, nil
}
