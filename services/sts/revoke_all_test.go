package sts

import (
	"context"
	"testing"
	"time"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// A revoke-all by a replica whose clock is behind, after one by a replica whose clock is ahead, does not
// move the client's revocation back, which would make the tokens issued between the two times active
// again; nor do revoke-alls from several replicas at once.
func TestRevokeAllNeverMovesBack(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		replicas := []*sqlStore{
			{db: storetest.Open(t, cfg, "sts", Migrations)},
			{db: storetest.Open(t, cfg, "sts", Migrations)},
		}
		now := time.Now().Truncate(time.Millisecond)
		ahead, behind := now.Add(time.Minute), now
		if err := replicas[0].RevokeClientTokens(ctx, "c1", ahead); err != nil {
			t.Fatal(err)
		}
		if err := replicas[1].RevokeClientTokens(ctx, "c1", behind); err != nil {
			t.Fatal(err)
		}
		if at, err := replicas[1].ClientRevokeTime(ctx, "c1"); err != nil || !at.Equal(ahead) {
			t.Fatalf("after a revoke-all at %s, then one at %s: revoked up to %s (%v)", ahead, behind, at, err)
		}

		const n = 8
		if err := storetest.Concurrently(n, func(i int) error {
			return replicas[i%len(replicas)].RevokeClientTokens(ctx, "c2", now.Add(time.Duration(i)*time.Second))
		}); err != nil {
			t.Fatal(err)
		}
		if at, err := replicas[0].ClientRevokeTime(ctx, "c2"); err != nil || !at.Equal(now.Add((n-1)*time.Second)) {
			t.Fatalf("after %d revoke-alls at once: revoked up to %s (%v), want the latest", n, at, err)
		}
	})
}
