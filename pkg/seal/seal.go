// Package seal keeps key material encrypted at rest: AES-256-GCM under a key-encryption key (KEK) that
// lives outside the database (a file or the HNSEC_KEK environment variable). A sealed value is bound to
// associated data (the key's id), so a ciphertext cannot be moved onto another row.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KEKSize is the size of a key-encryption key: 256 bits.
const KEKSize = 32

// version prefixes every sealed value so the format can change.
const version byte = 1

// Sealer seals and opens values under one KEK.
type Sealer struct{ aead cipher.AEAD }

// New returns a Sealer for a 32-byte KEK.
func New(kek []byte) (*Sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("the key-encryption key must be %d bytes, not %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to aad: version || nonce || ciphertext+tag.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = version
	_, _ = rand.Read(out[1:]) // crypto/rand.Read never fails (Go 1.24+).
	return s.aead.Seal(out, out[1:], plaintext, aad)
}

// ErrOpen means a sealed value could not be opened: wrong KEK, wrong associated data, or damage.
var ErrOpen = errors.New("sealed key material cannot be opened with this key-encryption key")

// Open decrypts a value from Seal with the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// ParseKEK decodes a KEK written as base64 (standard or URL alphabet, padding optional).
func ParseKEK(text string) ([]byte, error) {
	text = strings.TrimRight(strings.TrimSpace(text), "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil {
			if len(b) != KEKSize {
				return nil, fmt.Errorf("the key-encryption key must be %d bytes, not %d", KEKSize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("the key-encryption key must be base64")
}

// LoadKEK reads the KEK from env (its value) or else from file. With neither, when generate is set it
// creates file with a fresh KEK (mode 0600); otherwise it fails.
func LoadKEK(env, file string, generate bool) ([]byte, error) {
	if env != "" {
		return ParseKEK(env)
	}
	if file == "" {
		return nil, errors.New("a key-encryption key is required: --kek-file or HNSEC_KEK (dev mode generates one)")
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) && generate {
		kek := make([]byte, KEKSize)
		_, _ = rand.Read(kek)
		if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(kek)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write key-encryption key: %w", err)
		}
		return kek, nil
	}
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return ParseKEK(string(b))
}
