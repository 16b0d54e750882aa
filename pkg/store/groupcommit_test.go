package store_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

func TestBatcherGroupsAndReports(t *testing.T) {
	var (
		mu      sync.Mutex
		applied []int
		batches int
	)
	b := store.NewBatcher(8, time.Millisecond, func(_ context.Context, items []int) error {
		mu.Lock()
		defer mu.Unlock()
		batches++
		for _, v := range items {
			if v < 0 {
				return errors.New("negative")
			}
		}
		applied = append(applied, items...)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()

	var wg sync.WaitGroup
	errs := make([]error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Submit(context.Background(), i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "item %d", i)
	}
	require.Len(t, applied, 100)
	require.Error(t, b.Submit(context.Background(), -1), "apply's error reaches the submitter")

	cancel()
	require.NoError(t, <-done)
	require.ErrorIs(t, b.Submit(context.Background(), 1), store.ErrClosed)
}

func TestOpenMigratesOnceAndRefusesNewerSchema(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		migrations := store.Migrations{SQLite: []string{`CREATE TABLE a (x INTEGER)`, `CREATE TABLE b (y INTEGER)`}}
		migrations.Postgres = migrations.SQLite
		db, err := store.Open(ctx, cfg, "t", migrations)
		require.NoError(t, err)
		require.NoError(t, db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO a (x) VALUES (?), (?)`, 1, 2)
			return err
		}))
		var n int
		require.NoError(t, db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM a WHERE x > ? AND 'a?' = ?`, 0, "a?").Scan(&n))
		require.Equal(t, 2, n, "placeholders are the same on both backends, and a quoted ? is no placeholder")
		v, err := db.Setting(ctx, "k", func() []byte { return []byte("v1") })
		require.Error(t, err, "no settings_kv table")
		require.Nil(t, v)
		require.NoError(t, db.Close())

		db, err = store.Open(ctx, cfg, "t", migrations)
		require.NoError(t, err, "reopening applies nothing twice")
		require.NoError(t, db.Close())

		_, err = store.Open(ctx, cfg, "t", store.Migrations{SQLite: migrations.SQLite[:1], Postgres: migrations.SQLite[:1]})
		require.EqualError(t, err, "migrate t: database schema version 2 is newer than this binary (1)")
	})
}

func TestOpenRefusesPostgresWithoutASchema(t *testing.T) {
	_, err := store.Open(context.Background(), store.Config{DatabaseURL: "postgres://127.0.0.1:1/none"}, "registry",
		store.Migrations{SQLite: []string{`CREATE TABLE a (x INTEGER)`}})
	require.EqualError(t, err, "the registry store has no PostgreSQL schema yet: run it on SQLite")
}

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT * FROM t WHERE a = ? AND b = ?`, `SELECT * FROM t WHERE a = $1 AND b = $2`},
		{`SELECT '?' , "?" FROM t WHERE a = ?`, `SELECT '?' , "?" FROM t WHERE a = $1`},
		{`SELECT 'it''s ?' WHERE x = ?`, `SELECT 'it''s ?' WHERE x = $1`},
	}
	for _, tt := range tests {
		if got := store.Rebind(tt.in); got != tt.want {
			t.Errorf("Rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
