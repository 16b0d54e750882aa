package sts

import (
	"encoding/base64"
	"errors"

	"github.com/google/uuid"

	"github.com/hnsec/hnsec/pkg/secrets"
)

// A ref_token handle is a split token: a selector that names the stored reference and a verifier that
// proves possession. The selector is a UUIDv7 (time-ordered, so new references append to the end of the
// table's B-tree instead of touching a random page each), the verifier 256 random bits. The store keeps
// the selector and only a SHA-256 of the verifier, so read access to the store never yields a usable
// token. The handle is base64url(selector || verifier), 64 characters.
const (
	selectorLen = 16
	verifierLen = secrets.Bytes
)

var errBadHandle = errors.New("malformed ref_token")

// newHandle returns a fresh handle, its selector and the hash of its verifier.
func newHandle() (handle string, selector, verifierHash []byte) {
	id := uuid.Must(uuid.NewV7())
	raw := make([]byte, 0, selectorLen+verifierLen)
	raw = append(raw, id[:]...)
	raw = append(raw, secrets.NewKey()...)
	return base64.RawURLEncoding.EncodeToString(raw), raw[:selectorLen], secrets.Digest(string(raw[selectorLen:]))
}

// parseHandle splits a handle into its selector and the hash of its verifier.
func parseHandle(handle string) (selector, verifierHash []byte, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil || len(raw) != selectorLen+verifierLen {
		return nil, nil, errBadHandle
	}
	return raw[:selectorLen], secrets.Digest(string(raw[selectorLen:])), nil
}

// selectorBefore is the smallest selector of a reference created at or after ms (Unix milliseconds): the
// UUIDv7 layout puts the time in the first 48 bits.
func selectorBefore(ms int64) []byte {
	s := make([]byte, selectorLen)
	for i := 5; i >= 0; i-- {
		s[i] = byte(ms)
		ms >>= 8
	}
	return s
}
