package pvk

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/store"
)

// Migrations is the pvk store's schema (append only), for SQLite and PostgreSQL. The fifth made
// sekvensnummer count per setting: a setting's stream position moved to endringsnummer, and its
// sekvensnummer starts at 1 (there is no history to count its earlier changes from).
var Migrations = store.Migrations{SQLite: sqliteMigrations, Postgres: postgresMigrations}

var sqliteMigrations = []string{`
CREATE TABLE settings_kv (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
CREATE TABLE definitions (
	guid      TEXT PRIMARY KEY,
	navn      TEXT NOT NULL,
	part_kode TEXT NOT NULL,
	type_pi   TEXT NOT NULL,
	omfang    TEXT NOT NULL
);
CREATE TABLE sequence (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value INTEGER NOT NULL
);
INSERT INTO sequence (id, value) VALUES (1, 0);
CREATE TABLE settings (
	fnr              TEXT NOT NULL,
	definition_guid  TEXT NOT NULL REFERENCES definitions(guid),
	aktiv            INTEGER NOT NULL,
	tidspunkt_ms     INTEGER NOT NULL,
	evidence_mime    TEXT NOT NULL,
	evidence         BLOB,
	sekvensnummer    INTEGER NOT NULL UNIQUE,
	create_time_ms   INTEGER NOT NULL,
	change_time_ms   INTEGER NOT NULL,
	PRIMARY KEY (fnr, definition_guid)
) WITHOUT ROWID;
CREATE INDEX settings_active ON settings(definition_guid, aktiv, sekvensnummer);
CREATE TABLE outbox (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	change_id      TEXT NOT NULL UNIQUE,
	partition      INTEGER NOT NULL,
	payload        BLOB NOT NULL,
	create_time_ms INTEGER NOT NULL
);
`, `
CREATE TABLE subscriptions (
	id             TEXT PRIMARY KEY,
	subscriber     TEXT NOT NULL,
	filters        TEXT NOT NULL,
	webhook_url    TEXT NOT NULL,
	x_auth         INTEGER NOT NULL,
	status         INTEGER NOT NULL,
	create_time_ms INTEGER NOT NULL
);
CREATE INDEX subscriptions_subscriber ON subscriptions(subscriber);
`, `
ALTER TABLE subscriptions ADD COLUMN secret TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN previous_expire_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';
CREATE TABLE subscription_events (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	subscription_id TEXT NOT NULL,
	time_ms         INTEGER NOT NULL,
	actor           TEXT NOT NULL,
	action          TEXT NOT NULL,
	reason          TEXT NOT NULL
);
CREATE INDEX subscription_events_subscription ON subscription_events(subscription_id, id);
`, `
ALTER TABLE subscriptions ADD COLUMN secret_sealed BLOB NOT NULL DEFAULT x'';
ALTER TABLE subscriptions ADD COLUMN previous_secret_sealed BLOB NOT NULL DEFAULT x'';
`, `
CREATE TABLE settings_endringsnummer (
	fnr              TEXT NOT NULL,
	definition_guid  TEXT NOT NULL REFERENCES definitions(guid),
	aktiv            INTEGER NOT NULL,
	tidspunkt_ms     INTEGER NOT NULL,
	evidence_mime    TEXT NOT NULL,
	evidence         BLOB,
	sekvensnummer    INTEGER NOT NULL,
	endringsnummer   INTEGER NOT NULL UNIQUE,
	create_time_ms   INTEGER NOT NULL,
	change_time_ms   INTEGER NOT NULL,
	PRIMARY KEY (fnr, definition_guid)
) WITHOUT ROWID;
INSERT INTO settings_endringsnummer (fnr, definition_guid, aktiv, tidspunkt_ms, evidence_mime, evidence, sekvensnummer, endringsnummer,
	create_time_ms, change_time_ms)
	SELECT fnr, definition_guid, aktiv, tidspunkt_ms, evidence_mime, evidence, 1, sekvensnummer, create_time_ms, change_time_ms FROM settings;
DROP TABLE settings;
ALTER TABLE settings_endringsnummer RENAME TO settings;
CREATE INDEX settings_active ON settings(definition_guid, aktiv, endringsnummer);
`, `
CREATE TABLE inclusions (
	fnr              TEXT NOT NULL,
	part_kode        TEXT NOT NULL,
	inkludering_type TEXT NOT NULL,
	aktiv            INTEGER NOT NULL,
	sekvensnummer    INTEGER NOT NULL,
	endringsnummer   INTEGER NOT NULL UNIQUE,
	create_time_ms   INTEGER NOT NULL,
	change_time_ms   INTEGER NOT NULL,
	PRIMARY KEY (fnr, part_kode, inkludering_type)
) WITHOUT ROWID;
`}

var postgresMigrations = []string{`
CREATE TABLE settings_kv (
	name  TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);
CREATE TABLE definitions (
	guid      TEXT PRIMARY KEY,
	navn      TEXT NOT NULL,
	part_kode TEXT NOT NULL,
	type_pi   TEXT NOT NULL,
	omfang    TEXT NOT NULL
);
CREATE TABLE sequence (
	id    INTEGER PRIMARY KEY CHECK (id = 1),
	value BIGINT NOT NULL
);
INSERT INTO sequence (id, value) VALUES (1, 0);
CREATE TABLE settings (
	fnr              TEXT NOT NULL,
	definition_guid  TEXT NOT NULL REFERENCES definitions(guid),
	aktiv            BOOLEAN NOT NULL,
	tidspunkt_ms     BIGINT NOT NULL,
	evidence_mime    TEXT NOT NULL,
	evidence         BYTEA,
	sekvensnummer    BIGINT NOT NULL UNIQUE,
	create_time_ms   BIGINT NOT NULL,
	change_time_ms   BIGINT NOT NULL,
	PRIMARY KEY (fnr, definition_guid)
);
CREATE INDEX settings_active ON settings(definition_guid, aktiv, sekvensnummer);
CREATE TABLE outbox (
	id             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	change_id      TEXT NOT NULL UNIQUE,
	partition      INTEGER NOT NULL,
	payload        BYTEA NOT NULL,
	create_time_ms BIGINT NOT NULL
);
`, `
CREATE TABLE subscriptions (
	id             TEXT PRIMARY KEY,
	subscriber     TEXT NOT NULL,
	filters        TEXT NOT NULL,
	webhook_url    TEXT NOT NULL,
	x_auth         BOOLEAN NOT NULL,
	status         INTEGER NOT NULL,
	create_time_ms BIGINT NOT NULL
);
CREATE INDEX subscriptions_subscriber ON subscriptions(subscriber);
`, `
ALTER TABLE subscriptions ADD COLUMN secret TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN previous_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN previous_expire_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';
CREATE TABLE subscription_events (
	id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	subscription_id TEXT NOT NULL,
	time_ms         BIGINT NOT NULL,
	actor           TEXT NOT NULL,
	action          TEXT NOT NULL,
	reason          TEXT NOT NULL
);
CREATE INDEX subscription_events_subscription ON subscription_events(subscription_id, id);
`, `
ALTER TABLE subscriptions ADD COLUMN secret_sealed BYTEA NOT NULL DEFAULT '';
ALTER TABLE subscriptions ADD COLUMN previous_secret_sealed BYTEA NOT NULL DEFAULT '';
`, `
ALTER TABLE settings DROP CONSTRAINT settings_sekvensnummer_key;
ALTER TABLE settings ADD COLUMN endringsnummer BIGINT;
UPDATE settings SET endringsnummer = sekvensnummer, sekvensnummer = 1;
ALTER TABLE settings ALTER COLUMN endringsnummer SET NOT NULL;
ALTER TABLE settings ADD CONSTRAINT settings_endringsnummer_key UNIQUE (endringsnummer);
ALTER TABLE settings ALTER COLUMN sekvensnummer TYPE INTEGER;
DROP INDEX settings_active;
CREATE INDEX settings_active ON settings(definition_guid, aktiv, endringsnummer);
`, `
CREATE TABLE inclusions (
	fnr              TEXT NOT NULL,
	part_kode        TEXT NOT NULL,
	inkludering_type TEXT NOT NULL,
	aktiv            BOOLEAN NOT NULL,
	sekvensnummer    INTEGER NOT NULL,
	endringsnummer   BIGINT NOT NULL UNIQUE,
	create_time_ms   BIGINT NOT NULL,
	change_time_ms   BIGINT NOT NULL,
	PRIMARY KEY (fnr, part_kode, inkludering_type)
);
`}

// Definition is a privacy setting definition.
type Definition struct {
	GUID     string
	Navn     string
	PartKode string
	TypePi   string
	Omfang   []Omfang
}

// Omfang is one element of a definition's scope.
type Omfang struct {
	Kode, Logisk, Presisering string
}

// Setting is a citizen's setting for one definition, with the definition's names.
type Setting struct {
	Fnr            string
	DefinitionGUID string
	Aktiv          bool
	Tidspunkt      time.Time
	EvidenceMime   string
	Evidence       []byte
	// Seq is the sekvensnummer: it counts this citizen's changes of this setting, from 1.
	Seq int64
	// Endringsnummer is the position of the setting's last change in the deployment's change stream: it
	// orders changes across citizens and definitions (replay, paging, delivery order).
	Endringsnummer int64
	CreateTime     time.Time
	ChangeTime     time.Time
	Definition     Definition
}

// Subscription is a subscriber's interest in changes.
type Subscription struct {
	ID         string
	Subscriber string
	Filters    Filters
	WebhookURL string // empty for pull delivery
	XAuth      bool
	Status     int32 // pvkv1.SubscriptionStatus
	CreateTime time.Time
	// StatusReason says why the service disabled the subscription.
	StatusReason string
	// Secret signs webhook calls; PreviousSecret signs beside it until PreviousExpire after a rotation.
	Secret, PreviousSecret string
	PreviousExpire         time.Time
}

// SubscriptionEvent is an entry of a subscription's audit trail.
type SubscriptionEvent struct {
	Time                  time.Time
	Actor, Action, Reason string
}

// Filters select changes; an empty list matches everything.
type Filters struct {
	DefinitionGUIDs []string `json:"definisjonGuids,omitempty"`
	TypesPi         []string `json:"typePis,omitempty"`
	PartKoder       []string `json:"partKoder,omitempty"`
}

// Write is one setting write of a batch, with its result.
type Write struct {
	In      Setting
	Changed bool
	// OutboxID is the id of the change's outbox event when Changed.
	OutboxID int64
}

// OutboxEvent is a change waiting for the relay.
type OutboxEvent struct {
	ID        int64
	ChangeID  string
	Partition int
	Payload   []byte
}

// Store is PVK's storage contract.
type Store interface {
	// Key returns the named secret key, creating it first when there is none.
	Key(ctx context.Context, name string, create func() []byte) ([]byte, error)
	// CreateDefinition stores d; ErrAlreadyExists when the guid is taken.
	CreateDefinition(ctx context.Context, d Definition) error
	// GetDefinition returns a definition; ErrNotFound when there is none.
	GetDefinition(ctx context.Context, guid string) (Definition, error)
	// ListDefinitions returns every definition.
	ListDefinitions(ctx context.Context) ([]Definition, error)
	// SetSettings applies the writes in order in one transaction: each stores its setting unless the
	// stored one has the same aktiv; a change counts the setting's sekvensnummer up (from 1), takes the
	// next endringsnummer, stores event(stored) in the outbox and sets the write's Changed.
	SetSettings(ctx context.Context, writes []*Write, event func(Setting) (OutboxEvent, error)) error
	// PendingOutbox returns up to limit outbox events after the one with id after, in commit order.
	PendingOutbox(ctx context.Context, after int64, limit int) ([]OutboxEvent, error)
	// OutboxID returns the id of the outbox event of a change; ErrNotFound when there is none.
	OutboxID(ctx context.Context, changeID string) (int64, error)
	// DeleteOutbox removes published outbox events up to and including id.
	DeleteOutbox(ctx context.Context, upTo int64) error
	// CreateSubscription stores a subscription, with its audit event.
	CreateSubscription(ctx context.Context, s Subscription, ev SubscriptionEvent) error
	// GetSubscription returns a subscription; ErrNotFound when there is none.
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	// ListSubscriptions returns a subscriber's subscriptions (every one when subscriber is empty).
	ListSubscriptions(ctx context.Context, subscriber string) ([]Subscription, error)
	// UpdateSubscription applies change to a subscription in a transaction and stores its filters, webhook,
	// status and secrets; ErrNotFound when there is none, change's error when it refuses.
	// The audit event is stored in the same transaction.
	UpdateSubscription(ctx context.Context, id string, ev SubscriptionEvent, change func(*Subscription) error) (Subscription, error)
	// SubscriptionEvents returns a subscription's audit trail, oldest first.
	SubscriptionEvents(ctx context.Context, id string) ([]SubscriptionEvent, error)
	// DeleteSubscription removes a subscription; its audit trail stays, with the event.
	DeleteSubscription(ctx context.Context, id string, ev SubscriptionEvent) error
	// GetSetting returns a citizen's setting; ErrNotFound when there is none.
	GetSetting(ctx context.Context, fnr, guid string) (Setting, error)
	// ActiveForPart returns a citizen's active settings of definitions owned by partKode.
	ActiveForPart(ctx context.Context, fnr, partKode string) ([]Setting, error)
	// ActiveForDefinition returns active settings of a definition with endringsnummer above after, in
	// endringsnummer order, at most limit.
	ActiveForDefinition(ctx context.Context, guid string, after int64, limit int) ([]Setting, error)
	// SetInclusion stores an inclusion unless the stored one has the same aktiv; a change counts its
	// sekvensnummer up, takes the next endringsnummer and stores event(stored) in the outbox, whose id it
	// returns (0 when nothing changed).
	SetInclusion(ctx context.Context, in Inclusion, event func(Inclusion) (OutboxEvent, error)) (int64, error)
	// Inclusions returns a citizen's inclusions with a party, by inkluderingType.
	Inclusions(ctx context.Context, fnr, partKode string) ([]Inclusion, error)
}

// sqlStore keeps webhook secrets sealed under the key-encryption key (secret_sealed and
// previous_secret_sealed, bound to the subscription and the column); the clear secret and previous_secret
// columns of older versions are kept empty (sealClearSecrets moves what is left in them).
type sqlStore struct {
	db     *store.DB
	sealer *seal.Sealer
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Key(ctx context.Context, name string, create func() []byte) ([]byte, error) {
	return s.db.Setting(ctx, name, create)
}

func (s *sqlStore) CreateDefinition(ctx context.Context, d Definition) error {
	omfang, err := json.Marshal(d.Omfang)
	if err != nil {
		return err
	}
	_, err = s.db.Write.ExecContext(ctx, `INSERT INTO definitions (guid, navn, part_kode, type_pi, omfang) VALUES (?, ?, ?, ?, ?)`,
		d.GUID, d.Navn, d.PartKode, d.TypePi, string(omfang))
	if store.IsUniqueViolation(err) {
		return store.ErrAlreadyExists
	}
	return err
}

const definitionSelect = `SELECT guid, navn, part_kode, type_pi, omfang FROM definitions`

func scanDefinition(sc store.Scanner) (Definition, error) {
	var d Definition
	var omfang string
	if err := sc.Scan(&d.GUID, &d.Navn, &d.PartKode, &d.TypePi, &omfang); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Definition{}, store.ErrNotFound
		}
		return Definition{}, err
	}
	return d, json.Unmarshal([]byte(omfang), &d.Omfang)
}

func (s *sqlStore) GetDefinition(ctx context.Context, guid string) (Definition, error) {
	return scanDefinition(s.db.Read.QueryRowContext(ctx, definitionSelect+` WHERE guid = ?`, guid))
}

func (s *sqlStore) ListDefinitions(ctx context.Context) ([]Definition, error) {
	return store.Query(ctx, s.db, definitionSelect+` ORDER BY navn, guid`, nil, scanDefinition)
}

func (s *sqlStore) SetSettings(ctx context.Context, writes []*Write, event func(Setting) (OutboxEvent, error)) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		// Each write decides on the stored setting (is it a change?), so batches run one at a time: the
		// sequence row (the endringsnummer), which every change takes anyway, is locked first. Two replicas' writes of the same
		// new setting are then one change, not two.
		if _, err := tx.ExecContext(ctx, `SELECT value FROM sequence WHERE id = 1`+s.db.ForUpdate()); err != nil {
			return err
		}
		st, err := prepareSettingWrites(ctx, tx)
		if err != nil {
			return err
		}
		defer st.close()
		for _, w := range writes {
			id, err := st.set(ctx, w.In, event)
			if err != nil {
				return err
			}
			w.Changed, w.OutboxID = id != 0, id
		}
		return nil
	})
}

// settingWrites are the statements of a setting write, prepared once for a transaction's batch: parsing
// them for every write took a fifth of the CPU under load.
type settingWrites struct {
	get, next, upsert, outbox *sql.Stmt
}

func prepareSettingWrites(ctx context.Context, tx *sql.Tx) (*settingWrites, error) {
	st := &settingWrites{}
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&st.get, `SELECT aktiv, create_time_ms, sekvensnummer FROM settings WHERE fnr = ? AND definition_guid = ?`},
		{&st.next, `UPDATE sequence SET value = value + 1 WHERE id = 1 RETURNING value`},
		{&st.upsert, `INSERT INTO settings (fnr, definition_guid, aktiv, tidspunkt_ms, evidence_mime, evidence,
			sekvensnummer, endringsnummer, create_time_ms, change_time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (fnr, definition_guid) DO UPDATE SET aktiv = excluded.aktiv, tidspunkt_ms = excluded.tidspunkt_ms,
			evidence_mime = excluded.evidence_mime, evidence = excluded.evidence, sekvensnummer = excluded.sekvensnummer,
			endringsnummer = excluded.endringsnummer, change_time_ms = excluded.change_time_ms`},
		{&st.outbox, `INSERT INTO outbox (change_id, partition, payload, create_time_ms) VALUES (?, ?, ?, ?) RETURNING id`},
	} {
		var err error
		if *p.stmt, err = tx.PrepareContext(ctx, p.query); err != nil {
			st.close()
			return nil, err
		}
	}
	return st, nil
}

func (st *settingWrites) close() {
	for _, s := range []*sql.Stmt{st.get, st.next, st.upsert, st.outbox} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// set is one write of SetSettings; it returns the id of the change's outbox event, 0 when the setting
// already had this state.
func (st *settingWrites) set(ctx context.Context, in Setting, event func(Setting) (OutboxEvent, error)) (int64, error) {
	var aktiv bool
	var created, seq int64
	err := st.get.QueryRowContext(ctx, in.Fnr, in.DefinitionGUID).Scan(&aktiv, &created, &seq)
	switch {
	case err == nil && aktiv == in.Aktiv:
		return 0, nil
	case err == nil:
		in.CreateTime, in.Seq = time.UnixMilli(created), seq+1
	case errors.Is(err, sql.ErrNoRows):
		in.CreateTime, in.Seq = in.ChangeTime, 1
	default:
		return 0, err
	}
	if in.Seq > math.MaxInt32 {
		return 0, fmt.Errorf("pvk store: a setting's sekvensnummer would pass %d", math.MaxInt32)
	}
	if err := st.next.QueryRowContext(ctx).Scan(&in.Endringsnummer); err != nil {
		return 0, err
	}
	if _, err := st.upsert.ExecContext(ctx, in.Fnr, in.DefinitionGUID, in.Aktiv, in.Tidspunkt.UnixMilli(), in.EvidenceMime,
		in.Evidence, in.Seq, in.Endringsnummer, in.CreateTime.UnixMilli(), in.ChangeTime.UnixMilli()); err != nil {
		return 0, err
	}
	ev, err := event(in)
	if err != nil {
		return 0, err
	}
	var id int64
	err = st.outbox.QueryRowContext(ctx, ev.ChangeID, ev.Partition, ev.Payload, in.ChangeTime.UnixMilli()).Scan(&id)
	return id, err
}

func (s *sqlStore) PendingOutbox(ctx context.Context, after int64, limit int) ([]OutboxEvent, error) {
	return store.Query(ctx, s.db, `SELECT id, change_id, partition, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?`, []any{after, limit},
		func(sc store.Scanner) (OutboxEvent, error) {
			var ev OutboxEvent
			err := sc.Scan(&ev.ID, &ev.ChangeID, &ev.Partition, &ev.Payload)
			return ev, err
		})
}

func (s *sqlStore) OutboxID(ctx context.Context, changeID string) (int64, error) {
	var id int64
	err := s.db.Read.QueryRowContext(ctx, `SELECT id FROM outbox WHERE change_id = ?`, changeID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrNotFound
	}
	return id, err
}

func (s *sqlStore) DeleteOutbox(ctx context.Context, upTo int64) error {
	_, err := s.db.Write.ExecContext(ctx, `DELETE FROM outbox WHERE id <= ?`, upTo)
	return err
}

func (s *sqlStore) CreateSubscription(ctx context.Context, sub Subscription, ev SubscriptionEvent) error {
	filters, err := json.Marshal(sub.Filters)
	if err != nil {
		return err
	}
	secret, previous, err := s.sealSecrets(sub.ID, sub.Secret, sub.PreviousSecret)
	if err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (id, subscriber, filters, webhook_url, x_auth, status, create_time_ms,
			status_reason, secret_sealed, previous_secret_sealed, previous_expire_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.Subscriber, string(filters), sub.WebhookURL, sub.XAuth, sub.Status, sub.CreateTime.UnixMilli(), sub.StatusReason,
			secret, previous, sub.PreviousExpire.UnixMilli())
		if err != nil {
			return err
		}
		return addSubscriptionEvent(ctx, tx, sub.ID, ev)
	})
}

// addSubscriptionEvent appends to a subscription's audit trail.
func addSubscriptionEvent(ctx context.Context, tx *sql.Tx, id string, ev SubscriptionEvent) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO subscription_events (subscription_id, time_ms, actor, action, reason) VALUES (?, ?, ?, ?, ?)`,
		id, ev.Time.UnixMilli(), ev.Actor, ev.Action, ev.Reason)
	return err
}

func (s *sqlStore) SubscriptionEvents(ctx context.Context, id string) ([]SubscriptionEvent, error) {
	return store.Query(ctx, s.db, `SELECT time_ms, actor, action, reason FROM subscription_events WHERE subscription_id = ? ORDER BY id`,
		[]any{id}, func(sc store.Scanner) (SubscriptionEvent, error) {
			var ev SubscriptionEvent
			var at int64
			err := sc.Scan(&at, &ev.Actor, &ev.Action, &ev.Reason)
			ev.Time = time.UnixMilli(at).UTC()
			return ev, err
		})
}

const subscriptionSelect = `SELECT id, subscriber, filters, webhook_url, x_auth, status, create_time_ms, status_reason, secret,
	previous_secret, secret_sealed, previous_secret_sealed, previous_expire_ms FROM subscriptions`

func (s *sqlStore) scanSubscription(sc store.Scanner) (Subscription, error) {
	var sub Subscription
	var filters string
	var created, previousExpire int64
	var secret, previous []byte
	if err := sc.Scan(&sub.ID, &sub.Subscriber, &filters, &sub.WebhookURL, &sub.XAuth, &sub.Status, &created, &sub.StatusReason,
		&sub.Secret, &sub.PreviousSecret, &secret, &previous, &previousExpire); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Subscription{}, store.ErrNotFound
		}
		return Subscription{}, err
	}
	// A clear secret is read as it is only when a version without sealing wrote it after this one's
	// start (rolling upgrades); the next start seals it.
	for _, f := range []struct {
		sealed []byte
		column string
		out    *string
	}{{secret, "secret", &sub.Secret}, {previous, "previous_secret", &sub.PreviousSecret}} {
		if len(f.sealed) == 0 {
			continue
		}
		plain, err := s.openSecret(sub.ID, f.column, f.sealed)
		if err != nil {
			return Subscription{}, err
		}
		*f.out = plain
	}
	sub.CreateTime, sub.PreviousExpire = time.UnixMilli(created).UTC(), time.UnixMilli(previousExpire).UTC()
	return sub, json.Unmarshal([]byte(filters), &sub.Filters)
}

// secretAAD binds a sealed webhook secret to its subscription and column, so it cannot be moved.
func secretAAD(id, column string) []byte { return []byte("pvk/subscriptions/" + id + "/" + column) }

// sealSecrets seals a subscription's secrets (an empty secret stays empty).
func (s *sqlStore) sealSecrets(id, secret, previous string) (sealedSecret, sealedPrevious []byte, err error) {
	if s.sealer == nil {
		return nil, nil, errors.New("pvk store: webhook secrets need the key-encryption key")
	}
	sealedSecret, sealedPrevious = []byte{}, []byte{}
	if secret != "" {
		sealedSecret = s.sealer.Seal([]byte(secret), secretAAD(id, "secret"))
	}
	if previous != "" {
		sealedPrevious = s.sealer.Seal([]byte(previous), secretAAD(id, "previous_secret"))
	}
	return sealedSecret, sealedPrevious, nil
}

// openSecret opens a sealed secret of a subscription's column.
func (s *sqlStore) openSecret(id, column string, sealed []byte) (string, error) {
	if s.sealer == nil {
		return "", errors.New("pvk store: webhook secrets need the key-encryption key")
	}
	plain, err := s.sealer.Open(sealed, secretAAD(id, column))
	if err != nil {
		return "", fmt.Errorf("webhook secret of subscription %s: %w", id, err)
	}
	return string(plain), nil
}

// sealClearSecrets seals the webhook secrets an older version stored in the clear, and empties the
// clear columns, in one transaction. It runs at every start; once done, it finds nothing to do.
func (s *sqlStore) sealClearSecrets(ctx context.Context) (int, error) {
	type clear struct{ id, secret, previous string }
	n := 0
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, secret, previous_secret FROM subscriptions WHERE secret <> '' OR previous_secret <> ''`+
			s.db.ForUpdate())
		if err != nil {
			return err
		}
		var found []clear
		for rows.Next() {
			var c clear
			if err := rows.Scan(&c.id, &c.secret, &c.previous); err != nil {
				_ = rows.Close()
				return err
			}
			found = append(found, c)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, c := range found {
			secret, previous, err := s.sealSecrets(c.id, c.secret, c.previous)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE subscriptions SET secret_sealed = ?, previous_secret_sealed = ?, secret = '',
				previous_secret = '' WHERE id = ?`, secret, previous, c.id); err != nil {
				return err
			}
		}
		n = len(found)
		return nil
	})
	return n, err
}

func (s *sqlStore) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	return s.scanSubscription(s.db.Read.QueryRowContext(ctx, subscriptionSelect+` WHERE id = ?`, id))
}

func (s *sqlStore) ListSubscriptions(ctx context.Context, subscriber string) ([]Subscription, error) {
	return store.Query(ctx, s.db, subscriptionSelect+` WHERE ? = '' OR subscriber = ? ORDER BY create_time_ms, id`,
		[]any{subscriber, subscriber}, s.scanSubscription)
}

func (s *sqlStore) UpdateSubscription(ctx context.Context, id string, ev SubscriptionEvent, change func(*Subscription) error) (Subscription, error) {
	var sub Subscription
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var err error
		if sub, err = s.scanSubscription(tx.QueryRowContext(ctx, subscriptionSelect+` WHERE id = ?`+s.db.ForUpdate(), id)); err != nil {
			return err
		}
		if err := change(&sub); err != nil {
			return err
		}
		filters, err := json.Marshal(sub.Filters)
		if err != nil {
			return err
		}
		secret, previous, err := s.sealSecrets(id, sub.Secret, sub.PreviousSecret)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET filters = ?, webhook_url = ?, x_auth = ?, status = ?, status_reason = ?,
			secret = '', previous_secret = '', secret_sealed = ?, previous_secret_sealed = ?, previous_expire_ms = ? WHERE id = ?`,
			string(filters), sub.WebhookURL, sub.XAuth, sub.Status, sub.StatusReason, secret, previous,
			sub.PreviousExpire.UnixMilli(), id)
		if err != nil {
			return err
		}
		return addSubscriptionEvent(ctx, tx, id, ev)
	})
	return sub, err
}

func (s *sqlStore) DeleteSubscription(ctx context.Context, id string, ev SubscriptionEvent) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE id = ?`, id); err != nil {
			return err
		}
		return addSubscriptionEvent(ctx, tx, id, ev)
	})
}

const settingSelect = `SELECT s.fnr, s.definition_guid, s.aktiv, s.tidspunkt_ms, s.evidence_mime, s.sekvensnummer, s.endringsnummer,
	s.create_time_ms, s.change_time_ms, d.navn, d.part_kode, d.type_pi FROM settings s JOIN definitions d ON d.guid = s.definition_guid`

func scanSetting(sc store.Scanner) (Setting, error) {
	var st Setting
	var tidspunkt, created, changed int64
	err := sc.Scan(&st.Fnr, &st.DefinitionGUID, &st.Aktiv, &tidspunkt, &st.EvidenceMime, &st.Seq, &st.Endringsnummer, &created, &changed,
		&st.Definition.Navn, &st.Definition.PartKode, &st.Definition.TypePi)
	if errors.Is(err, sql.ErrNoRows) {
		return Setting{}, store.ErrNotFound
	}
	st.Definition.GUID = st.DefinitionGUID
	st.Tidspunkt, st.CreateTime, st.ChangeTime = time.UnixMilli(tidspunkt).UTC(), time.UnixMilli(created).UTC(), time.UnixMilli(changed).UTC()
	return st, err
}

func (s *sqlStore) GetSetting(ctx context.Context, fnr, guid string) (Setting, error) {
	return scanSetting(s.db.Read.QueryRowContext(ctx, settingSelect+` WHERE s.fnr = ? AND s.definition_guid = ?`, fnr, guid))
}

func (s *sqlStore) ActiveForPart(ctx context.Context, fnr, partKode string) ([]Setting, error) {
	return store.Query(ctx, s.db, settingSelect+` WHERE s.fnr = ? AND d.part_kode = ? AND s.aktiv = TRUE ORDER BY s.endringsnummer`,
		[]any{fnr, partKode}, scanSetting)
}

func (s *sqlStore) ActiveForDefinition(ctx context.Context, guid string, after int64, limit int) ([]Setting, error) {
	return store.Query(ctx, s.db, settingSelect+` WHERE s.definition_guid = ? AND s.aktiv = TRUE AND s.endringsnummer > ?
		ORDER BY s.endringsnummer LIMIT ?`, []any{guid, after, limit}, scanSetting)
}
