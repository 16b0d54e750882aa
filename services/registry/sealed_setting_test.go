package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// The secret hash key is sealed at rest; a key an older version stored in the clear is sealed (and the
// clear row deleted) on the first start, and is the same key afterwards.
func TestSecretHashKeySealedAtRest(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := &sqlStore{db: storetest.Open(t, cfg, "registry", Migrations)}
		sealer, err := seal.New(secrets.NewKey())
		if err != nil {
			t.Fatal(err)
		}
		rows := func() map[string][]byte {
			got := map[string][]byte{}
			r, err := s.db.Read.QueryContext(ctx, `SELECT name, value FROM settings_kv`)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for r.Next() {
				var name string
				var value []byte
				if err := r.Scan(&name, &value); err != nil {
					t.Fatal(err)
				}
				got[name] = value
			}
			return got
		}

		// An older version's clear key.
		clear, err := s.Setting(ctx, "secret_hash_key", secrets.NewKey)
		if err != nil {
			t.Fatal(err)
		}
		key, err := s.sealedSetting(ctx, sealer, "secret_hash_key", func() []byte { t.Fatal("created a new key"); return nil })
		if err != nil || !bytes.Equal(key, clear) {
			t.Fatalf("sealedSetting did not keep the clear key (%v)", err)
		}
		stored := rows()
		if _, ok := stored["secret_hash_key"]; ok {
			t.Fatal("the clear row is still there")
		}
		if bytes.Contains(stored["secret_hash_key.sealed"], key) || len(stored["secret_hash_key.sealed"]) == 0 {
			t.Fatal("the key is not sealed")
		}
		again, err := s.sealedSetting(ctx, sealer, "secret_hash_key", func() []byte { t.Fatal("created a new key"); return nil })
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("second start: another key (%v)", err)
		}

		// Another key-encryption key cannot open it, and does not replace it.
		other, _ := seal.New(secrets.NewKey())
		if _, err := s.sealedSetting(ctx, other, "secret_hash_key", secrets.NewKey); !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("another KEK: %v, want seal.ErrOpen", err)
		}

		// A fresh setting is created sealed.
		fresh, err := s.sealedSetting(ctx, sealer, "fresh", secrets.NewKey)
		if err != nil || len(fresh) != secrets.Bytes || bytes.Contains(rows()["fresh.sealed"], fresh) {
			t.Fatalf("fresh setting: %v", err)
		}
	})
}

// Replicas starting together agree on the sealed key: when none is stored yet, and when each of them seals
// the clear key an older version stored.
func TestSealedSettingFirstStartRace(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		sealer, err := seal.New(secrets.NewKey())
		if err != nil {
			t.Fatal(err)
		}
		replicas := make([]*sqlStore, 4)
		for i := range replicas {
			replicas[i] = &sqlStore{db: storetest.Open(t, cfg, "registry", Migrations)}
		}
		for round := range 10 {
			for _, migrating := range []bool{false, true} {
				name := fmt.Sprintf("key_%d_%t", round, migrating)
				var clear []byte
				if migrating {
					if clear, err = replicas[0].Setting(ctx, name, secrets.NewKey); err != nil {
						t.Fatal(err)
					}
				}
				got := make([][]byte, len(replicas))
				if err := storetest.Concurrently(len(replicas), func(i int) error {
					v, err := replicas[i].sealedSetting(ctx, sealer, name, secrets.NewKey)
					got[i] = v
					return err
				}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for i := range got {
					if !bytes.Equal(got[i], got[0]) || (migrating && !bytes.Equal(got[i], clear)) {
						t.Fatalf("%s: the replicas do not agree on the key", name)
					}
				}
			}
		}
	})
}
