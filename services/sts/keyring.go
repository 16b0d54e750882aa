package sts

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/secrets"
)

// Key uses: reference JWTs (HS256, never published) and SystemTokens (asymmetric, published in the JWKS).
const (
	useRef    = "ref"
	useSystem = "system"
)

// keyGrace is how long a key outlives the last token it could have signed: the verifiers' clock leeway.
const keyGrace = 5 * time.Second

// keyRing holds the signing keys of both uses. Each key signs from its activation to its retirement; a
// new one is created (and, for SystemTokens, published) prepublish before the current one retires, so
// every replica and every receiver knows it before it signs; a retired key is kept (and published) until
// every token it signed has expired. The ring is stored sealed under the key-encryption key, rotated in
// one store transaction (so replicas agree), and reloaded on every refresh.
//
// Signing and removal agree on when a key stops signing: the signing key is chosen when a token is signed,
// not when the ring was last refreshed, so no replica signs with a key after its retirement (by its own
// clock) however long ago its last refresh was; and a retired key is removed only after its retirement
// plus the longest lifetime of a token of its use, the verifiers' leeway and one refresh interval more, the
// margin for replicas whose clocks differ.
type keyRing struct {
	cfg    KeyConfig
	ttl    map[string]time.Duration // the longest lifetime of a token each use signs
	store  Store
	sealer *seal.Sealer

	mu      sync.RWMutex
	decoded map[string]ringKey // by kid, so refreshes do not re-open every key
	refSign []ringKey          // the keys that may sign reference JWTs, newest activation first
	refAll  [][]byte
	sysSign []ringKey // the keys that may sign SystemTokens, newest activation first
	sysJWKS []jose.JSONWebKey
}

// ringKey is a usable key.
type ringKey struct {
	storedKey
	secret []byte        // HS256
	signer crypto.Signer // asymmetric
}

func newKeyRing(ctx context.Context, cfg KeyConfig, st Store, sealer *seal.Sealer, refTTL, systemTTL time.Duration) (*keyRing, error) {
	r := &keyRing{cfg: cfg, ttl: map[string]time.Duration{useRef: refTTL, useSystem: systemTTL}, store: st, sealer: sealer,
		decoded: map[string]ringKey{}}
	return r, r.refresh(ctx, time.Now())
}

// refresh rotates the stored ring as due at now and reloads it.
func (r *keyRing) refresh(ctx context.Context, now time.Time) error {
	keys, err := r.store.RotateKeys(ctx, func(keys []storedKey) ([]storedKey, []string, error) {
		var add []storedKey
		var remove []string
		for _, use := range []string{useRef, useSystem} {
			var current, pending *storedKey
			for i := range keys {
				k := &keys[i]
				switch {
				case k.Use != use:
				case now.After(k.RetireTime.Add(r.ttl[use] + keyGrace + r.cfg.refreshInterval())):
					remove = append(remove, k.ID)
				case k.ActivateTime.After(now):
					pending = k
				case now.Before(k.RetireTime) && (current == nil || k.ActivateTime.After(current.ActivateTime)):
					current = k
				}
			}
			switch {
			case current == nil: // the first start, or every key retired while nothing ran
				k, err := r.newKey(use, now, now)
				if err != nil {
					return nil, nil, err
				}
				add = append(add, k)
			case pending == nil && current.RetireTime.Sub(now) <= r.cfg.Prepublish:
				k, err := r.newKey(use, now, current.RetireTime)
				if err != nil {
					return nil, nil, err
				}
				add = append(add, k)
			}
		}
		return add, remove, nil
	})
	if err != nil {
		return fmt.Errorf("key ring: %w", err)
	}
	return r.load(keys, now)
}

// newKey makes a key of use that signs from activate for one rotation period, sealed for storage.
func (r *keyRing) newKey(use string, now, activate time.Time) (storedKey, error) {
	k := storedKey{Use: use, CreateTime: now, ActivateTime: activate, RetireTime: activate.Add(r.cfg.Rotation)}
	var material []byte
	if use == useRef {
		k.ID, k.Alg, material = guid.New(), "HS256", secrets.NewKey()
	} else {
		signer, err := generate(r.cfg.SystemAlg)
		if err != nil {
			return storedKey{}, err
		}
		if material, err = x509.MarshalPKCS8PrivateKey(signer); err != nil {
			return storedKey{}, err
		}
		if k.ID, err = thumbprint(signer.Public()); err != nil {
			return storedKey{}, err
		}
		k.Alg = r.cfg.SystemAlg
	}
	k.Sealed = r.sealer.Seal(material, []byte(k.ID))
	return k, nil
}

// generate makes a private key for a JWS algorithm.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case "RS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unsupported SystemToken algorithm %q", alg)
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of a public key, base64url: the key's kid.
func thumbprint(pub crypto.PublicKey) (string, error) {
	t, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(t), nil
}

// load opens the stored keys and derives what signing and verification need.
func (r *keyRing) load(keys []storedKey, now time.Time) error {
	decoded := make(map[string]ringKey, len(keys))
	var refSign, sysSign []ringKey
	var refAll [][]byte
	var sysJWKS []jose.JSONWebKey
	for _, k := range keys { // newest activation first
		rk, ok := r.decoded[k.ID]
		if !ok {
			var err error
			if rk, err = r.open(k); err != nil {
				return err
			}
		}
		decoded[k.ID] = rk
		signs := now.Before(k.RetireTime) // now, or from its activation on
		if k.Use == useRef {
			refAll = append(refAll, rk.secret)
			if signs {
				refSign = append(refSign, rk)
			}
			continue
		}
		sysJWKS = append(sysJWKS, jose.JSONWebKey{Key: rk.signer.Public(), KeyID: k.ID, Algorithm: k.Alg, Use: "sig"})
		if signs {
			sysSign = append(sysSign, rk)
		}
	}
	if !signsAt(refSign, now) || !signsAt(sysSign, now) {
		return fmt.Errorf("key ring: no active signing key")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decoded, r.refSign, r.refAll, r.sysSign, r.sysJWKS = decoded, refSign, refAll, sysSign, sysJWKS
	return nil
}

// open unseals a stored key.
func (r *keyRing) open(k storedKey) (ringKey, error) {
	material, err := r.sealer.Open(k.Sealed, []byte(k.ID))
	if err != nil {
		return ringKey{}, fmt.Errorf("key %s: %w", k.ID, err)
	}
	rk := ringKey{storedKey: k}
	if k.Use == useRef {
		rk.secret = material
		return rk, nil
	}
	priv, err := x509.ParsePKCS8PrivateKey(material)
	if err != nil {
		return ringKey{}, fmt.Errorf("key %s: %w", k.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return ringKey{}, fmt.Errorf("key %s: not a signing key", k.ID)
	}
	rk.signer = signer
	return rk, nil
}

// run refreshes the ring every interval until ctx ends.
func (r *keyRing) run(ctx context.Context, interval time.Duration, onError func(error)) {
	loop.Every(ctx, interval, func(now time.Time) {
		if err := r.refresh(ctx, now); err != nil {
			onError(err)
		}
	})
}

// signsAt reports whether one of keys signs at t.
func signsAt(keys []ringKey, t time.Time) bool {
	return slices.ContainsFunc(keys, func(k ringKey) bool { return !k.ActivateTime.After(t) && t.Before(k.RetireTime) })
}

// signer returns the key of keys (newest activation first) that signs at t: the newest one active then.
// When none is, because every refresh failed since the next key was made (for longer than the prepublish
// time), it is the one that signed last, which receivers know, rather than none.
func signer(keys []ringKey, t time.Time) ringKey {
	for _, k := range keys {
		if !k.ActivateTime.After(t) && t.Before(k.RetireTime) {
			return k
		}
	}
	for _, k := range keys {
		if !k.ActivateTime.After(t) {
			return k
		}
	}
	return keys[len(keys)-1]
}

// signing returns the HS256 key that signs reference JWTs now.
func (r *keyRing) signing() ringKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return signer(r.refSign, time.Now())
}

// verification returns every HS256 key that may have signed a valid reference JWT.
func (r *keyRing) verification() [][]byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.refAll
}

// systemSigning returns the key that signs SystemTokens now.
func (r *keyRing) systemSigning() ringKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return signer(r.sysSign, time.Now())
}

// published returns the SystemToken keys receivers must know: the pending, current and retired ones.
func (r *keyRing) published() []jose.JSONWebKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.sysJWKS
}
