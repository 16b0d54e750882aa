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

// TestBatcherLingersForThePreviousBatch checks the linger rule: after a batch of at least eight, a smaller
// one waits (up to the linger time) for as many as that batch had; after small batches nothing waits.
func TestBatcherLingersForThePreviousBatch(t *testing.T) {
	const linger = 300 * time.Millisecond
	for _, tc := range []struct {
		name     string
		previous int  // the size of the batch before
		then     int  // items submitted after it, the first alone and the rest 20 ms later
		first    int  // the size of the batch holding the first of them
		waits    bool // whether the first of them waited for the linger time
	}{
		{"waits for as many as before", 10, 10, 10, false},
		{"commits what came when the linger time is up", 10, 4, 4, true},
		{"no wait after a small batch", 7, 7, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, gate := make(chan struct{}), make(chan struct{})
			var (
				mu    sync.Mutex
				sizes []int
			)
			b := store.NewBatcher(64, linger, func(_ context.Context, items []int) error {
				if items[0] == -1 {
					close(started)
					<-gate // the first batch holds the rest back until they are all queued
				}
				mu.Lock()
				sizes = append(sizes, len(items))
				mu.Unlock()
				return nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = b.Run(ctx) }()

			var wg sync.WaitGroup
			submit := func(v int) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					require.NoError(t, b.Submit(context.Background(), v))
				}()
			}
			submit(-1)
			<-started
			for range tc.previous {
				submit(1)
			}
			time.Sleep(100 * time.Millisecond) // all queued (generous: a loaded machine may start goroutines late)
			close(gate)
			wg.Wait()
			mu.Lock()
			require.Equal(t, []int{1, tc.previous}, sizes)
			sizes = nil
			mu.Unlock()

			start := time.Now()
			first := make(chan time.Duration, 1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				require.NoError(t, b.Submit(context.Background(), 2))
				first <- time.Since(start)
			}()
			time.Sleep(20 * time.Millisecond)
			for range tc.then - 1 {
				submit(2)
			}
			wg.Wait()
			took := <-first
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, tc.first, sizes[0])
			total := 0
			for _, n := range sizes {
				total += n
			}
			require.Equal(t, tc.then, total)
			if tc.waits {
				require.GreaterOrEqual(t, took, linger)
			} else {
				require.Less(t, took, linger)
			}
		})
	}
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
