package updater

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

// ConfigVersion is the version of the configuration file format.
const ConfigVersion = 1

// Config is what the updater needs to know. The command fills it from
// /etc/ota/updater.yaml, the data partition's ota/updater.yaml, the
// environment and flags; the library reads none of them.
type Config struct {
	// Version of the configuration format; 0 is taken as ConfigVersion.
	Version int `mapstructure:"version"`
	// Root is the device root: "/" on a Pi, a virtual Pi's device directory.
	Root string `mapstructure:"root"`
	// Server is the base URL of the update repository (any static host).
	Server string `mapstructure:"server"`
	// Reports is the base URL of the manifest server that takes device
	// reports; empty sends none.
	Reports string `mapstructure:"reports"`
	// Channel is the release channel to follow; default "stable".
	Channel string `mapstructure:"channel"`
	// Compatible is the board id releases must name; empty means the one
	// of the running slot, else of the board model.
	Compatible string `mapstructure:"compatible"`
	// Device is the device id in reports; empty derives one from the board
	// serial number or the card's disk id.
	Device string `mapstructure:"device"`
	// DataDir is the updater's directory on the data partition, relative
	// to Root; default "data/ota".
	DataDir string `mapstructure:"data_dir"`
	// PollInterval is the daemon's time between checks; default 1h.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// MaxBackoff caps the daemon's wait after failures; default 6h.
	MaxBackoff time.Duration `mapstructure:"max_backoff"`
	// StallTimeout ends a download that receives nothing for this long;
	// default 60s. The download resumes at the next attempt.
	StallTimeout time.Duration `mapstructure:"stall_timeout"`
	// HTTPTimeout bounds metadata requests; default 30s.
	HTTPTimeout time.Duration `mapstructure:"http_timeout"`
	// StopUnits are the systemd units stopped gracefully before the reboot.
	StopUnits []string `mapstructure:"stop_units"`
	// StopTimeout bounds stopping them; default 90s.
	StopTimeout time.Duration `mapstructure:"stop_timeout"`
	// Reboot is how to reboot: "auto" (a virtual Pi if Root is one, else
	// systemd), "systemd", "virtual" or "none" (print and leave it to the
	// caller). Default "auto".
	Reboot string `mapstructure:"reboot"`
	// Containers configures the container layer (containers.go).
	Containers ContainersConfig `mapstructure:"containers"`
	// Now is the clock; nil means time.Now. Metadata expiry is checked
	// against the newest of it and the times the device has seen.
	Now func() time.Time `mapstructure:"-"`
	// Progress receives human progress lines; nil discards them.
	Progress io.Writer `mapstructure:"-"`
	// Logf logs; nil discards.
	Logf func(format string, args ...any) `mapstructure:"-"`
}

// withDefaults returns c with zero values replaced and checks it.
func (c Config) withDefaults() (Config, error) {
	if c.Version == 0 {
		c.Version = ConfigVersion
	}
	if c.Version != ConfigVersion {
		return c, fmt.Errorf("config version %d: this updater reads version %d", c.Version, ConfigVersion)
	}
	if c.Root == "" {
		c.Root = "/"
	}
	if c.Channel == "" {
		c.Channel = "stable"
	}
	if c.DataDir == "" {
		c.DataDir = "data/ota"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PollInterval, time.Hour)
	def(&c.MaxBackoff, 6*time.Hour)
	def(&c.StallTimeout, 60*time.Second)
	def(&c.HTTPTimeout, 30*time.Second)
	def(&c.StopTimeout, 90*time.Second)
	if c.Reboot == "" {
		c.Reboot = "auto"
	}
	switch c.Reboot {
	case "auto", "systemd", "virtual", "none":
	default:
		return c, fmt.Errorf("reboot %q: want auto, systemd, virtual or none", c.Reboot)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	for name, u := range map[string]string{"server": c.Server, "reports": c.Reports} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return c, fmt.Errorf("%s %q: want an http or https URL", name, u)
		}
	}
	return c, nil
}

// ErrNoServer is returned when no repository URL is configured.
var ErrNoServer = errors.New("no update server configured (set server in /etc/ota/updater.yaml, OTA_SERVER or --server)")
