package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// The retention deletes dead letters by the time they died and waiting parked changes by the time of
// their change; purging a subscription deletes all its rows and no other's. On SQLite and (with
// HNSEC_TEST_DATABASE_URL) PostgreSQL.
func TestStoreRetention(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := &sqlStore{db: storetest.Open(t, cfg, "dispatcher", Migrations)}
		now := time.Now().Truncate(time.Millisecond)
		old, recent := now.Add(-15*24*time.Hour), now.Add(-time.Hour)
		park := func(sub, id string, event time.Time, deadAt time.Time) {
			t.Helper()
			p := parkedChange{change: change{ChangeID: id, CitizenKey: id, Sekvensnummer: 1, Payload: []byte(`{}`), EventTime: event}, Attempts: 1}
			if err := s.park(ctx, sub, p); err != nil {
				t.Fatal(err)
			}
			if !deadAt.IsZero() {
				p.Dead, p.DeadTime = true, deadAt
				if err := s.failed(ctx, sub, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		park("s1", "dead-old", old, old)
		park("s1", "dead-recently", old, recent) // an old change that died recently (replayed, say) stays
		park("s1", "waiting-old", old, time.Time{})
		park("s1", "waiting-recent", recent, time.Time{})
		park("s2", "dead-old-2", old, old)
		park("s3", "dead-recently-3", recent, recent)
		if err := s.logAttempts(ctx, []attempt{{SubscriptionID: "s3", ChangeID: "x", Time: now}, {SubscriptionID: "s1", ChangeID: "y", Time: now}}); err != nil {
			t.Fatal(err)
		}

		got, err := s.pruneParked(ctx, now.Add(-14*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]purged{"s1": {Subscription: "s1", DeadLetters: 1, Parked: 1}, "s2": {Subscription: "s2", DeadLetters: 1}}
		if len(got) != len(want) {
			t.Fatalf("pruned %+v, want %+v", got, want)
		}
		for _, p := range got {
			if want[p.Subscription] != p {
				t.Fatalf("pruned %+v, want %+v", got, want)
			}
		}
		left := func(sub string) int {
			var n int
			if err := s.db.Read.QueryRow(`SELECT count(*) FROM parked WHERE subscription_id = ?`, sub).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if l1, l2, l3 := left("s1"), left("s2"), left("s3"); l1 != 2 || l2 != 0 || l3 != 1 {
			t.Fatalf("left after the retention: s1 %d, s2 %d, s3 %d; want 2, 0, 1", l1, l2, l3)
		}

		if err := s.saveMarks(ctx, []citizenMark{{Subscription: "s1", Citizen: "c1", Epoch: 1, Seq: 7},
			{Subscription: "s3", Citizen: "c1", Epoch: 1, Seq: 7}}); err != nil {
			t.Fatal(err)
		}
		p, err := s.purgeSubscription(ctx, "s1")
		if err != nil || p != (purged{Subscription: "s1", DeadLetters: 1, Parked: 1, Attempts: 1, Marks: 1}) {
			t.Fatalf("purge = %+v, %v", p, err)
		}
		if l1, l3 := left("s1"), left("s3"); l1 != 0 || l3 != 1 {
			t.Fatalf("left after the purge: s1 %d, s3 %d; want 0, 1", l1, l3)
		}
		if _, list, err := s.attempts(ctx, "s3", 0, 10); err != nil || len(list) != 1 {
			t.Fatalf("another subscription's delivery log: %v, %v", list, err)
		}
		if marks, err := s.citizenMarks(ctx, "s3", 1, 0); err != nil || len(marks) != 1 {
			t.Fatalf("another subscription's marks: %v, %v", marks, err)
		}
	})
}
