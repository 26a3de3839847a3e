// Package report is the status report a gateway sends to the manifest
// server, and the small client that sends it.
//
// The model: every gateway holds its own ed25519 key (created on first use
// and kept on its data partition). A report is a JSON document signed over
// its exact bytes; the signature travels in the X-OTA-Signature header as
// "ed25519 <base64 signature>". The server trusts on first use: the first
// report of a device registers the public key it carries, and every later
// report must verify against that key and carry a sequence number above
// the last one the server accepted. A replayed or forged report is refused
// (threat S14).
//
// The package is imported by the on-device updater, so it stays small: the
// standard library only, no database.
package report

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Path is where the server accepts reports, relative to its base URL.
const Path = "/api/v1/reports"

// SignatureHeader carries "ed25519 <base64 signature over the body>".
const SignatureHeader = "X-OTA-Signature"

// MaxBodySize is the largest report body the server reads.
const MaxBodySize = 64 << 10

// Phases a device reports. Phase is an open set: a server stores what it
// gets as long as it is a short lowercase word; these are the ones the
// updater uses.
const (
	PhaseIdle        = "idle"
	PhaseChecking    = "checking"
	PhaseDownloading = "downloading"
	PhaseWriting     = "writing"
	PhaseArmed       = "armed"
	PhaseTrying      = "trying"
	PhaseCommitted   = "committed"
	PhaseRolledBack  = "rolled-back"
	PhaseFailed      = "failed"
)

// Report is one status report of one device.
type Report struct {
	// Device is the device id: 1 to 128 characters of [A-Za-z0-9._:-].
	Device string `json:"device"`
	// Release is the version the device runs (or installs, in the
	// downloading to armed phases).
	Release string `json:"release,omitempty"`
	// Counter is the release counter of Release.
	Counter uint64 `json:"counter,omitempty"`
	// Slot is the slot the device booted: "A", "B" or empty if unknown.
	Slot string `json:"slot,omitempty"`
	// Phase is where the device is in the update cycle (Phase* constants).
	Phase string `json:"phase"`
	// Error says what went wrong, for the failed and rolled-back phases.
	Error string `json:"error,omitempty"`
	// Progress is the fraction done of the current phase, 0 to 1.
	Progress float64 `json:"progress,omitempty"`
	// Seq rises with every report of a device; the server refuses a report
	// whose Seq is not above the last one it accepted.
	Seq uint64 `json:"seq"`
	// Time is the device's clock when it made the report (informative:
	// most Pis have no real-time clock).
	Time time.Time `json:"time"`
	// PublicKey is the device's ed25519 public key. The server needs it on
	// first contact only; later it must equal the registered key.
	PublicKey []byte `json:"public_key,omitempty"`
}

// Limits on the fields of a report.
const (
	maxDeviceLen  = 128
	maxReleaseLen = 128
	maxPhaseLen   = 32
	maxErrorLen   = 4096
)

// ErrInvalid is wrapped by every error Parse and Validate return for a
// report that is well-formed JSON but breaks the schema, and by errors for
// malformed JSON.
var ErrInvalid = errors.New("invalid report")

// Parse decodes and validates one report. Unknown fields are refused, so
// that a typo is not silently dropped; so is anything after the object.
func Parse(body []byte) (Report, error) {
	if len(body) > MaxBodySize {
		return Report{}, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrInvalid, len(body), MaxBodySize)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Report{}, fmt.Errorf("%w: data after the report object", ErrInvalid)
	}
	if err := r.Validate(); err != nil {
		return Report{}, err
	}
	return r, nil
}

// Validate checks the fields of r against the schema.
func (r *Report) Validate() error {
	if err := ValidDeviceID(r.Device); err != nil {
		return err
	}
	if len(r.Release) > maxReleaseLen || !printable(r.Release) {
		return fmt.Errorf("%w: release must be at most %d printable characters", ErrInvalid, maxReleaseLen)
	}
	switch r.Slot {
	case "", "A", "B":
	default:
		return fmt.Errorf("%w: slot %q is not A or B", ErrInvalid, r.Slot)
	}
	if r.Phase == "" || len(r.Phase) > maxPhaseLen || !isPhaseWord(r.Phase) {
		return fmt.Errorf("%w: phase must be 1 to %d characters of a-z and '-'", ErrInvalid, maxPhaseLen)
	}
	if len(r.Error) > maxErrorLen {
		return fmt.Errorf("%w: error longer than %d bytes", ErrInvalid, maxErrorLen)
	}
	if !(r.Progress >= 0 && r.Progress <= 1) { // also refuses NaN
		return fmt.Errorf("%w: progress %v outside 0..1", ErrInvalid, r.Progress)
	}
	if r.Seq == 0 {
		return fmt.Errorf("%w: seq must be above 0", ErrInvalid)
	}
	if r.PublicKey != nil && len(r.PublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key of %d bytes, want %d", ErrInvalid, len(r.PublicKey), ed25519.PublicKeySize)
	}
	return nil
}

// ValidDeviceID checks a device id: 1 to 128 characters of
// [A-Za-z0-9._:-], not starting with '.' or '-'.
func ValidDeviceID(id string) error {
	if id == "" || len(id) > maxDeviceLen {
		return fmt.Errorf("%w: device id must be 1 to %d characters", ErrInvalid, maxDeviceLen)
	}
	if id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("%w: device id %q starts with %q", ErrInvalid, id, id[0])
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return fmt.Errorf("%w: device id %q holds %q", ErrInvalid, id, c)
		}
	}
	return nil
}

func isPhaseWord(s string) bool {
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			return false
		}
	}
	return true
}

// Sign returns the SignatureHeader value for body.
func Sign(key ed25519.PrivateKey, body []byte) string {
	return "ed25519 " + base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))
}

// ErrBadSignature is returned by Verify for a missing, malformed or wrong
// signature.
var ErrBadSignature = errors.New("bad report signature")

// Verify checks a SignatureHeader value against body and a public key.
func Verify(pub ed25519.PublicKey, header string, body []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key of %d bytes", ErrBadSignature, len(pub))
	}
	alg, sig, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || alg != "ed25519" {
		return fmt.Errorf("%w: header must be \"ed25519 <base64>\"", ErrBadSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not %d bytes of base64", ErrBadSignature, ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, body, raw) {
		return fmt.Errorf("%w: does not verify against the device key", ErrBadSignature)
	}
	return nil
}
