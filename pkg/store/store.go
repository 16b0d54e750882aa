// Package store opens the SQL database a service owns and runs its migrations, and offers a group-commit
// batcher for hot write paths. Each service has its own database (its own SQLite file in the data
// directory, or its own schema in PostgreSQL), so no service can reach into another's tables.
//
// SQLite (modernc.org/sqlite, pure Go) is the embedded default: WAL, a busy timeout, synchronous=FULL so a
// committed transaction survives a crash, and one writer connection (many readers), which is what SQLite
// can do without "database is locked" errors. PostgreSQL (pgx) is there to scale: one pool, a statement
// timeout, and transactions run again after a serialization failure. Stores write one set of queries with
// "?" placeholders and, where the dialects differ, a schema per dialect. PostgreSQL runs them under read
// committed, so a read-modify-write (an atomic Update(fn)) ends its SELECT with DB.ForUpdate, which locks
// the rows read on PostgreSQL and is nothing on SQLite.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Sentinel errors every service store returns for the same situations.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
)

// Config says where a service's data lives.
type Config struct {
	// DataDir holds the SQLite files.
	DataDir string
	// DatabaseURL selects PostgreSQL (postgres://...) instead of SQLite.
	DatabaseURL string
	// SchemaPrefix goes before each service's PostgreSQL schema name (tests give each run its own).
	SchemaPrefix string
	// StatementTimeout bounds each PostgreSQL statement (default 30s).
	StatementTimeout time.Duration
	// MaxConns bounds each service's PostgreSQL pool (default 16).
	MaxConns int
}

// Dialect is the SQL database behind a DB.
type Dialect int

// The dialects.
const (
	SQLite Dialect = iota
	Postgres
)

// Migrations are a service's schema changes, append only, one list per dialect; the lists have the same
// length and migration i means the same in both.
type Migrations struct {
	SQLite, Postgres []string
}

// DB is a service's database: a reader pool and a writer handle.
// sqliteReadConns bounds an SQLite database's read connections; they stay open between reads (WAL lets them
// read beside the one writer).
const sqliteReadConns = 16

type DB struct {
	// Read serves queries: with SQLite up to sqliteReadConns connections, all kept open.
	Read *sql.DB
	// Write serves transactions; one connection with SQLite (the same pool as Read with PostgreSQL).
	Write *sql.DB
	// Dialect is SQLite or Postgres.
	Dialect Dialect
}

// Open opens (creating if needed) the database of the service called name and applies migrations in order.
func Open(ctx context.Context, cfg Config, name string, migrations Migrations) (*DB, error) {
	list := migrations.SQLite
	if cfg.DatabaseURL != "" {
		if len(migrations.Postgres) != len(migrations.SQLite) {
			return nil, fmt.Errorf("the %s store has no PostgreSQL schema yet: run it on SQLite", name)
		}
		list = migrations.Postgres
	}
	db, err := Attach(ctx, cfg, name)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx, name, list); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	return db, nil
}

// Attach opens the database of the service called name as it is, without migrating it (tools and tests
// that look into a service's tables use it).
func Attach(ctx context.Context, cfg Config, name string) (*DB, error) {
	if cfg.DatabaseURL != "" {
		if cfg.MaxConns == 0 {
			cfg.MaxConns = 16
		}
		pool, err := openPostgres(ctx, cfg, name)
		if err != nil {
			return nil, err
		}
		return &DB{Read: pool, Write: pool, Dialect: Postgres}, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, name+".db")
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	read, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	q.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		_ = read.Close()
		return nil, err
	}
	write.SetMaxOpenConns(1)
	// Readers keep their connections: a new SQLite connection opens the file and parses the schema, which
	// was most of an uncached read when Go's default kept only two idle.
	read.SetMaxOpenConns(sqliteReadConns)
	read.SetMaxIdleConns(sqliteReadConns)
	db := &DB{Read: read, Write: write}
	// Create the file now so its mode can be set before anything is written to it.
	if err := write.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes both handles.
func (db *DB) Close() error {
	if db.Read == db.Write {
		return db.Write.Close()
	}
	return errors.Join(db.Write.Close(), db.Read.Close())
}

// maxTxAttempts bounds how often a PostgreSQL transaction is run after serialization failures.
const maxTxAttempts = 5

// Tx runs fn in a write transaction, committing when fn returns nil. With PostgreSQL a transaction that
// fails to serialize (or deadlocks) is run again, so fn must not keep effects of a failed run.
func (db *DB) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.tx(ctx, fn)
		if err == nil || db.Dialect != Postgres || !isRetryable(err) || attempt == maxTxAttempts {
			return err
		}
	}
}

func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// Lock makes tx wait until no other transaction holding the lock called name in this service's store
// runs, and holds it until tx ends: for transactions that read, decide and write, which replicas running
// them at once would otherwise both decide alike (both create the first key, say). PostgreSQL takes a
// transaction-level advisory lock; SQLite needs none, as its write transactions already run one at a time.
func (db *DB) Lock(ctx context.Context, tx *sql.Tx, name string) error {
	if db.Dialect != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '') || '.' || ?))`, name)
	return err
}

// ForUpdate returns the clause that ends the SELECT of a read-modify-write (an atomic Update(fn)): the
// rows it reads are those the transaction is about to change, or the row that stands for them (a parent).
// On PostgreSQL it is " FOR UPDATE": under read committed two transactions would otherwise both read the
// old row, both decide on it, and the last write would win (two revocations of a client's last two
// secrets would leave it none); with the lock the second waits until the first ends, then reads what the
// first wrote. of names the tables (or their aliases) whose rows to lock when the SELECT joins others
// (PostgreSQL cannot lock the nullable side of an outer join). On SQLite it is nothing: its write
// transactions already run one at a time. Put it last, after any ORDER BY and LIMIT.
func (db *DB) ForUpdate(of ...string) string {
	if db.Dialect != Postgres {
		return ""
	}
	if len(of) == 0 {
		return " FOR UPDATE"
	}
	return " FOR UPDATE OF " + strings.Join(of, ", ")
}

// migrate applies the migrations not yet applied; migration i is version i+1. With PostgreSQL a lock
// keeps replicas starting together from migrating at once.
func (db *DB) migrate(ctx context.Context, name string, migrations []string) error {
	return db.Tx(ctx, func(tx *sql.Tx) error {
		if err := db.Lock(ctx, tx, "migrate"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("database schema version %d is newer than this binary (%d)", v, len(migrations))
		}
		for i := v; i < len(migrations); i++ {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		if v < len(migrations) {
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, len(migrations))
			return err
		}
		return nil
	})
}

// IsUniqueViolation reports whether err is a unique or primary key violation, on either backend.
func IsUniqueViolation(err error) bool {
	return err != nil && (isUniqueViolation(err) || strings.Contains(err.Error(), "UNIQUE constraint failed"))
}

// Scanner is a row to scan: *sql.Row or *sql.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Query runs a read query and scans every row with scan.
func Query[T any](ctx context.Context, db *DB, query string, args []any, scan func(Scanner) (T, error)) ([]T, error) {
	rows, err := db.Read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Setting returns the named value of the service's settings_kv table (name TEXT PRIMARY KEY, value BLOB),
// storing create's value first when there is none. Replicas starting together agree: each inserts its
// value unless one is there (waiting, on PostgreSQL, for another replica's insert of the name to end),
// then every one reads back the value that was stored first.
func (db *DB) Setting(ctx context.Context, name string, create func() []byte) ([]byte, error) {
	var v []byte
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings_kv WHERE name = ?`, name).Scan(&v)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings_kv (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			name, create()); err != nil {
			return err
		}
		// Under read committed this statement sees another replica's value committed meanwhile.
		return tx.QueryRowContext(ctx, `SELECT value FROM settings_kv WHERE name = ?`, name).Scan(&v)
	})
	return v, err
}
