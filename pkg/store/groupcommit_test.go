package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/store"
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
	dir := t.TempDir()
	ctx := context.Background()
	migrations := []string{`CREATE TABLE a (x INTEGER)`, `CREATE TABLE b (y INTEGER)`}
	db, err := store.Open(ctx, store.Config{DataDir: dir}, "t", migrations)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	db, err = store.Open(ctx, store.Config{DataDir: dir}, "t", migrations)
	require.NoError(t, err, "reopening applies nothing twice")
	require.NoError(t, db.Close())

	_, err = store.Open(ctx, store.Config{DataDir: dir}, "t", migrations[:1])
	require.EqualError(t, err, "migrate t: database schema version 2 is newer than this binary (1)")
}
