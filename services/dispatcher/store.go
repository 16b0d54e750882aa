package dispatcher

import (
	"context"
	"database/sql"
	"time"

	"github.com/hnsec/hnsec/pkg/store"
)

// migrations of dispatcher.db (append only).
var migrations = []string{`
CREATE TABLE parked (
	subscription_id  TEXT NOT NULL,
	change_id        TEXT NOT NULL,
	citizen_key      TEXT NOT NULL,
	sekvensnummer    INTEGER NOT NULL,
	payload          BLOB NOT NULL,
	event_time_ms    INTEGER NOT NULL,
	attempts         INTEGER NOT NULL,
	next_attempt_ms  INTEGER NOT NULL,
	dead             INTEGER NOT NULL,
	dead_time_ms     INTEGER NOT NULL,
	last_error_class TEXT NOT NULL,
	last_status_code INTEGER NOT NULL,
	PRIMARY KEY (subscription_id, change_id)
);
CREATE INDEX parked_citizen ON parked(subscription_id, dead, citizen_key, sekvensnummer);
CREATE TABLE attempts (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	subscription_id  TEXT NOT NULL,
	change_id        TEXT NOT NULL,
	sekvensnummer    INTEGER NOT NULL,
	attempt          INTEGER NOT NULL,
	time_ms          INTEGER NOT NULL,
	status_code      INTEGER NOT NULL,
	latency_us       INTEGER NOT NULL,
	error_class      TEXT NOT NULL
);
CREATE INDEX attempts_subscription ON attempts(subscription_id, id);
CREATE INDEX attempts_time ON attempts(time_ms);
`, `
CREATE TABLE settings_kv (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
`}

// change is one change on its way to one subscription.
type change struct {
	ChangeID      string
	CitizenKey    string
	Sekvensnummer int64
	Payload       []byte
	EventTime     time.Time
}

// parkedChange is a change waiting in the database for its next attempt, or dead.
type parkedChange struct {
	change
	Attempts       int
	NextAttempt    time.Time
	Dead           bool
	DeadTime       time.Time
	LastErrorClass string
	LastStatusCode int
}

// attempt is one entry of the delivery log.
type attempt struct {
	SubscriptionID string
	ChangeID       string
	Sekvensnummer  int64
	Attempt        int
	Time           time.Time
	StatusCode     int
	Latency        time.Duration
	ErrorClass     string
}

// sqlStore is the dispatcher's database.
type sqlStore struct{ db *store.DB }

// park stores a change for a later attempt; a change parked already (after a crash between parking and
// acknowledging its message) stays as it is.
func (s *sqlStore) park(ctx context.Context, sub string, p parkedChange) error {
	_, err := s.db.Write.ExecContext(ctx, `INSERT INTO parked (subscription_id, change_id, citizen_key, sekvensnummer, payload,
		event_time_ms, attempts, next_attempt_ms, dead, dead_time_ms, last_error_class, last_status_code)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?) ON CONFLICT DO NOTHING`, sub, p.ChangeID, p.CitizenKey, p.Sekvensnummer, p.Payload,
		p.EventTime.UnixMilli(), p.Attempts, p.NextAttempt.UnixMilli(), p.LastErrorClass, p.LastStatusCode)
	return err
}

// parkedCitizens returns the citizens of a subscription with changes waiting.
func (s *sqlStore) parkedCitizens(ctx context.Context, sub string) ([]string, error) {
	return store.Query(ctx, s.db, `SELECT DISTINCT citizen_key FROM parked WHERE subscription_id = ? AND dead = 0`, []any{sub},
		func(sc store.Scanner) (string, error) {
			var k string
			return k, sc.Scan(&k)
		})
}

const parkedSelect = `SELECT change_id, citizen_key, sekvensnummer, payload, event_time_ms, attempts, next_attempt_ms, dead,
	dead_time_ms, last_error_class, last_status_code FROM parked`

func scanParked(sc store.Scanner) (parkedChange, error) {
	var p parkedChange
	var event, next, dead int64
	err := sc.Scan(&p.ChangeID, &p.CitizenKey, &p.Sekvensnummer, &p.Payload, &event, &p.Attempts, &next, &p.Dead, &dead,
		&p.LastErrorClass, &p.LastStatusCode)
	p.EventTime, p.NextAttempt, p.DeadTime = time.UnixMilli(event), time.UnixMilli(next), time.UnixMilli(dead).UTC()
	return p, err
}

// dueHeads returns, for each citizen of a subscription, its first waiting change when its next attempt is
// due: a citizen's later changes wait behind the first.
func (s *sqlStore) dueHeads(ctx context.Context, sub string, now time.Time, limit int) ([]parkedChange, error) {
	return store.Query(ctx, s.db, parkedSelect+` p WHERE subscription_id = ? AND dead = 0 AND next_attempt_ms <= ?
		AND NOT EXISTS (SELECT 1 FROM parked q WHERE q.subscription_id = p.subscription_id AND q.dead = 0
			AND q.citizen_key = p.citizen_key AND q.sekvensnummer < p.sekvensnummer)
		ORDER BY sekvensnummer LIMIT ?`, []any{sub, now.UnixMilli(), limit}, scanParked)
}

// head returns a citizen's first waiting change; ErrNotFound when none waits.
func (s *sqlStore) head(ctx context.Context, sub, citizen string) (parkedChange, error) {
	list, err := store.Query(ctx, s.db, parkedSelect+` WHERE subscription_id = ? AND dead = 0 AND citizen_key = ?
		ORDER BY sekvensnummer LIMIT 1`, []any{sub, citizen}, scanParked)
	if err == nil && len(list) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return parkedChange{}, err
	}
	return list[0], nil
}

// delivered removes a parked change.
func (s *sqlStore) delivered(ctx context.Context, sub, changeID string) error {
	_, err := s.db.Write.ExecContext(ctx, `DELETE FROM parked WHERE subscription_id = ? AND change_id = ?`, sub, changeID)
	return err
}

// failed records a parked change's failed attempt: its next attempt, or its death.
func (s *sqlStore) failed(ctx context.Context, sub string, p parkedChange) error {
	_, err := s.db.Write.ExecContext(ctx, `UPDATE parked SET attempts = ?, next_attempt_ms = ?, dead = ?, dead_time_ms = ?,
		last_error_class = ?, last_status_code = ? WHERE subscription_id = ? AND change_id = ?`, p.Attempts, p.NextAttempt.UnixMilli(),
		p.Dead, p.DeadTime.UnixMilli(), p.LastErrorClass, p.LastStatusCode, sub, p.ChangeID)
	return err
}

// deadLetters returns a page of a subscription's dead letters, oldest first, after the one (dead time, change
// id) named by after.
func (s *sqlStore) deadLetters(ctx context.Context, sub string, afterTime int64, afterID string, limit int) ([]parkedChange, error) {
	return store.Query(ctx, s.db, parkedSelect+` WHERE subscription_id = ? AND dead = 1 AND (dead_time_ms, change_id) > (?, ?)
		ORDER BY dead_time_ms, change_id LIMIT ?`, []any{sub, afterTime, afterID, limit}, scanParked)
}

// replay queues dead letters again: one by change id, or all that died at or after since.
func (s *sqlStore) replay(ctx context.Context, sub, changeID string, since time.Time) (int64, error) {
	res, err := s.db.Write.ExecContext(ctx, `UPDATE parked SET dead = 0, dead_time_ms = 0, attempts = 0, next_attempt_ms = 0
		WHERE subscription_id = ? AND dead = 1 AND (change_id = ? OR (? = '' AND dead_time_ms >= ?))`,
		sub, changeID, changeID, since.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// logAttempts appends attempts to the delivery log.
func (s *sqlStore) logAttempts(ctx context.Context, list []attempt) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO attempts (subscription_id, change_id, sekvensnummer, attempt, time_ms,
			status_code, latency_us, error_class) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, a := range list {
			if _, err := stmt.ExecContext(ctx, a.SubscriptionID, a.ChangeID, a.Sekvensnummer, a.Attempt, a.Time.UnixMilli(),
				a.StatusCode, a.Latency.Microseconds(), a.ErrorClass); err != nil {
				return err
			}
		}
		return nil
	})
}

// attempts returns a page of a subscription's delivery log, newest first, before the entry id before (0:
// from the newest).
func (s *sqlStore) attempts(ctx context.Context, sub string, before int64, limit int) ([]int64, []attempt, error) {
	var ids []int64
	list, err := store.Query(ctx, s.db, `SELECT id, change_id, sekvensnummer, attempt, time_ms, status_code, latency_us, error_class
		FROM attempts WHERE subscription_id = ? AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`, []any{sub, before, before, limit},
		func(sc store.Scanner) (attempt, error) {
			var a attempt
			var id, at, latency int64
			err := sc.Scan(&id, &a.ChangeID, &a.Sekvensnummer, &a.Attempt, &at, &a.StatusCode, &latency, &a.ErrorClass)
			ids = append(ids, id)
			a.SubscriptionID, a.Time, a.Latency = sub, time.UnixMilli(at).UTC(), time.Duration(latency)*time.Microsecond
			return a, err
		})
	return ids, list, err
}

// pruneAttempts deletes delivery log entries older than before.
func (s *sqlStore) pruneAttempts(ctx context.Context, before time.Time) error {
	_, err := s.db.Write.ExecContext(ctx, `DELETE FROM attempts WHERE time_ms < ?`, before.UnixMilli())
	return err
}

// waitingCount counts a subscription's parked changes that are not dead.
func (s *sqlStore) waitingCount(ctx context.Context, sub string) (int64, error) {
	var n int64
	err := s.db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM parked WHERE subscription_id = ? AND dead = 0`, sub).Scan(&n)
	return n, err
}
