package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hnsec/hnsec/pkg/natsbus"
)

// leaseBucket is the NATS key-value bucket in which dispatcher replicas announce themselves and lease
// subscriptions. Every entry expires after the lease TTL unless renewed, so a dead replica's subscriptions
// go to the others once its leases lapse.
const leaseBucket = "hnsec_dispatcher_leases"

// leases decides which subscriptions this replica delivers: an equal share of them, each leased in the
// bucket so no two replicas deliver the same subscription (while their leases hold).
type leases struct {
	kv jetstream.KeyValue
	me string
}

// openLeases opens the bucket for the replica me. A replica keeps its id across restarts (in its data
// directory, see replicaID), so after a crash it takes its leases back at once instead of waiting for them
// to lapse.
func openLeases(ctx context.Context, js jetstream.JetStream, bucket string, ttl time.Duration, replicas int, me string) (*leases, error) {
	ctx, cancel := context.WithTimeout(ctx, natsbus.SetupTimeout)
	defer cancel()
	// Bind to the bucket when it exists (a cheap lookup, where an update would go through the cluster's
	// meta leader on every start); create it otherwise.
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, TTL: ttl, Replicas: replicas, Storage: jetstream.FileStorage})
		if errors.Is(err, jetstream.ErrBucketExists) { // another replica made it meanwhile
			kv, err = js.KeyValue(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dispatcher lease bucket: %w", err)
	}
	return &leases{kv: kv, me: me}, nil
}

func replicaKey(id string) string { return "replica." + id }
func leaseKey(id string) string   { return "lease." + id }

// claim renews this replica's presence and leases and returns the subscriptions, of those given, that it
// holds now: the ones it held, and free ones while it holds fewer than its share (the subscriptions divided
// by the replicas present). Over its share (a replica joined) it returns the surplus, still leased: the
// caller stops delivering them, then releases them, so two replicas never deliver one subscription.
func (l *leases) claim(ctx context.Context, ids []string) (held map[string]bool, surplus []string, err error) {
	if _, err := l.kv.Put(ctx, replicaKey(l.me), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return nil, nil, err
	}
	keys, err := l.kv.Keys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil, err
	}
	replicas := max(1, len(slices.DeleteFunc(keys, func(k string) bool { return !strings.HasPrefix(k, "replica.") })))
	share := (len(ids) + replicas - 1) / replicas
	held = map[string]bool{}
	var free []string
	for _, id := range ids {
		e, err := l.kv.Get(ctx, leaseKey(id))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			free = append(free, id)
		case err != nil:
			return nil, nil, err
		case string(e.Value()) == l.me && len(held) < share:
			if _, err := l.kv.Update(ctx, leaseKey(id), []byte(l.me), e.Revision()); err == nil {
				held[id] = true
			}
		case string(e.Value()) == l.me:
			surplus = append(surplus, id)
		}
	}
	for _, id := range free {
		if len(held) >= share {
			break
		}
		if _, err := l.kv.Create(ctx, leaseKey(id), []byte(l.me)); err == nil {
			held[id] = true
		}
	}
	return held, surplus, nil
}

// release gives up the leases of ids (once their workers stopped), so the others take over at once.
func (l *leases) release(ctx context.Context, ids []string) {
	for _, id := range ids {
		if e, err := l.kv.Get(ctx, leaseKey(id)); err == nil && string(e.Value()) == l.me {
			_ = l.kv.Delete(ctx, leaseKey(id), jetstream.LastRevision(e.Revision()))
		}
	}
}

// leave releases ids and this replica's presence (at shutdown).
func (l *leases) leave(ctx context.Context, ids []string) {
	l.release(ctx, ids)
	_ = l.kv.Delete(ctx, replicaKey(l.me))
}
