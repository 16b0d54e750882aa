package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres opens the schema of the service called name (cfg.SchemaPrefix + name) in the database at
// cfg.DatabaseURL, creating the schema when it is missing. Statements are written with SQLite's "?"
// placeholders; the connector turns them into PostgreSQL's $1, $2, ... so each store has one set of
// queries.
func openPostgres(ctx context.Context, cfg Config, name string) (*sql.DB, error) {
	pc, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err)
	}
	schema := cfg.SchemaPrefix + name
	if !validSchema(schema) {
		return nil, fmt.Errorf("schema name %q: use lower-case letters, digits and _", schema)
	}
	conn, err := pgx.ConnectConfig(ctx, pc.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema)
	_ = conn.Close(ctx)
	if err != nil && !isUniqueViolation(err) { // two replicas creating it at once
		return nil, fmt.Errorf("postgres schema %s: %w", schema, err)
	}
	pc.RuntimeParams["search_path"] = schema
	timeout := cfg.StatementTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	pc.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	db := sql.OpenDB(rebindConnector{stdlib.GetConnector(*pc)})
	db.SetMaxOpenConns(max(cfg.MaxConns, 1))
	db.SetMaxIdleConns(max(cfg.MaxConns, 1))
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// validSchema admits unquoted PostgreSQL identifiers only.
func validSchema(s string) bool {
	if s == "" || len(s) > 63 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Rebind turns "?" placeholders into $1, $2, ... outside quoted strings and identifiers.
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// isUniqueViolation reports a PostgreSQL unique violation (23505).
func isUniqueViolation(err error) bool { return pgCode(err) == "23505" }

// isRetryable reports a serialization failure (40001) or a deadlock (40P01): the transaction may be run
// again.
func isRetryable(err error) bool {
	code := pgCode(err)
	return code == "40001" || code == "40P01"
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// rebindConnector hands out pgx connections that accept "?" placeholders.
type rebindConnector struct{ driver.Connector }

func (c rebindConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	pc, ok := conn.(pgxConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("postgres: unexpected connection type %T", conn)
	}
	return rebindConn{pc}, nil
}

// pgxConn is what pgx's database/sql connection implements, all of which database/sql uses.
type pgxConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.NamedValueChecker
	driver.SessionResetter
}

// rebindConn rewrites the placeholders of every statement it is given.
type rebindConn struct{ pgxConn }

func (c rebindConn) Prepare(query string) (driver.Stmt, error) {
	return c.pgxConn.Prepare(Rebind(query))
}

func (c rebindConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.pgxConn.PrepareContext(ctx, Rebind(query))
}

func (c rebindConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.pgxConn.ExecContext(ctx, Rebind(query), args)
}

func (c rebindConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.pgxConn.QueryContext(ctx, Rebind(query), args)
}
