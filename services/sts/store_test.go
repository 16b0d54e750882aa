package sts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// The STS store's contract, on SQLite and (with HNSEC_TEST_DATABASE_URL) PostgreSQL.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		db := storetest.Open(t, cfg, "sts", Migrations)
		s := &sqlStore{db: db}
		now := time.Now().UTC().Truncate(time.Second)

		// Keys: what fn adds is stored, what it names is removed, in one transaction.
		k := func(id string, activate time.Duration) storedKey {
			return storedKey{ID: id, Use: "sig", Alg: "RS256", Sealed: []byte("sealed-" + id), CreateTime: now.Truncate(time.Millisecond),
				ActivateTime: now.Add(activate).Truncate(time.Millisecond), RetireTime: time.UnixMilli(0)}
		}
		keys, err := s.RotateKeys(ctx, func([]storedKey) ([]storedKey, []string, error) {
			return []storedKey{k("a", 0), k("b", time.Hour)}, nil, nil
		})
		if err != nil || len(keys) != 2 || keys[0].ID != "b" || string(keys[1].Sealed) != "sealed-a" {
			t.Fatalf("RotateKeys = %+v, %v", keys, err)
		}
		keys, err = s.RotateKeys(ctx, func(old []storedKey) ([]storedKey, []string, error) {
			return []storedKey{k("c", 2*time.Hour)}, []string{"a"}, nil
		})
		if err != nil || len(keys) != 2 || keys[0].ID != "c" || keys[1].ID != "b" {
			t.Fatalf("second RotateKeys = %+v, %v", keys, err)
		}
		refused := errors.New("refused")
		if _, err := s.RotateKeys(ctx, func([]storedKey) ([]storedKey, []string, error) { return nil, []string{"b"}, refused }); !errors.Is(err, refused) {
			t.Fatalf("refused rotation: %v", err)
		}

		// Two replicas rotating at once (the first start of both): the second sees the first's key.
		other := &sqlStore{db: storetest.Open(t, cfg, "sts", Migrations)}
		firstOnly := func(kid string) func([]storedKey) ([]storedKey, []string, error) {
			return func(keys []storedKey) ([]storedKey, []string, error) {
				if slices.ContainsFunc(keys, func(k storedKey) bool { return k.Use == "first" }) {
					return nil, nil, nil
				}
				time.Sleep(50 * time.Millisecond) // both read before either writes, unless they are serialised
				nk := k(kid, 0)
				nk.Use = "first"
				return []storedKey{nk}, nil, nil
			}
		}
		errs := make(chan error, 2)
		for i, st := range []*sqlStore{s, other} {
			go func() {
				_, err := st.RotateKeys(ctx, firstOnly(fmt.Sprint("first-", i)))
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		keys, err = s.RotateKeys(ctx, func([]storedKey) ([]storedKey, []string, error) { return nil, nil, nil })
		if n := len(slices.DeleteFunc(keys, func(k storedKey) bool { return k.Use != "first" })); err != nil || n != 1 {
			t.Fatalf("replicas rotating at once made %d first keys (%v)", n, err)
		}

		// References: stored in one go, found by selector, revoked once, deleted after expiry.
		var refs []reference
		for range 3 {
			_, sel, hash := newHandle()
			refs = append(refs, reference{Selector: sel, VerifierHash: hash, JTI: "j", ClientID: "c1", ClientName: "C", Scopes: []string{"s1", "s2"},
				Audiences: []string{"api"}, OrganisationNumber: "971000007", IssueTime: now, ExpireTime: now.Add(time.Minute)})
		}
		refs[2].ExpireTime = now.Add(-time.Minute)
		if err := s.InsertReferences(ctx, refs); err != nil {
			t.Fatal(err)
		}
		got, err := s.Reference(ctx, refs[0].Selector)
		if err != nil || !slices.Equal(got.Scopes, refs[0].Scopes) || string(got.VerifierHash) != string(refs[0].VerifierHash) ||
			!got.ExpireTime.Equal(refs[0].ExpireTime) || !got.RevokeTime.IsZero() {
			t.Fatalf("Reference = %+v, %v", got, err)
		}
		if _, err := s.Reference(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown reference: %v", err)
		}
		if ok, err := s.RevokeReference(ctx, refs[0].Selector, now); !ok || err != nil {
			t.Fatalf("first revocation: %t, %v", ok, err)
		}
		if ok, err := s.RevokeReference(ctx, refs[0].Selector, now.Add(time.Second)); ok || err != nil {
			t.Fatalf("second revocation: %t, %v", ok, err)
		}
		if got, _ := s.Reference(ctx, refs[0].Selector); !got.RevokeTime.Equal(now) {
			t.Fatalf("revoke time %s, want %s", got.RevokeTime, now)
		}
		n, err := s.DeleteExpired(ctx, now.Add(time.Hour), now)
		if err != nil || n != 1 {
			t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
		}

		// Many expired references go in batches; the live ones stay.
		expired := make([]reference, 2*deleteBatch+7)
		for i := range expired {
			_, sel, hash := newHandle()
			expired[i] = reference{Selector: sel, VerifierHash: hash, JTI: fmt.Sprint("x", i), ClientID: "c3", Scopes: []string{"s"},
				IssueTime: now.Add(-time.Hour), ExpireTime: now.Add(-time.Minute)}
		}
		for i := 0; i < len(expired); i += maxBatch {
			if err := s.InsertReferences(ctx, expired[i:min(i+maxBatch, len(expired))]); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.DeleteExpired(ctx, now.Add(time.Hour), now); err != nil || n != int64(len(expired)) {
			t.Fatalf("DeleteExpired = %d, %v; want %d", n, err, len(expired))
		}
		if _, err := s.Reference(ctx, refs[1].Selector); err != nil {
			t.Fatalf("a live reference was deleted: %v", err)
		}

		// Batches of every shape the chunked INSERT takes are stored whole; a batch with a duplicate is
		// stored not at all.
		for _, size := range []int{1, 2, 13, maxInsertRows, maxInsertRows + 1, 600, maxBatch} {
			batch := make([]reference, size)
			for i := range batch {
				_, sel, hash := newHandle()
				batch[i] = reference{Selector: sel, VerifierHash: hash, JTI: fmt.Sprint(i), ClientID: "c2", Scopes: []string{"s"},
					IssueTime: now, ExpireTime: now.Add(time.Minute)}
			}
			if err := s.InsertReferences(ctx, batch); err != nil {
				t.Fatalf("batch of %d: %v", size, err)
			}
			for _, i := range []int{0, size / 2, size - 1} {
				if got, err := s.Reference(ctx, batch[i].Selector); err != nil || got.JTI != fmt.Sprint(i) {
					t.Fatalf("batch of %d, reference %d = %+v, %v", size, i, got, err)
				}
			}
		}
		// One statement (2 rows) and a transaction of two (the duplicate in the second statement).
		for _, size := range []int{2, maxInsertRows + 1} {
			dup := make([]reference, size)
			for i := range dup {
				_, sel, hash := newHandle()
				dup[i] = reference{Selector: sel, VerifierHash: hash, JTI: "fresh", ClientID: "c2", IssueTime: now, ExpireTime: now}
			}
			dup[size-1].Selector = refs[1].Selector
			if err := s.InsertReferences(ctx, dup); err == nil {
				t.Fatalf("a batch of %d repeating a stored selector was stored", size)
			}
			if _, err := s.Reference(ctx, dup[0].Selector); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the failed batch of %d's first reference: %v, want not found", size, err)
			}
		}

		// Client-wide revocation time, replaced by a later one.
		if at, err := s.ClientRevokeTime(ctx, "c1"); err != nil || !at.IsZero() {
			t.Fatalf("ClientRevokeTime before = %s, %v", at, err)
		}
		for _, at := range []time.Time{now, now.Add(time.Minute)} {
			if err := s.RevokeClientTokens(ctx, "c1", at); err != nil {
				t.Fatal(err)
			}
		}
		if at, err := s.ClientRevokeTime(ctx, "c1"); err != nil || !at.Equal(now.Add(time.Minute)) {
			t.Fatalf("ClientRevokeTime = %s, %v", at, err)
		}
	})
}
