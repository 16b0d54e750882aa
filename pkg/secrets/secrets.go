// Package secrets makes and checks high-entropy secrets: client secrets and ref_token handles.
//
// Those secrets carry at least 256 random bits, so a slow password KDF (bcrypt, argon2) adds nothing:
// guessing is hopeless either way. They are stored only as an HMAC-SHA256 under a server-side key (a
// keyed SHA-256), so a copy of the table alone cannot even confirm a guess, and compared in constant time.
package secrets

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// Bytes is the entropy of every secret this package makes: 256 bits.
const Bytes = 32

// New returns a fresh secret: 32 random bytes, base64url without padding (43 characters).
func New() string {
	b := make([]byte, Bytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewKey returns a fresh 256-bit key.
func NewKey() []byte {
	b := make([]byte, Bytes)
	_, _ = rand.Read(b)
	return b
}

// Hash is the keyed SHA-256 (HMAC-SHA256) of secret under key.
func Hash(key []byte, secret string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// Digest is the plain SHA-256 of secret, for in-memory cache keys and lookups by handle.
func Digest(secret string) []byte {
	d := sha256.Sum256([]byte(secret))
	return d[:]
}

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
