// Package storetest runs a store's contract tests against every backend: SQLite always, and PostgreSQL
// when HNSEC_TEST_DATABASE_URL names a database (CI sets it), each test in schemas of its own.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/hnsec/hnsec/pkg/store"
)

// EnvDatabaseURL names the PostgreSQL database the contract tests also run against.
const EnvDatabaseURL = "HNSEC_TEST_DATABASE_URL"

// Backend is a store configuration to test against.
type Backend struct {
	Name string
	// Config returns a fresh configuration: an empty data directory, or an unused schema prefix whose
	// schemas are dropped when the test ends.
	Config func(t testing.TB) store.Config
}

// Backends returns SQLite and, with HNSEC_TEST_DATABASE_URL set, PostgreSQL.
func Backends() []Backend {
	out := []Backend{{Name: "sqlite", Config: func(t testing.TB) store.Config { return store.Config{DataDir: t.TempDir()} }}}
	url := os.Getenv(EnvDatabaseURL)
	if url == "" {
		return out
	}
	return append(out, Backend{Name: "postgres", Config: func(t testing.TB) store.Config {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		prefix := "t" + hex.EncodeToString(b) + "_"
		t.Cleanup(func() { dropSchemas(t, url, prefix) })
		return store.Config{DatabaseURL: url, SchemaPrefix: prefix, MaxConns: 4}
	}})
}

// Run runs test once per backend as a subtest.
func Run(t *testing.T, test func(t *testing.T, cfg store.Config)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { test(t, b.Config(t)) })
	}
}

// dropSchemas drops the schemas a test made.
func dropSchemas(t testing.TB, url, prefix string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("drop test schemas: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`, prefix)
	if err != nil {
		t.Errorf("drop test schemas: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("drop test schemas: %v", err)
		return
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{n}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", n, err)
		}
	}
}

// Open opens a store for a test and closes it when the test ends.
func Open(t testing.TB, cfg store.Config, name string, migrations store.Migrations) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), cfg, name, migrations)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Concurrently runs fn(0) … fn(n-1) in goroutines released together (so their transactions overlap, which
// is what a race between replicas needs) and returns their errors joined.
func Concurrently(n int, fn func(i int) error) error {
	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		errs        = make([]error, n)
	)
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errors.Join(errs...)
}
