package publish

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Key is an ed25519 signing key of one role.
//
// On disk a key is a JSON file, mode 0600, in the TUF key format with the private
// half added (as securesystemslib writes it):
//
//	{"keytype":"ed25519","scheme":"ed25519","keyid":"<hex>",
//	 "keyval":{"public":"<hex 32 bytes>","private":"<hex 32-byte seed>"}}
//
// keyid is informational (recomputed on load and checked).
type Key struct {
	// Public is the key as it appears in root.json.
	Public *metadata.Key
	priv   ed25519.PrivateKey
}

type keyFile struct {
	KeyType string `json:"keytype"`
	Scheme  string `json:"scheme"`
	KeyID   string `json:"keyid"`
	KeyVal  struct {
		Public  string `json:"public"`
		Private string `json:"private"`
	} `json:"keyval"`
}

// GenerateKey makes a new ed25519 key from crypto/rand.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return newKey(priv)
}

func newKey(priv ed25519.PrivateKey) (*Key, error) {
	pub, err := metadata.KeyFromPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	if _, err := pub.ID(); err != nil {
		return nil, err
	}
	return &Key{Public: pub, priv: priv}, nil
}

// ID is the TUF key id (sha256 of the canonical public key).
func (k *Key) ID() string {
	id, _ := k.Public.ID() // computed and cached by newKey
	return id
}

// Signer returns the key as a signer for go-tuf's Metadata.Sign.
func (k *Key) Signer() signature.Signer {
	s, err := signature.LoadED25519Signer(k.priv)
	if err != nil {
		// LoadED25519Signer fails only on a nil key, which newKey never makes.
		panic(err)
	}
	return s
}

// Save writes the key to path with mode 0600. It refuses to overwrite a file.
func (k *Key) Save(path string) error {
	var kf keyFile
	kf.KeyType = metadata.KeyTypeEd25519
	kf.Scheme = metadata.KeySchemeEd25519
	kf.KeyID = k.ID()
	kf.KeyVal.Public = k.Public.Value.PublicKey
	kf.KeyVal.Private = hex.EncodeToString(k.priv.Seed())
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save key: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save key %s: %w", path, err)
	}
	return f.Close()
}

// LoadKey reads a key written by Save.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	if kf.KeyType != metadata.KeyTypeEd25519 || kf.Scheme != metadata.KeySchemeEd25519 {
		return nil, fmt.Errorf("load key %s: type %q scheme %q, want ed25519", path, kf.KeyType, kf.Scheme)
	}
	seed, err := hex.DecodeString(kf.KeyVal.Private)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("load key %s: private part is not a %d-byte hex seed", path, ed25519.SeedSize)
	}
	k, err := newKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	if k.Public.Value.PublicKey != kf.KeyVal.Public || (kf.KeyID != "" && kf.KeyID != k.ID()) {
		return nil, fmt.Errorf("load key %s: public part or key id does not match the private key", path)
	}
	return k, nil
}

// Key file names in a keys directory.
const (
	TargetsKeyFile   = "targets.key"
	SnapshotKeyFile  = "snapshot.key"
	TimestampKeyFile = "timestamp.key"
	// RootFile is the initial trusted root written by Keygen.
	RootFile = "root.json"
)

// RootKeyFile is the file name of the i-th root key (from 1).
func RootKeyFile(i int) string { return "root-" + strconv.Itoa(i) + ".key" }

// Keys is what a keys directory holds. A nil field or empty Root means that key is
// not present: a manifest-server host keeps only timestamp.key (and snapshot.key).
type Keys struct {
	Root      []*Key
	Targets   *Key
	Snapshot  *Key
	Timestamp *Key
}

// LoadKeys reads every key file present in dir. Missing files are not an error;
// unreadable or malformed ones are.
func LoadKeys(dir string) (*Keys, error) {
	var ks Keys
	load := func(name string) (*Key, error) {
		k, err := LoadKey(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return k, err
	}
	var err error
	if ks.Targets, err = load(TargetsKeyFile); err != nil {
		return nil, err
	}
	if ks.Snapshot, err = load(SnapshotKeyFile); err != nil {
		return nil, err
	}
	if ks.Timestamp, err = load(TimestampKeyFile); err != nil {
		return nil, err
	}
	for i := 1; ; i++ {
		k, err := load(RootKeyFile(i))
		if err != nil {
			return nil, err
		}
		if k == nil {
			break
		}
		ks.Root = append(ks.Root, k)
	}
	return &ks, nil
}
