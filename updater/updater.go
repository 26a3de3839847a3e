package updater

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/healthguard/gateway-ota/bootctl"
	"github.com/healthguard/gateway-ota/manifest-server/report"
	"github.com/healthguard/gateway-ota/rpi"
	"github.com/healthguard/gateway-ota/rpi/sdcard"
	"github.com/healthguard/gateway-ota/updater/trust"
)

// Errors a caller decides on; the command maps them to exit codes.
var (
	// ErrNoUpdate: nothing newer to install. Sleep.
	ErrNoUpdate = errors.New("no update available")
	// ErrIncompatible: the release is for another board or the card cannot
	// hold it. Report; do not retry this release.
	ErrIncompatible = errors.New("release incompatible with this device")
	// ErrRollback: the release's counter is below the anti-rollback floor
	// or not above the running release's.
	ErrRollback = errors.New("release is older than allowed")
	// ErrBusy: another ota-updater holds the lock.
	ErrBusy = errors.New("another ota-updater is running")
	// ErrTrialPending: a trial boot must be confirmed or rolled back first.
	ErrTrialPending = errors.New("a trial boot is pending confirmation")
)

// Updater is the on-device updater of one device.
type Updater struct {
	cfg   Config
	boot  *bootctl.Controller
	store *trust.Store
	http  *http.Client
	dl    *http.Client // for payloads: no overall timeout, the stall timeout rules
}

// New makes an Updater from cfg.
func New(cfg Config) (*Updater, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Updater{
		cfg:   cfg,
		boot:  &bootctl.Controller{Root: cfg.Root},
		store: &trust.Store{Dir: filepath.Join(cfg.Root, cfg.DataDir, "trust")},
		http:  &http.Client{Timeout: cfg.HTTPTimeout},
		dl:    &http.Client{},
	}, nil
}

func (u *Updater) dataPath(elem ...string) string {
	return filepath.Join(append([]string{u.cfg.Root, u.cfg.DataDir}, elem...)...)
}

func (u *Updater) statePath() string { return u.dataPath("state.json") }

// lock takes the updater's lock on the data partition, so that update,
// confirm and the daemon never run at once.
func (u *Updater) lock() (func(), error) {
	if err := os.MkdirAll(u.dataPath(), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(u.dataPath("lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func (u *Updater) trustClient() *trust.Client {
	return &trust.Client{BaseURL: u.cfg.Server, HTTP: u.http, Store: u.store, Now: u.cfg.Now}
}

// deviceID is the configured id, else the board's serial number, else one
// made from the card's disk id.
func (u *Updater) deviceID(st *bootctl.Status) string {
	if u.cfg.Device != "" {
		return u.cfg.Device
	}
	if b, err := os.ReadFile(filepath.Join(u.cfg.Root, "proc/device-tree/serial-number")); err == nil {
		if s := strings.Trim(string(b), "\x00\n "); s != "" && report.ValidDeviceID(s) == nil {
			return "pi-" + s
		}
	}
	if st != nil {
		if d, err := sdcard.Open(st.Card, false); err == nil {
			defer d.Close()
			return fmt.Sprintf("pi-%08x", d.Table.DiskID)
		}
	}
	return "pi-unknown"
}

// report sends a signed status report; failures are logged, never fatal:
// a device must update whether or not the server hears of it.
func (u *Updater) report(ctx context.Context, s *State, st *bootctl.Status, phase, errText string, progress float64) {
	if u.cfg.Reports == "" {
		return
	}
	key, err := report.LoadOrCreateKey(u.dataPath("device.key"))
	if err != nil {
		u.cfg.Logf("report: %v", err)
		return
	}
	c := &report.Client{URL: u.cfg.Reports, HTTP: u.http, Key: key, Device: u.deviceID(st), Seq: s.ReportSeq}
	r := report.Report{Phase: phase, Error: errText, Progress: progress}
	if st != nil {
		r.Slot = string(st.Booted)
		cur := st.Slot(st.Booted)
		r.Release, r.Counter = cur.Version, cur.Counter
	}
	switch phase {
	case PhaseDownloading, PhaseWriting, PhaseArmed, report.PhaseTrying:
		r.Release, r.Counter = s.Version, s.Counter
	}
	if len(r.Error) > 4000 {
		r.Error = r.Error[:4000]
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.Send(ctx, r); err != nil {
		u.cfg.Logf("report %s: %v", phase, err)
	}
	s.ReportSeq = c.LastSeq()
	if err := saveState(u.statePath(), s); err != nil {
		u.cfg.Logf("save report sequence: %v", err)
	}
}

// compatible is the board id releases must name.
func (u *Updater) compatible(st *bootctl.Status) string {
	if u.cfg.Compatible != "" {
		return u.cfg.Compatible
	}
	if st != nil {
		if c := st.Slot(st.Booted).Compatible; c != "" {
			return c
		}
	}
	if m, err := rpi.ReadModel(u.cfg.Root); err == nil && m.Board != "" {
		return m.Board
	}
	return ""
}
