package sts

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hnsec/hnsec/pkg/store"
)

// Migrations is the sts store's schema (append only), for SQLite and PostgreSQL.
var Migrations = store.Migrations{SQLite: []string{`
CREATE TABLE signing_keys (
	kid              TEXT PRIMARY KEY,
	use              TEXT NOT NULL,
	alg              TEXT NOT NULL,
	sealed           BLOB NOT NULL,
	create_time_ms   INTEGER NOT NULL,
	activate_time_ms INTEGER NOT NULL,
	retire_time_ms   INTEGER NOT NULL
);
CREATE TABLE token_references (
	selector            BLOB PRIMARY KEY,
	verifier_hash       BLOB NOT NULL,
	jti                 TEXT NOT NULL,
	client_id           TEXT NOT NULL,
	client_name         TEXT NOT NULL,
	scopes              TEXT NOT NULL,
	audiences           TEXT NOT NULL,
	organisation_number TEXT NOT NULL,
	issue_time          INTEGER NOT NULL,
	expire_time         INTEGER NOT NULL,
	revoke_time         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE client_revocations (
	client_id      TEXT PRIMARY KEY,
	revoke_time_ms INTEGER NOT NULL
);
`}, Postgres: []string{`
CREATE TABLE signing_keys (
	kid              TEXT PRIMARY KEY,
	use              TEXT NOT NULL,
	alg              TEXT NOT NULL,
	sealed           BYTEA NOT NULL,
	create_time_ms   BIGINT NOT NULL,
	activate_time_ms BIGINT NOT NULL,
	retire_time_ms   BIGINT NOT NULL
);
CREATE TABLE token_references (
	selector            BYTEA PRIMARY KEY,
	verifier_hash       BYTEA NOT NULL,
	jti                 TEXT NOT NULL,
	client_id           TEXT NOT NULL,
	client_name         TEXT NOT NULL,
	scopes              TEXT NOT NULL,
	audiences           TEXT NOT NULL,
	organisation_number TEXT NOT NULL,
	issue_time          BIGINT NOT NULL,
	expire_time         BIGINT NOT NULL,
	revoke_time         BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE client_revocations (
	client_id      TEXT PRIMARY KEY,
	revoke_time_ms BIGINT NOT NULL
);
`}}

// reference is the server-side record behind a ref_token handle (see handle.go): its selector and the
// hash of its verifier, never the handle itself.
type reference struct {
	Selector           []byte
	VerifierHash       []byte
	JTI                string
	ClientID           string
	ClientName         string
	Scopes             []string
	Audiences          []string
	OrganisationNumber string
	IssueTime          time.Time
	ExpireTime         time.Time
	RevokeTime         time.Time
}

// storedKey is one key of the ring as stored: its material sealed under the key-encryption key.
type storedKey struct {
	ID           string
	Use          string
	Alg          string
	Sealed       []byte
	CreateTime   time.Time
	ActivateTime time.Time
	RetireTime   time.Time
}

// Store is the STS's storage contract.
type Store interface {
	// RotateKeys runs fn on every stored key in one transaction, then adds and removes what it returns,
	// and returns the keys stored afterwards.
	RotateKeys(ctx context.Context, fn func(keys []storedKey) (add []storedKey, remove []string, err error)) ([]storedKey, error)
	// InsertReferences stores references in one transaction.
	InsertReferences(ctx context.Context, refs []reference) error
	// Reference returns the reference with the selector; ErrNotFound when there is none.
	Reference(ctx context.Context, selector []byte) (reference, error)
	// RevokeReference marks the reference revoked at t unless it already is; it reports whether it did.
	RevokeReference(ctx context.Context, selector []byte, t time.Time) (bool, error)
	// RevokeClientTokens revokes every reference of the client created at or before t. A t before the
	// stored one leaves that: a revocation never moves back, whatever the clocks of the replicas that
	// asked for it.
	RevokeClientTokens(ctx context.Context, clientID string, t time.Time) error
	// ClientRevokeTime returns when all of the client's tokens were last revoked; zero when never.
	ClientRevokeTime(ctx context.Context, clientID string) (time.Time, error)
	// DeleteExpired removes references that expired before t and returns how many. Only references
	// created before created are looked at, so the work is a range scan of the time-ordered key.
	DeleteExpired(ctx context.Context, created, t time.Time) (int64, error)
}

type sqlStore struct {
	db *store.DB

	mu      sync.Mutex
	inserts [maxInsertRows]*sql.Stmt // by their rows, less one
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) RotateKeys(ctx context.Context, fn func([]storedKey) ([]storedKey, []string, error)) ([]storedKey, error) {
	var out []storedKey
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.db.Lock(ctx, tx, "signing_keys"); err != nil { // replicas starting together make one first key
			return err
		}
		keys, err := readKeys(ctx, tx)
		if err != nil {
			return err
		}
		add, remove, err := fn(keys)
		if err != nil {
			return err
		}
		for _, kid := range remove {
			if _, err := tx.ExecContext(ctx, `DELETE FROM signing_keys WHERE kid = ?`, kid); err != nil {
				return err
			}
		}
		for _, k := range add {
			if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (kid, use, alg, sealed, create_time_ms, activate_time_ms, retire_time_ms)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, k.ID, k.Use, k.Alg, k.Sealed, k.CreateTime.UnixMilli(), k.ActivateTime.UnixMilli(),
				k.RetireTime.UnixMilli()); err != nil {
				return err
			}
		}
		if len(add) == 0 && len(remove) == 0 {
			out = keys
			return nil
		}
		out, err = readKeys(ctx, tx)
		return err
	})
	return out, err
}

func readKeys(ctx context.Context, tx *sql.Tx) ([]storedKey, error) {
	rows, err := tx.QueryContext(ctx, `SELECT kid, use, alg, sealed, create_time_ms, activate_time_ms, retire_time_ms
		FROM signing_keys ORDER BY activate_time_ms DESC, kid`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storedKey
	for rows.Next() {
		var (
			k                         storedKey
			created, activate, retire int64
		)
		if err := rows.Scan(&k.ID, &k.Use, &k.Alg, &k.Sealed, &created, &activate, &retire); err != nil {
			return nil, err
		}
		k.CreateTime, k.ActivateTime, k.RetireTime = time.UnixMilli(created), time.UnixMilli(activate), time.UnixMilli(retire)
		out = append(out, k)
	}
	return out, rows.Err()
}

// referenceColumns are the columns InsertReferences writes, in order.
const referenceColumns = `selector, verifier_hash, jti, client_id, client_name, scopes, audiences, organisation_number, issue_time, expire_time`

// maxInsertRows is the most rows one prepared INSERT writes.
const maxInsertRows = 64

// InsertReferences writes the batch atomically with multi-row INSERTs of at most maxInsertRows rows: one
// statement without a transaction when the batch fits in it, else one transaction. The statements are
// prepared once per size: parsing a new INSERT for every batch cost more than writing its rows.
func (s *sqlStore) InsertReferences(ctx context.Context, refs []reference) error {
	args := make([]any, 0, 10*len(refs))
	for _, r := range refs {
		args = append(args, r.Selector, r.VerifierHash, r.JTI, r.ClientID, r.ClientName, strings.Join(r.Scopes, " "),
			strings.Join(r.Audiences, " "), r.OrganisationNumber, r.IssueTime.Unix(), r.ExpireTime.Unix())
	}
	// The statements are prepared before a transaction takes SQLite's one writing connection.
	type chunk struct {
		stmt *sql.Stmt
		args []any
	}
	var chunks []chunk
	for len(args) > 0 {
		rows := min(len(args)/10, maxInsertRows)
		stmt, err := s.insertStatement(ctx, rows)
		if err != nil {
			return err
		}
		chunks = append(chunks, chunk{stmt, args[:10*rows]})
		args = args[10*rows:]
	}
	if len(chunks) == 1 {
		_, err := chunks[0].stmt.ExecContext(ctx, chunks[0].args...)
		return err
	}
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, c := range chunks {
			if _, err := tx.StmtContext(ctx, c.stmt).ExecContext(ctx, c.args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertStatement returns the prepared INSERT of rows references.
func (s *sqlStore) insertStatement(ctx context.Context, rows int) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stmt := s.inserts[rows-1]; stmt != nil {
		return stmt, nil
	}
	q := `INSERT INTO token_references (` + referenceColumns + `) VALUES ` +
		strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?, ?, ?), `, rows-1) + `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	stmt, err := s.db.Write.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s.inserts[rows-1] = stmt
	return stmt, nil
}

func (s *sqlStore) Reference(ctx context.Context, selector []byte) (reference, error) {
	var (
		r                        reference
		scopes, auds             string
		issued, expires, revoked int64
	)
	err := s.db.Read.QueryRowContext(ctx, `SELECT verifier_hash, jti, client_id, client_name, scopes, audiences, organisation_number,
		issue_time, expire_time, revoke_time FROM token_references WHERE selector = ?`, selector).
		Scan(&r.VerifierHash, &r.JTI, &r.ClientID, &r.ClientName, &scopes, &auds, &r.OrganisationNumber, &issued, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return reference{}, store.ErrNotFound
	}
	if err != nil {
		return reference{}, err
	}
	r.Selector = selector
	r.Scopes, r.Audiences = strings.Fields(scopes), strings.Fields(auds)
	r.IssueTime, r.ExpireTime = time.Unix(issued, 0).UTC(), time.Unix(expires, 0).UTC()
	if revoked != 0 {
		r.RevokeTime = time.Unix(revoked, 0).UTC()
	}
	return r, nil
}

func (s *sqlStore) RevokeReference(ctx context.Context, selector []byte, t time.Time) (bool, error) {
	res, err := s.db.Write.ExecContext(ctx, `UPDATE token_references SET revoke_time = ? WHERE selector = ? AND revoke_time = 0`,
		t.Unix(), selector)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (s *sqlStore) RevokeClientTokens(ctx context.Context, clientID string, t time.Time) error {
	_, err := s.db.Write.ExecContext(ctx, `INSERT INTO client_revocations (client_id, revoke_time_ms) VALUES (?, ?)
		ON CONFLICT (client_id) DO UPDATE SET revoke_time_ms = excluded.revoke_time_ms
		WHERE excluded.revoke_time_ms > client_revocations.revoke_time_ms`, clientID, t.UnixMilli())
	return err
}

func (s *sqlStore) ClientRevokeTime(ctx context.Context, clientID string) (time.Time, error) {
	var ms int64
	err := s.db.Read.QueryRowContext(ctx, `SELECT revoke_time_ms FROM client_revocations WHERE client_id = ?`, clientID).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms), nil
}

// deleteBatch bounds the rows one statement of DeleteExpired deletes: the single writer (SQLite) is taken
// for a few milliseconds at a time, and token issuance's group commits go between the batches.
const deleteBatch = 1000

// walCheckpointAfter is how many deleted rows make DeleteExpired give the SQLite WAL back to the disk.
const walCheckpointAfter = 10 * deleteBatch

func (s *sqlStore) DeleteExpired(ctx context.Context, created, t time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.Write.ExecContext(ctx, `DELETE FROM token_references WHERE selector IN (
			SELECT selector FROM token_references WHERE selector < ? AND expire_time < ? ORDER BY selector LIMIT ?)`,
			selectorBefore(created.UnixMilli()), t.Unix(), deleteBatch)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < deleteBatch {
			break
		}
	}
	if total >= walCheckpointAfter && s.db.Dialect == store.SQLite {
		// The WAL grew by the deletions; truncate it once they are in the database file.
		if _, err := s.db.Write.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			return total, err
		}
	}
	return total, nil
}
