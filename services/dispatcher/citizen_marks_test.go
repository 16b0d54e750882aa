package dispatcher

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// Citizen marks, on SQLite and (with HNSEC_TEST_DATABASE_URL) PostgreSQL: a mark never moves back within
// its consumer's incarnation, a newer incarnation replaces it, reads see only the incarnation asked for
// above the ack floor, and pruning keeps only what a worker of the current incarnation may need.
func TestCitizenMarksContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := &sqlStore{db: storetest.Open(t, cfg, "dispatcher", Migrations)}
		old, cur := time.Unix(100, 0).UnixNano(), time.Unix(200, 0).UnixNano()
		save := func(marks ...citizenMark) {
			t.Helper()
			require.NoError(t, s.saveMarks(ctx, marks))
		}
		read := func(sub string, epoch int64, floor uint64) map[string]uint64 {
			t.Helper()
			m, err := s.citizenMarks(ctx, sub, epoch, floor)
			require.NoError(t, err)
			return m
		}
		save(citizenMark{"s1", "A", cur, 5}, citizenMark{"s1", "B", cur, 7}, citizenMark{"s1", "C", old, 9}, citizenMark{"s2", "A", cur, 3})
		save(citizenMark{"s1", "A", cur, 4})  // never back
		save(citizenMark{"s1", "A", cur, 6})  // forward
		save(citizenMark{"s1", "C", cur, 2})  // a newer incarnation replaces an older one
		save(citizenMark{"s1", "B", old, 99}) // an older incarnation never replaces a newer one
		require.Equal(t, map[string]uint64{"A": 6, "B": 7, "C": 2}, read("s1", cur, 0))
		require.Equal(t, map[string]uint64{"A": 6, "B": 7}, read("s1", cur, 5), "only above the ack floor")
		require.Empty(t, read("s1", old, 0), "another incarnation's marks are not this one's")
		require.Equal(t, map[string]uint64{"A": 3}, read("s2", cur, 0))

		save(citizenMark{"s1", "D", old + 1, 50}) // written by a worker of an older incarnation...
		save(citizenMark{"s1", "E", cur + 1, 1})  // ...and of a newer one
		require.NoError(t, s.pruneMarks(ctx, "s1", cur, 6))
		require.Equal(t, map[string]uint64{"B": 7}, read("s1", cur, 0), "at or below the floor, and older incarnations, are gone")
		require.Equal(t, map[string]uint64{"E": 1}, read("s1", cur+1, 0), "a newer incarnation's marks stay")
		require.Equal(t, map[string]uint64{"A": 3}, read("s2", cur, 0), "other subscriptions' marks stay")
	})
}
