package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// testMigrations are a settings table and a counter, on both backends.
var testMigrations = store.Migrations{
	SQLite:   []string{`CREATE TABLE settings_kv (name TEXT PRIMARY KEY, value BLOB NOT NULL); CREATE TABLE counters (id TEXT PRIMARY KEY, n INTEGER NOT NULL)`},
	Postgres: []string{`CREATE TABLE settings_kv (name TEXT PRIMARY KEY, value BYTEA NOT NULL); CREATE TABLE counters (id TEXT PRIMARY KEY, n BIGINT NOT NULL)`},
}

// replicas opens the same service store n times, as n replicas starting together would.
func replicas(t *testing.T, cfg store.Config, n int) []*store.DB {
	dbs := make([]*store.DB, n)
	for i := range dbs {
		dbs[i] = storetest.Open(t, cfg, "settingtest", testMigrations)
	}
	return dbs
}

// Replicas starting together each make a first value; every one of them must end up with the same one.
func TestSettingFirstStartRace(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		dbs := replicas(t, cfg, 4)
		for round := range 20 {
			name := fmt.Sprintf("key-%d", round)
			got := make([]string, len(dbs))
			err := storetest.Concurrently(len(dbs), func(i int) error {
				v, err := dbs[i].Setting(ctx, name, func() []byte { return fmt.Appendf(nil, "replica %d", i) })
				got[i] = string(v)
				return err
			})
			require.NoError(t, err, "round %d", round)
			for i := range got {
				require.Equal(t, got[0], got[i], "round %d: replicas disagree", round)
			}
			again, err := dbs[0].Setting(ctx, name, func() []byte { return []byte("later") })
			require.NoError(t, err)
			require.Equal(t, got[0], string(again))
		}
	})
}

// A read-modify-write whose SELECT ends with ForUpdate loses no update, however many run at once.
func TestForUpdateSerialisesReadModifyWrite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		dbs := replicas(t, cfg, 2)
		_, err := dbs[0].Write.ExecContext(ctx, `INSERT INTO counters (id, n) VALUES ('c', 0)`)
		require.NoError(t, err)
		const n = 16
		err = storetest.Concurrently(n, func(i int) error {
			db := dbs[i%len(dbs)]
			return db.Tx(ctx, func(tx *sql.Tx) error {
				var v int64
				if err := tx.QueryRowContext(ctx, `SELECT n FROM counters WHERE id = ?`+db.ForUpdate(), "c").Scan(&v); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, `UPDATE counters SET n = ? WHERE id = ?`, v+1, "c")
				return err
			})
		})
		require.NoError(t, err)
		var got int64
		require.NoError(t, dbs[0].Read.QueryRowContext(ctx, `SELECT n FROM counters WHERE id = 'c'`).Scan(&got))
		require.EqualValues(t, n, got, "updates were lost")

		// Joined queries lock the rows of the tables named.
		err = dbs[0].Tx(ctx, func(tx *sql.Tx) error {
			var v int64
			return tx.QueryRowContext(ctx, `SELECT c.n FROM counters c LEFT JOIN settings_kv s ON s.name = c.id WHERE c.id = ?`+
				dbs[0].ForUpdate("c"), "c").Scan(&v)
		})
		require.NoError(t, err)
	})
}

// SQLite's readers keep their connections between reads, so a read does not reopen the file and parse the
// schema; the pool is bounded.
func TestSQLiteReadersKeepTheirConnections(t *testing.T) {
	db, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()}, "pooltest", testMigrations)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	// Eight reads at once, each holding its connection until all have one.
	const n = 8
	ready, release := make(chan struct{}, n), make(chan struct{})
	errs := make(chan error, n)
	for range n {
		go func() {
			rows, err := db.Read.QueryContext(context.Background(), `SELECT name FROM settings_kv`)
			if err == nil {
				ready <- struct{}{}
				<-release
				err = rows.Close()
			}
			errs <- err
		}()
	}
	for range n {
		<-ready
	}
	close(release)
	for range n {
		require.NoError(t, <-errs)
	}
	st := db.Read.Stats()
	require.Equal(t, 16, st.MaxOpenConnections)
	require.Equal(t, n, st.Idle, "every reader's connection is kept (Go's default keeps two)")
	require.Zero(t, st.MaxIdleClosed)
}
