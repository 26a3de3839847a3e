package report

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validJSON() string {
	return `{"device":"gw-0001","release":"2.0.0","counter":2,"slot":"B","phase":"committed","seq":7,"time":"2026-01-02T03:04:05Z"}`
}

func TestParse(t *testing.T) {
	key := make([]byte, ed25519.PublicKeySize)
	keyJSON, _ := json.Marshal(key)
	tests := []struct {
		name    string
		body    string
		wantErr bool
	}{
		{"valid", validJSON(), false},
		{"with key", strings.Replace(validJSON(), `"seq":7`, `"seq":7,"public_key":`+string(keyJSON), 1), false},
		{"progress and error", `{"device":"a","phase":"failed","error":"health check http://x failed","progress":0.5,"seq":1}`, false},
		{"unknown field", strings.Replace(validJSON(), `"seq":7`, `"seq":7,"sqe":8`, 1), true},
		{"trailing data", validJSON() + `{}`, true},
		{"not json", `device=gw`, true},
		{"empty device", `{"device":"","phase":"idle","seq":1}`, true},
		{"device with slash", `{"device":"../gw","phase":"idle","seq":1}`, true},
		{"device leading dash", `{"device":"-gw","phase":"idle","seq":1}`, true},
		{"device too long", `{"device":"` + strings.Repeat("a", 129) + `","phase":"idle","seq":1}`, true},
		{"slot C", `{"device":"gw","slot":"C","phase":"idle","seq":1}`, true},
		{"no phase", `{"device":"gw","seq":1}`, true},
		{"phase upper case", `{"device":"gw","phase":"IDLE","seq":1}`, true},
		{"progress above 1", `{"device":"gw","phase":"writing","progress":1.5,"seq":1}`, true},
		{"progress negative", `{"device":"gw","phase":"writing","progress":-0.1,"seq":1}`, true},
		{"seq zero", `{"device":"gw","phase":"idle","seq":0}`, true},
		{"seq negative", `{"device":"gw","phase":"idle","seq":-1}`, true},
		{"short key", `{"device":"gw","phase":"idle","seq":1,"public_key":"AAAA"}`, true},
		{"release with newline", `{"device":"gw","release":"1\n2","phase":"idle","seq":1}`, true},
		{"error too long", `{"device":"gw","phase":"failed","error":"` + strings.Repeat("x", 4097) + `","seq":1}`, true},
		{"too large", `{"device":"gw","phase":"idle","seq":1,"release":"` + strings.Repeat(" ", MaxBodySize) + `"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Parse: got err %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v, want it to wrap ErrInvalid", err)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	got, err := Parse([]byte(validJSON()))
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Device: "gw-0001", Release: "2.0.0", Counter: 2, Slot: "B", Phase: PhaseCommitted, Seq: 7,
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSignVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	otherPub, otherKey, _ := ed25519.GenerateKey(nil)
	body := []byte(validJSON())
	sig := Sign(key, body)
	flipped := append([]byte(nil), body...)
	flipped[10] ^= 1
	tests := []struct {
		name   string
		pub    ed25519.PublicKey
		header string
		body   []byte
		ok     bool
	}{
		{"good", pub, sig, body, true},
		{"good with spaces", pub, "  " + sig + " ", body, true},
		{"flipped body", pub, sig, flipped, false},
		{"other key", otherPub, sig, body, false},
		{"signed by other key", pub, Sign(otherKey, body), body, false},
		{"empty header", pub, "", body, false},
		{"wrong algorithm", pub, strings.Replace(sig, "ed25519", "rsa", 1), body, false},
		{"not base64", pub, "ed25519 !!!", body, false},
		{"short signature", pub, "ed25519 AAAA", body, false},
		{"no key", nil, sig, body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.pub, tt.header, tt.body)
			if got := err == nil; got != tt.ok {
				t.Fatalf("Verify: got err %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadSignature) {
				t.Errorf("got %v, want it to wrap ErrBadSignature", err)
			}
		})
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "device.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("key file mode: got %v, want %v", got, want)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Errorf("second load: got another key than the one created")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("key directory: got %d entries, want only the key (no temporary files)", len(ents))
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Errorf("corrupt key file: got no error, want one (never silently replace a device's identity)")
	}
}

func TestNextSeq(t *testing.T) {
	c := &Client{Seq: 41}
	if got, want := c.NextSeq(), uint64(42); got != want {
		t.Errorf("NextSeq: got %d, want %d", got, want)
	}
	if got, want := c.LastSeq(), uint64(42); got != want {
		t.Errorf("LastSeq: got %d, want %d", got, want)
	}
}

// FuzzParse checks that whatever Parse accepts is valid and survives a
// round trip through JSON unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(validJSON()))
	f.Add([]byte(`{"device":"a","phase":"failed","error":"x","progress":0.5,"seq":1,"public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`))
	f.Add([]byte(`{"device":"a","phase":"idle","seq":18446744073709551615,"time":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"device":"a","phase":"idle","seq":1}{}`))
	f.Add([]byte(`{"device":"a\u0000","phase":"idle","seq":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Parse(body)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted a report Validate refuses: %v", err)
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal accepted report: %v", err)
		}
		r2, err := Parse(again)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", again, err)
		}
		if !reflect.DeepEqual(normal(r), normal(r2)) {
			t.Fatalf("round trip: got %+v, want %+v", r2, r)
		}
	})
}

// normal drops what JSON cannot tell apart: a nil and an empty key, the
// monotonic clock and location of a time.
func normal(r Report) Report {
	if len(r.PublicKey) == 0 {
		r.PublicKey = nil
	}
	r.Time = r.Time.UTC().Round(0)
	return r
}
