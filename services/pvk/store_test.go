package pvk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// PVK's store contract, on SQLite and (with HNSEC_TEST_DATABASE_URL) PostgreSQL.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		db := storetest.Open(t, cfg, "pvk", Migrations)
		s := &sqlStore{db: db, sealer: testSealer(t)}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}

		def := Definition{GUID: "6f1c2d3e-0000-4000-8000-0000000000c1", Navn: "Test", PartKode: "P", TypePi: "samtykke",
			Omfang: []Omfang{{Kode: "k", Logisk: "l", Presisering: "p"}}}
		must(s.CreateDefinition(ctx, def))
		if err := s.CreateDefinition(ctx, def); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("second CreateDefinition: %v, want ErrAlreadyExists", err)
		}
		got, err := s.GetDefinition(ctx, def.GUID)
		if err != nil || got.Navn != "Test" || len(got.Omfang) != 1 || got.Omfang[0].Logisk != "l" {
			t.Fatalf("GetDefinition = %+v, %v", got, err)
		}
		if _, err := s.GetDefinition(ctx, "6f1c2d3e-0000-4000-8000-00000000dead"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown definition: %v", err)
		}

		// Writes: a change counts the setting's sekvensnummer up, takes the next endringsnummer and an outbox
		// event; the same state again does not.
		now := time.Now().UTC().Truncate(time.Millisecond)
		write := func(fnr string, aktiv bool) *Write {
			return &Write{In: Setting{Fnr: fnr, DefinitionGUID: def.GUID, Aktiv: aktiv, Tidspunkt: now, EvidenceMime: "text/plain",
				Evidence: []byte("e"), ChangeTime: now}}
		}
		event := func(st Setting) (OutboxEvent, error) {
			return OutboxEvent{ChangeID: fmt.Sprint("change-", st.Endringsnummer), Partition: int(st.Endringsnummer % Partitions),
				Payload: []byte(fmt.Sprint(st.Endringsnummer))}, nil
		}
		batch := []*Write{write("01010100001", true), write("01010100002", true), write("01010100003", false)}
		must(s.SetSettings(ctx, batch, event))
		again := []*Write{write("01010100001", true), write("01010100002", false)}
		must(s.SetSettings(ctx, again, event))
		if !batch[0].Changed || !batch[1].Changed || !batch[2].Changed || again[0].Changed || !again[1].Changed {
			t.Fatalf("changed: %v %v %v / %v %v", batch[0].Changed, batch[1].Changed, batch[2].Changed, again[0].Changed, again[1].Changed)
		}
		if again[1].OutboxID <= batch[2].OutboxID {
			t.Fatalf("outbox ids %d then %d", batch[2].OutboxID, again[1].OutboxID)
		}
		st, err := s.GetSetting(ctx, "01010100002", def.GUID)
		if err != nil || st.Aktiv || st.Seq != 2 || st.Endringsnummer != 4 || string(st.Evidence) != "" || !st.Tidspunkt.Equal(now) || st.Definition.PartKode != "P" {
			t.Fatalf("GetSetting = %+v, %v", st, err)
		}
		active, err := s.ActiveForDefinition(ctx, def.GUID, 0, 10)
		if err != nil || len(active) != 1 || active[0].Fnr != "01010100001" {
			t.Fatalf("ActiveForDefinition = %+v, %v", active, err)
		}
		forPart, err := s.ActiveForPart(ctx, "01010100001", "P")
		if err != nil || len(forPart) != 1 {
			t.Fatalf("ActiveForPart = %+v, %v", forPart, err)
		}

		// The outbox in commit order, by id, and cleared up to an id.
		pending, err := s.PendingOutbox(ctx, 0, 10)
		if err != nil || len(pending) != 4 || pending[0].ChangeID != "change-1" || string(pending[3].Payload) != "4" {
			t.Fatalf("PendingOutbox = %+v, %v", pending, err)
		}
		id, err := s.OutboxID(ctx, "change-2")
		if err != nil || id != pending[1].ID {
			t.Fatalf("OutboxID = %d, %v", id, err)
		}
		must(s.DeleteOutbox(ctx, id))
		if rest, _ := s.PendingOutbox(ctx, 0, 10); len(rest) != 2 {
			t.Fatalf("after DeleteOutbox %d events, want 2", len(rest))
		}
		if _, err := s.OutboxID(ctx, "change-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted event: %v", err)
		}

		// Subscriptions with their audit trail.
		sub := Subscription{ID: "6f1c2d3e-0000-4000-8000-0000000000d1", Subscriber: "client", WebhookURL: "https://x.example/hook", XAuth: true,
			Status: 1, CreateTime: now, Secret: "whsec_a", Filters: Filters{PartKoder: []string{"P"}}}
		must(s.CreateSubscription(ctx, sub, auditEvent("client", "created", "")))
		updated, err := s.UpdateSubscription(ctx, sub.ID, auditEvent(DispatcherActor, "disabled", "gone"), func(x *Subscription) error {
			x.Status, x.StatusReason, x.PreviousSecret, x.PreviousExpire = 3, "gone", "whsec_old", now
			return nil
		})
		must(err)
		loaded, err := s.GetSubscription(ctx, sub.ID)
		if err != nil || loaded.Status != 3 || loaded.StatusReason != "gone" || !loaded.XAuth || loaded.PreviousSecret != "whsec_old" ||
			!loaded.PreviousExpire.Equal(now) || loaded.Filters.PartKoder[0] != "P" || updated.Secret != "whsec_a" {
			t.Fatalf("GetSubscription = %+v, %v", loaded, err)
		}
		refused := errors.New("refused")
		if _, err := s.UpdateSubscription(ctx, sub.ID, auditEvent("client", "updated", ""), func(*Subscription) error { return refused }); !errors.Is(err, refused) {
			t.Fatalf("refused update: %v", err)
		}
		if list, err := s.ListSubscriptions(ctx, "client"); err != nil || len(list) != 1 {
			t.Fatalf("ListSubscriptions = %v, %v", list, err)
		}
		must(s.DeleteSubscription(ctx, sub.ID, auditEvent("client", "deleted", "")))
		if _, err := s.GetSubscription(ctx, sub.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted subscription: %v", err)
		}
		events, err := s.SubscriptionEvents(ctx, sub.ID)
		if err != nil || len(events) != 3 || events[1].Actor != DispatcherActor || events[1].Reason != "gone" || events[2].Action != "deleted" {
			t.Fatalf("SubscriptionEvents = %+v, %v", events, err)
		}

		key1, err := s.Key(ctx, "k", func() []byte { return []byte{1, 2} })
		must(err)
		key2, err := s.Key(ctx, "k", func() []byte { return []byte{3} })
		if err != nil || string(key1) != string(key2) {
			t.Fatalf("Key: %v then %v, %v", key1, key2, err)
		}
	})
}

// testSealer is a sealer under a fresh key-encryption key.
func testSealer(t *testing.T) *seal.Sealer {
	t.Helper()
	sealer, err := seal.New(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	return sealer
}

// Webhook secrets are sealed at rest, bound to their row; secrets an older version left in the clear are
// sealed by sealClearSecrets and read back the same.
func TestWebhookSecretsSealedAtRest(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		db := storetest.Open(t, cfg, "pvk", Migrations)
		s := &sqlStore{db: db, sealer: testSealer(t)}
		now := time.Now().UTC().Truncate(time.Millisecond)
		const secret, previous = "whsec_c2VhbGVkLXNlY3JldC1vbmU=", "whsec_c2VhbGVkLXNlY3JldC10d28="
		sub := Subscription{ID: "6f1c2d3e-0000-4000-8000-0000000000e1", Subscriber: "client", WebhookURL: "https://x.example/hook",
			Status: 1, CreateTime: now, Secret: secret}
		if err := s.CreateSubscription(ctx, sub, auditEvent("client", "created", "")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateSubscription(ctx, sub.ID, auditEvent("client", "rotated", ""), func(x *Subscription) error {
			x.PreviousSecret, x.PreviousExpire = previous, now.Add(time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		raw := func(id string) []byte {
			var a, b string
			var c, d []byte
			if err := db.Read.QueryRowContext(ctx, `SELECT secret, previous_secret, secret_sealed, previous_secret_sealed FROM subscriptions
				WHERE id = ?`, id).Scan(&a, &b, &c, &d); err != nil {
				t.Fatal(err)
			}
			return bytes.Join([][]byte{[]byte(a), []byte(b), c, d}, []byte("|"))
		}
		for _, plain := range []string{secret, previous, secret[6:], previous[6:]} {
			if bytes.Contains(raw(sub.ID), []byte(plain)) {
				t.Fatalf("the subscriptions table holds a webhook secret in the clear")
			}
		}
		if got, err := s.GetSubscription(ctx, sub.ID); err != nil || got.Secret != secret || got.PreviousSecret != previous {
			t.Fatalf("GetSubscription: secrets do not read back (%v)", err)
		}

		// A sealed secret moved onto another row does not open there.
		other := Subscription{ID: "6f1c2d3e-0000-4000-8000-0000000000e2", Subscriber: "client", WebhookURL: "https://x.example/hook",
			Status: 1, CreateTime: now, Secret: "whsec_b3RoZXI="}
		if err := s.CreateSubscription(ctx, other, auditEvent("client", "created", "")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Write.ExecContext(ctx, `UPDATE subscriptions SET secret_sealed = (SELECT secret_sealed FROM subscriptions WHERE id = ?)
			WHERE id = ?`, sub.ID, other.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSubscription(ctx, other.ID); !errors.Is(err, seal.ErrOpen) {
			t.Fatalf("a sealed secret moved to another row: %v, want seal.ErrOpen", err)
		}

		// A row as an older version wrote it: secrets in the clear columns.
		const old = "6f1c2d3e-0000-4000-8000-0000000000e3"
		if _, err := db.Write.ExecContext(ctx, `INSERT INTO subscriptions (id, subscriber, filters, webhook_url, x_auth, status, create_time_ms,
			status_reason, secret, previous_secret, previous_expire_ms) VALUES (?, 'client', '{}', 'https://x.example/hook', FALSE, 1, 0, '', ?, ?, 0)`,
			old, secret, previous); err != nil {
			t.Fatal(err)
		}
		n, err := s.sealClearSecrets(ctx)
		if err != nil || n != 1 {
			t.Fatalf("sealClearSecrets = %d, %v; want 1", n, err)
		}
		if n, err := s.sealClearSecrets(ctx); err != nil || n != 0 {
			t.Fatalf("sealClearSecrets again = %d, %v; want 0", n, err)
		}
		if bytes.Contains(raw(old), []byte(secret[6:])) || bytes.Contains(raw(old), []byte(previous[6:])) {
			t.Fatalf("the migrated row still holds a webhook secret in the clear")
		}
		if got, err := s.GetSubscription(ctx, old); err != nil || got.Secret != secret || got.PreviousSecret != previous {
			t.Fatalf("GetSubscription of the migrated row: secrets do not read back (%v)", err)
		}

		// Without the key-encryption key nothing is written.
		if err := (&sqlStore{db: db}).CreateSubscription(ctx, Subscription{ID: "x", Secret: secret}, auditEvent("client", "created", "")); err == nil {
			t.Fatal("a store without a sealer wrote a webhook secret")
		}
	})
}

// sekvensnummer counts one citizen's changes of one setting from 1, whatever happens to the citizen's other
// settings and to other citizens; the endringsnummer orders every change of the deployment, and the
// initial sync pages by it.
func TestStoreSekvensnummerPerSetting(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := &sqlStore{db: storetest.Open(t, cfg, "pvk", Migrations), sealer: testSealer(t)}
		defs := []Definition{
			{GUID: "6f1c2d3e-0000-4000-8000-0000000000c1", Navn: "A", PartKode: "P", TypePi: "samtykke", Omfang: []Omfang{}},
			{GUID: "6f1c2d3e-0000-4000-8000-0000000000c2", Navn: "B", PartKode: "P", TypePi: "reservasjon", Omfang: []Omfang{}},
		}
		for _, d := range defs {
			if err := s.CreateDefinition(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		var events []Setting
		event := func(st Setting) (OutboxEvent, error) {
			events = append(events, st)
			return OutboxEvent{ChangeID: fmt.Sprint("change-", st.Endringsnummer), Payload: []byte("{}")}, nil
		}
		set := func(fnr string, def int, aktiv bool) {
			t.Helper()
			w := &Write{In: Setting{Fnr: fnr, DefinitionGUID: defs[def].GUID, Aktiv: aktiv, Tidspunkt: now, ChangeTime: now}}
			if err := s.SetSettings(ctx, []*Write{w}, event); err != nil || !w.Changed {
				t.Fatalf("SetSettings: changed %v, %v", w.Changed, err)
			}
		}
		const citizen, other = "01010100001", "01010100002"
		set(citizen, 0, true)  // A: 1
		set(citizen, 1, true)  // B: 1
		set(other, 0, true)    // the other citizen's A: 1
		set(citizen, 0, false) // A: 2
		set(citizen, 0, true)  // A: 3
		set(citizen, 1, false) // B: 2
		type num struct{ seq, endringsnummer int64 }
		var got []num
		for _, e := range events {
			got = append(got, num{e.Seq, e.Endringsnummer})
		}
		if want := []num{{1, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 5}, {2, 6}}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("(sekvensnummer, endringsnummer) of the changes = %v, want %v", got, want)
		}
		for _, c := range []struct {
			fnr                 string
			def                 int
			seq, endringsnummer int64
		}{{citizen, 0, 3, 5}, {citizen, 1, 2, 6}, {other, 0, 1, 3}} {
			st, err := s.GetSetting(ctx, c.fnr, defs[c.def].GUID)
			if err != nil || st.Seq != c.seq || st.Endringsnummer != c.endringsnummer {
				t.Fatalf("GetSetting(%d) = sekvensnummer %d, endringsnummer %d, %v; want %d, %d", c.def, st.Seq, st.Endringsnummer, err,
					c.seq, c.endringsnummer)
			}
		}
		// Pages of A by endringsnummer: the other citizen (3), then the citizen (5), whose setting changed last.
		page, err := s.ActiveForDefinition(ctx, defs[0].GUID, 0, 1)
		if err != nil || len(page) != 1 || page[0].Fnr != other {
			t.Fatalf("first page = %+v, %v", page, err)
		}
		page, err = s.ActiveForDefinition(ctx, defs[0].GUID, page[0].Endringsnummer, 1)
		if err != nil || len(page) != 1 || page[0].Fnr != citizen || page[0].Seq != 3 {
			t.Fatalf("second page = %+v, %v", page, err)
		}
		if page, err = s.ActiveForDefinition(ctx, defs[0].GUID, page[0].Endringsnummer, 1); err != nil || len(page) != 0 {
			t.Fatalf("third page = %+v, %v", page, err)
		}
	})
}

// A database written before sekvensnummer counted per setting keeps its settings: each one's stream
// position becomes its endringsnummer, its sekvensnummer starts at 1, and the next change counts on from
// there and takes an endringsnummer after every earlier one.
func TestStoreMigratesSekvensnummerToEndringsnummer(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		before := store.Migrations{SQLite: sqliteMigrations[:4], Postgres: postgresMigrations[:4]}
		old, err := store.Open(ctx, cfg, "pvk", before)
		if err != nil {
			t.Fatal(err)
		}
		def := Definition{GUID: "6f1c2d3e-0000-4000-8000-0000000000c1", Navn: "A", PartKode: "P", TypePi: "samtykke", Omfang: []Omfang{}}
		if err := (&sqlStore{db: old}).CreateDefinition(ctx, def); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{
			`UPDATE sequence SET value = 41 WHERE id = 1`,
			`INSERT INTO settings (fnr, definition_guid, aktiv, tidspunkt_ms, evidence_mime, evidence, sekvensnummer, create_time_ms,
				change_time_ms) VALUES ('01010100001', '` + def.GUID + `', TRUE, 1, 'text/plain', NULL, 40, 1, 2)`,
			`INSERT INTO settings (fnr, definition_guid, aktiv, tidspunkt_ms, evidence_mime, evidence, sekvensnummer, create_time_ms,
				change_time_ms) VALUES ('01010100002', '` + def.GUID + `', TRUE, 1, '', NULL, 41, 1, 2)`,
		} {
			if _, err := old.Write.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}

		s := &sqlStore{db: storetest.Open(t, cfg, "pvk", Migrations), sealer: testSealer(t)}
		st, err := s.GetSetting(ctx, "01010100001", def.GUID)
		if err != nil || st.Seq != 1 || st.Endringsnummer != 40 || !st.Aktiv || st.EvidenceMime != "text/plain" {
			t.Fatalf("migrated setting = %+v, %v", st, err)
		}
		page, err := s.ActiveForDefinition(ctx, def.GUID, 40, 10)
		if err != nil || len(page) != 1 || page[0].Fnr != "01010100002" || page[0].Seq != 1 {
			t.Fatalf("paging after endringsnummer 40 = %+v, %v", page, err)
		}
		w := &Write{In: Setting{Fnr: "01010100001", DefinitionGUID: def.GUID, Aktiv: false, Tidspunkt: time.Now(), ChangeTime: time.Now()}}
		if err := s.SetSettings(ctx, []*Write{w}, func(Setting) (OutboxEvent, error) {
			return OutboxEvent{ChangeID: "c", Payload: []byte("{}")}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if st, err = s.GetSetting(ctx, "01010100001", def.GUID); err != nil || st.Seq != 2 || st.Endringsnummer != 42 {
			t.Fatalf("after a change: sekvensnummer %d, endringsnummer %d, %v; want 2, 42", st.Seq, st.Endringsnummer, err)
		}
	})
}

// Inclusions: a change counts the inclusion's sekvensnummer and takes the next endringsnummer with an
// outbox event; the same state again changes nothing.
func TestStoreInclusions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := &sqlStore{db: storetest.Open(t, cfg, "pvk", Migrations), sealer: testSealer(t)}
		event := func(in Inclusion) (OutboxEvent, error) {
			return OutboxEvent{ChangeID: fmt.Sprint("change-", in.Endringsnummer), Payload: []byte("{}")}, nil
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		set := func(typ string, aktiv bool) int64 {
			t.Helper()
			id, err := s.SetInclusion(ctx, Inclusion{Fnr: "01010100001", PartKode: "P", Type: typ, Aktiv: aktiv, ChangeTime: now}, event)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		if set("inkludert", true) == 0 || set("inkludert", true) != 0 || set("deltager", true) == 0 || set("inkludert", false) == 0 {
			t.Fatal("a change must return its outbox id, the same state again 0")
		}
		list, err := s.Inclusions(ctx, "01010100001", "P")
		if err != nil || len(list) != 2 || list[0].Type != "deltager" || list[0].Seq != 1 || list[0].Endringsnummer != 2 ||
			list[1].Type != "inkludert" || list[1].Aktiv || list[1].Seq != 2 || list[1].Endringsnummer != 3 || !list[1].CreateTime.Equal(now) {
			t.Fatalf("Inclusions = %+v, %v", list, err)
		}
		if pending, err := s.PendingOutbox(ctx, 0, 10); err != nil || len(pending) != 3 || pending[2].ChangeID != "change-3" {
			t.Fatalf("PendingOutbox = %+v, %v", pending, err)
		}
	})
}
