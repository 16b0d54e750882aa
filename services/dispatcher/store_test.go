package dispatcher

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

// The dispatcher store's contract, on SQLite and (with HNSEC_TEST_DATABASE_URL) PostgreSQL.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		db := storetest.Open(t, cfg, "dispatcher", Migrations)
		s := &sqlStore{db: db}
		now := time.Now().Truncate(time.Millisecond)
		// Changes are ordered by endringsnummer; each is the first of its setting (sekvensnummer 1), as for a
		// citizen's changes of different definitions.
		park := func(sub, id, citizen string, endringsnummer int64, next time.Time) {
			t.Helper()
			p := parkedChange{change: change{ChangeID: id, CitizenKey: citizen, Sekvensnummer: 1, Endringsnummer: endringsnummer,
				Payload: []byte(`{"id":"` + id + `"}`), EventTime: now}, Attempts: 1, NextAttempt: next, LastErrorClass: classServerError,
				LastStatusCode: 500}
			if err := s.park(ctx, sub, p); err != nil {
				t.Fatal(err)
			}
		}
		park("s1", "a1", "A", 1, now)
		park("s1", "a2", "A", 3, time.Time{})
		park("s1", "b1", "B", 2, now.Add(time.Hour))
		park("s1", "a1", "A", 1, now) // parked again after a crash: stays as it was
		park("s2", "c1", "C", 4, now)

		heads := func(at time.Time) []string {
			t.Helper()
			list, err := s.dueHeads(ctx, "s1", at, 10)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range list {
				ids = append(ids, p.ChangeID)
			}
			return ids
		}
		if got := heads(now); !slices.Equal(got, []string{"a1"}) {
			t.Fatalf("due heads now = %v, want [a1] (a2 waits behind a1, b1 is not due)", got)
		}
		if got := heads(now.Add(2 * time.Hour)); !slices.Equal(got, []string{"a1", "b1"}) {
			t.Fatalf("due heads later = %v, want [a1 b1]", got)
		}
		citizens, err := s.parkedCitizens(ctx, "s1")
		if err != nil || len(citizens) != 2 {
			t.Fatalf("parked citizens = %v, %v", citizens, err)
		}
		h, err := s.head(ctx, "s1", "A")
		if err != nil || h.ChangeID != "a1" || string(h.Payload) != `{"id":"a1"}` || h.Attempts != 1 || h.LastStatusCode != 500 || !h.EventTime.Equal(now) {
			t.Fatalf("head of A = %+v, %v", h, err)
		}

		// a1 dies: a2 becomes A's head; dead letters page by (dead time, change id).
		h.Attempts, h.Dead, h.DeadTime = 9, true, now
		if err := s.failed(ctx, "s1", h); err != nil {
			t.Fatal(err)
		}
		if got := heads(now); !slices.Equal(got, []string{"a2"}) {
			t.Fatalf("due heads after a1 died = %v, want [a2]", got)
		}
		b1, _ := s.head(ctx, "s1", "B")
		b1.Dead, b1.DeadTime = true, now.Add(time.Second)
		if err := s.failed(ctx, "s1", b1); err != nil {
			t.Fatal(err)
		}
		page1, err := s.deadLetters(ctx, "s1", 0, "", 1)
		if err != nil || len(page1) != 1 || page1[0].ChangeID != "a1" || page1[0].Attempts != 9 || !page1[0].Dead {
			t.Fatalf("dead letters page 1 = %+v, %v", page1, err)
		}
		page2, err := s.deadLetters(ctx, "s1", page1[0].DeadTime.UnixMilli(), "a1", 10)
		if err != nil || len(page2) != 1 || page2[0].ChangeID != "b1" {
			t.Fatalf("dead letters page 2 = %+v, %v", page2, err)
		}
		if _, err := s.head(ctx, "s1", "B"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("B has no waiting change: %v", err)
		}
		if n, err := s.waitingCount(ctx, "s1"); err != nil || n != 1 {
			t.Fatalf("waiting = %d, %v; want 1 (a2)", n, err)
		}

		// Replay one by id, then all since a time.
		if n, err := s.replay(ctx, "s1", "b1", time.Time{}); err != nil || n != 1 {
			t.Fatalf("replay b1 = %d, %v", n, err)
		}
		if n, err := s.replay(ctx, "s1", "", now.Add(-time.Minute)); err != nil || n != 1 {
			t.Fatalf("replay since = %d, %v; want 1 (a1)", n, err)
		}
		if got := heads(now); !slices.Equal(got, []string{"a1", "b1"}) {
			t.Fatalf("due heads after the replays = %v, want [a1 b1]", got)
		}
		if err := s.delivered(ctx, "s1", "a1"); err != nil {
			t.Fatal(err)
		}
		if got := heads(now); !slices.Equal(got, []string{"b1", "a2"}) {
			t.Fatalf("due heads after a1 = %v, want [b1 a2]", got)
		}

		// The delivery log pages newest first and is pruned by age.
		var log []attempt
		for i := range 5 {
			log = append(log, attempt{SubscriptionID: "s1", ChangeID: fmt.Sprint("x", i), Sekvensnummer: int64(i), Attempt: 1,
				Time: now.Add(time.Duration(i) * time.Hour), StatusCode: 200, Latency: 1500 * time.Microsecond})
		}
		if err := s.logAttempts(ctx, log); err != nil {
			t.Fatal(err)
		}
		ids, got, err := s.attempts(ctx, "s1", 0, 2)
		if err != nil || len(got) != 2 || got[0].ChangeID != "x4" || got[1].Latency != 1500*time.Microsecond {
			t.Fatalf("attempts page 1 = %+v, %v", got, err)
		}
		_, got, err = s.attempts(ctx, "s1", ids[1], 10)
		if err != nil || len(got) != 3 || got[0].ChangeID != "x2" {
			t.Fatalf("attempts page 2 = %+v, %v", got, err)
		}
		if err := s.pruneAttempts(ctx, now.Add(150*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, got, _ = s.attempts(ctx, "s1", 0, 10); len(got) != 2 {
			t.Fatalf("after pruning %d attempts, want 2", len(got))
		}

		// A setting, once stored, stays.
		id1, err := db.Setting(ctx, "some_setting", func() []byte { return []byte("first") })
		if err != nil {
			t.Fatal(err)
		}
		id2, err := db.Setting(ctx, "some_setting", func() []byte { return []byte("second") })
		if err != nil || string(id1) != "first" || string(id2) != "first" {
			t.Fatalf("setting %q then %q, %v", id1, id2, err)
		}
	})
}

// Changes parked before PVK counted sekvensnummer per setting were numbered by stream position: the
// migration makes that their endringsnummer, so a citizen's parked changes keep their order.
func TestStoreMigratesParkedToEndringsnummer(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		old, err := store.Open(ctx, cfg, "dispatcher", store.Migrations{SQLite: Migrations.SQLite[:3], Postgres: Migrations.Postgres[:3]})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range []struct {
			id  string
			seq int64
		}{{"later", 9}, {"first", 7}} {
			if _, err := old.Write.ExecContext(ctx, `INSERT INTO parked (subscription_id, change_id, citizen_key, sekvensnummer, payload,
				event_time_ms, attempts, next_attempt_ms, dead, dead_time_ms, last_error_class, last_status_code)
				VALUES ('s1', ?, 'A', ?, ?, 0, 1, 0, FALSE, 0, '', 500)`, row.id, row.seq, []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		s := &sqlStore{db: storetest.Open(t, cfg, "dispatcher", Migrations)}
		head, err := s.head(ctx, "s1", "A")
		if err != nil || head.ChangeID != "first" || head.Endringsnummer != 7 || head.Sekvensnummer != 7 {
			t.Fatalf("head after the migration = %+v, %v", head, err)
		}
	})
}
