package sts

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// newTestRing is a key ring on a fresh SQLite store that has not been refreshed yet.
func newTestRing(t *testing.T, cfg KeyConfig, refTTL, systemTTL time.Duration) *keyRing {
	t.Helper()
	sealer, err := seal.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	st := &sqlStore{db: storetest.Open(t, store.Config{DataDir: t.TempDir()}, "sts", Migrations)}
	return &keyRing{cfg: cfg, ttl: map[string]time.Duration{useRef: refTTL, useSystem: systemTTL}, store: st, sealer: sealer,
		decoded: map[string]ringKey{}}
}

// A replica signs only with a key that has not retired, even when its last refresh of the ring was before
// the retirement (the next refresh is up to the refresh interval away).
func TestKeyRingNeverSignsWithRetiredKey(t *testing.T) {
	ctx := context.Background()
	cfg := KeyConfig{Rotation: time.Hour, Prepublish: 30 * time.Minute, SystemAlg: "ES256"}
	r := newTestRing(t, cfg, 30*time.Minute, 5*time.Minute)
	now := time.Now()
	retire := now.Add(-5 * time.Second) // the first keys retired a moment ago
	for _, at := range []time.Time{
		retire.Add(-cfg.Rotation),                     // the first keys are made
		retire.Add(-20 * time.Minute),                 // the next ones are made, to sign from retire on
		now.Add(-cfg.refreshInterval() + time.Second), // the last refresh before now
	} {
		if err := r.refresh(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []ringKey{r.signing(), r.systemSigning()} {
		if !now.Before(k.RetireTime) {
			t.Errorf("%s tokens are signed with key %s, retired %s ago", k.Use, k.ID, now.Sub(k.RetireTime).Round(time.Second))
		}
		if k.ActivateTime.After(now) {
			t.Errorf("%s tokens are signed with key %s, which signs only from %s", k.Use, k.ID, k.ActivateTime)
		}
	}
}

// A retired key is removed only when no token it signed can still be valid anywhere: after its
// retirement, the longest token lifetime, the verifiers' leeway, and the refresh interval (for replicas
// whose clocks differ).
func TestKeyRingKeepsRetiredKeysLongEnough(t *testing.T) {
	ctx := context.Background()
	cfg := KeyConfig{Rotation: time.Hour, Prepublish: 30 * time.Minute, SystemAlg: "ES256"}
	const systemTTL = 5 * time.Minute
	r := newTestRing(t, cfg, 30*time.Minute, systemTTL)
	start := time.Now().Add(-24 * time.Hour)
	if err := r.refresh(ctx, start); err != nil {
		t.Fatal(err)
	}
	first := r.systemSigning()
	kid := first.ID
	published := func() bool {
		return slices.ContainsFunc(r.published(), func(k jose.JSONWebKey) bool { return k.KeyID == kid })
	}
	lastValid := first.RetireTime.Add(systemTTL + keyGrace)
	for _, at := range []time.Time{
		first.RetireTime.Add(-20 * time.Minute), // the next key is made
		lastValid.Add(cfg.refreshInterval() - time.Second),
	} {
		if err := r.refresh(ctx, at); err != nil {
			t.Fatal(err)
		}
		if !published() {
			t.Fatalf("at retirement %+v: the retired SystemToken key is gone", at.Sub(first.RetireTime))
		}
	}
	if err := r.refresh(ctx, lastValid.Add(cfg.refreshInterval()+time.Second)); err != nil {
		t.Fatal(err)
	}
	if published() {
		t.Fatal("the retired SystemToken key is kept forever")
	}
}
