package pvk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The change stream.
const (
	// StreamName is the JetStream stream of PVK's changes.
	StreamName = "PVK_CHANGES"
	// SubjectPrefix is followed by the partition: hnsec.pvk.changes.<0..Partitions-1>.
	SubjectPrefix = "hnsec.pvk.changes."
)

// relayBatch bounds the outbox events read at a time.
const relayBatch = 500

// Subject is the subject of a partition's changes.
func Subject(partition int) string { return fmt.Sprintf("%s%d", SubjectPrefix, partition) }

// relay publishes the outbox to the change stream, in commit order, each event with Nats-Msg-Id = its
// change id, and removes events from the outbox only after JetStream acknowledged them. A crash before
// the publish leaves the event in the outbox for the next run; a crash after it makes the next run publish
// it again, which the stream's duplicate window drops. Nothing is lost and nothing is stored twice.
type relay struct {
	store Store
	js    jetstream.JetStream
	wake  chan struct{}
}

// ensureStream creates or updates the change stream.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       StreamName,
		Subjects:   []string{SubjectPrefix + "*"},
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.StreamReplicas,
		MaxAge:     cfg.StreamMaxAge,
		Duplicates: cfg.DuplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("pvk change stream: %w", err)
	}
	return nil
}

// notify wakes the relay after a commit, without blocking the writer.
func (r *relay) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run publishes until ctx ends: at once after each commit, and every 100 ms in case a wake-up was missed
// or a publish failed.
func (r *relay) run(ctx context.Context, onError func(error)) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if err := r.drain(ctx); err != nil && ctx.Err() == nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-t.C:
		}
	}
}

// drain publishes everything in the outbox. Each batch is published asynchronously, in commit order on
// one connection, then every acknowledgement is awaited; the outbox is cleared up to the last event
// acknowledged without a gap. An event whose acknowledgement was lost is published again later and the
// stream drops the copy, so it keeps its first place.
func (r *relay) drain(ctx context.Context) error {
	for {
		events, err := r.store.PendingOutbox(ctx, relayBatch)
		if err != nil || len(events) == 0 {
			return err
		}
		acks := make([]jetstream.PubAckFuture, 0, len(events))
		var pubErr error
		for _, ev := range events {
			msg := &nats.Msg{Subject: Subject(ev.Partition), Data: ev.Payload, Header: nats.Header{}}
			msg.Header.Set("Content-Type", "application/cloudevents+json")
			f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.ChangeID))
			if err != nil {
				pubErr = err
				break
			}
			acks = append(acks, f)
		}
		published := int64(0)
	wait:
		for i, f := range acks {
			select {
			case <-f.Ok():
				published = events[i].ID
			case err := <-f.Err():
				pubErr = err
				break wait
			case <-ctx.Done():
				pubErr = ctx.Err()
				break wait
			}
		}
		if published > 0 {
			if err := r.store.DeleteOutbox(ctx, published); err != nil {
				return errors.Join(pubErr, err)
			}
		}
		if pubErr != nil {
			return fmt.Errorf("publish change: %w", pubErr)
		}
		if len(events) < relayBatch {
			return nil
		}
	}
}
