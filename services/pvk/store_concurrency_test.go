package pvk

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// Concurrent writes of PVK's store, on SQLite and (with HNSEC_TEST_DATABASE_URL) PostgreSQL, from two
// replicas' handles: every update builds on the one before.
func TestStoreConcurrentUpdates(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		sealer := testSealer(t)
		replicas := []*sqlStore{
			{db: storetest.Open(t, cfg, "pvk", Migrations), sealer: sealer},
			{db: storetest.Open(t, cfg, "pvk", Migrations), sealer: sealer},
		}
		s := replicas[0]
		now := time.Now().UTC().Truncate(time.Millisecond)
		const n = 8

		// Webhook secret rotations at once: each rotates the secret the one before made, so every secret
		// handed out signs until the next rotation and is then the previous secret (none is lost).
		sub := Subscription{ID: "6f1c2d3e-0000-4000-8000-0000000000d1", Subscriber: "client", WebhookURL: "https://x.example/hook",
			Status: 1, CreateTime: now, Secret: "whsec_0"}
		if err := s.CreateSubscription(ctx, sub, auditEvent("client", "created", "")); err != nil {
			t.Fatal(err)
		}
		rotated := make([]Subscription, n)
		if err := storetest.Concurrently(n, func(i int) error {
			var err error
			rotated[i], err = replicas[i%len(replicas)].UpdateSubscription(ctx, sub.ID, auditEvent("client", "secret_rotated", ""),
				func(x *Subscription) error {
					x.Secret, x.PreviousSecret, x.PreviousExpire = fmt.Sprint("whsec_", i+1), x.Secret, now
					return nil
				})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		final, err := s.GetSubscription(ctx, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		var previous, handedOut []string
		for _, r := range rotated {
			previous = append(previous, r.PreviousSecret)
			if r.Secret != final.Secret {
				handedOut = append(handedOut, r.Secret)
			}
		}
		slices.Sort(previous)
		want := append([]string{"whsec_0"}, handedOut...)
		slices.Sort(want)
		if !slices.Equal(previous, want) {
			t.Errorf("concurrent rotations did not chain: they replaced %v, want each of %v once", previous, want)
		}

		// A rotation while another replica seals the secrets an older version left in the clear is kept.
		for round := range 20 {
			id := fmt.Sprintf("6f1c2d3e-0000-4000-8000-%012d", round)
			if _, err := s.db.Write.ExecContext(ctx, `INSERT INTO subscriptions (id, subscriber, filters, webhook_url, x_auth, status,
				create_time_ms, status_reason, secret, previous_secret, previous_expire_ms)
				VALUES (?, 'client', '{}', 'https://x.example/hook', FALSE, 1, 0, '', 'whsec_clear', '', 0)`, id); err != nil {
				t.Fatal(err)
			}
			if err := storetest.Concurrently(2, func(i int) error {
				if i == 0 {
					_, err := replicas[0].sealClearSecrets(ctx)
					return err
				}
				_, err := replicas[1].UpdateSubscription(ctx, id, auditEvent("client", "secret_rotated", ""), func(x *Subscription) error {
					x.Secret, x.PreviousSecret, x.PreviousExpire = "whsec_new", x.Secret, now
					return nil
				})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetSubscription(ctx, id); err != nil || got.Secret != "whsec_new" || got.PreviousSecret != "whsec_clear" {
				t.Errorf("round %d: the rotation during the sealing was lost (%v)", round, err)
				break
			}
		}

		// The same setting written at once by several requests is one change.
		def := Definition{GUID: "6f1c2d3e-0000-4000-8000-0000000000c1", Navn: "Test", PartKode: "P", TypePi: "samtykke"}
		if err := s.CreateDefinition(ctx, def); err != nil {
			t.Fatal(err)
		}
		event := func(st Setting) (OutboxEvent, error) {
			return OutboxEvent{ChangeID: fmt.Sprint("change-", st.Endringsnummer), Partition: int(st.Endringsnummer % Partitions), Payload: []byte("{}")}, nil
		}
		for round := range 10 {
			fnr := fmt.Sprintf("010101%05d", round)
			var changed atomic.Int32
			if err := storetest.Concurrently(n, func(i int) error {
				w := &Write{In: Setting{Fnr: fnr, DefinitionGUID: def.GUID, Aktiv: true, Tidspunkt: now, EvidenceMime: "text/plain",
					Evidence: []byte("e"), ChangeTime: now}}
				if err := replicas[i%len(replicas)].SetSettings(ctx, []*Write{w}, event); err != nil {
					return err
				}
				if w.Changed {
					changed.Add(1)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if changed.Load() != 1 {
				t.Errorf("round %d: %d of %d concurrent writes of the same setting were changes, want 1", round, changed.Load(), n)
				break
			}
		}
	})
}
