package pvk

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/store"
)

// Every subscription has a durable consumer on the change stream (consumerName). DeleteSubscription
// deletes it after the subscription; when that fails (NATS unreachable, a crash in between), or a replay
// on another replica recreates it after the deletion, the consumer is an orphan: it would keep the
// stream's messages for nobody. The consumer sweep deletes such orphans.

// consumerSweepEvery is how often each PVK replica looks for orphaned consumers.
const consumerSweepEvery = 5 * time.Minute

// consumerGrace is how old an orphan must be before the sweep deletes it: CreateSubscription creates
// the consumer just before it stores the subscription.
const consumerGrace = time.Minute

// deleteConsumer deletes a subscription's durable consumer; one that does not exist is no error.
func (s *Subscriptions) deleteConsumer(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.pvk.relay.js.DeleteConsumer(ctx, s.pvk.relay.names.stream, consumerName(id))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	return err
}

// runConsumerSweep sweeps at once and then every consumerSweepEvery until ctx ends.
func (s *Subscriptions) runConsumerSweep(ctx context.Context) {
	sweep := func(now time.Time) {
		if _, err := s.sweepConsumers(ctx, now); err != nil && ctx.Err() == nil {
			s.pvk.log.Warn("consumer sweep", "err", err)
		}
	}
	sweep(time.Now())
	loop.Every(ctx, consumerSweepEvery, sweep)
}

// sweepConsumers deletes the subscription consumers that are older than consumerGrace at now and whose
// subscription does not exist, and returns how many it deleted.
func (s *Subscriptions) sweepConsumers(ctx context.Context, now time.Time) (int, error) {
	st, err := s.pvk.relay.js.Stream(ctx, s.pvk.relay.names.stream)
	if err != nil {
		return 0, err
	}
	var orphans []string
	list := st.ListConsumers(ctx)
	for info := range list.Info() {
		id, ok := strings.CutPrefix(info.Name, consumerName(""))
		if !ok || !guid.Valid(id) || now.Sub(info.Created) < consumerGrace {
			continue
		}
		_, err := s.pvk.store.GetSubscription(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			orphans = append(orphans, id)
		case err != nil:
			return 0, err
		}
	}
	if err := list.Err(); err != nil {
		return 0, err
	}
	deleted := 0
	for _, id := range orphans {
		if err := s.deleteConsumer(ctx, id); err != nil {
			return deleted, err
		}
		deleted++
		s.pvk.log.Info("orphaned subscription consumer deleted", "subscription_id", id)
	}
	return deleted, nil
}
