package pvk

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/store"
)

// The change stream, as named in the default (empty) NATS namespace.
const (
	// StreamName is the JetStream stream of PVK's changes.
	StreamName = "PVK_CHANGES"
	// SubjectPrefix is followed by the partition: hnsec.pvk.changes.<0..Partitions-1>.
	SubjectPrefix = "hnsec.pvk.changes."
)

// streamNames are the change stream's name and subject prefix in a bus's namespace.
type streamNames struct{ stream, subjects string }

func namesOf(bus *natsbus.Bus) streamNames {
	return streamNames{stream: bus.Name(StreamName), subjects: bus.Subject(SubjectPrefix)}
}

// subject is the subject of a partition's changes.
func (n streamNames) subject(partition int) string { return fmt.Sprintf("%s%d", n.subjects, partition) }

// publishAckTimeout bounds the wait for the stream's acknowledgement of a published change. An
// acknowledgement can be lost (a stream leader that changes or dies after taking the message); without a
// bound the relay would wait for it forever and publish nothing more. After it, the relay learns from the
// stream where it ends and publishes again from there.
const publishAckTimeout = 5 * time.Second

// newJetStream is the JetStream context of PVK's relay, with publishAckTimeout.
func newJetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	return jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishAckTimeout))
}

// relayBatch bounds the outbox events read at a time.
const relayBatch = 500

// relay publishes the outbox to the change stream, in commit order, each event with Nats-Msg-Id = its
// change id. An event leaves the outbox only once the stream holds it on disk: at once when JetStream
// syncs every write, else after the retention, which outlasts JetStream's sync interval. A crash before
// the publish leaves the event in the outbox for the next run; on restart the relay asks the stream for its
// last change and publishes only what follows it, so a change is never stored twice, and a change the
// stream lost with the power (written but not yet synced) is published again.
type relay struct {
	store     Store
	js        jetstream.JetStream
	names     streamNames
	retention time.Duration
	wake      chan struct{}

	// known is false until the relay has learnt from the stream where to resume, and again after a
	// failed publish.
	known bool
	// published is the last outbox id the stream acknowledged, lastSeq the stream sequence it got: each
	// publish expects the stream to end where the one before it did, so a publish lost in a leader change
	// cannot let a later change take its place (the next ones are refused, and the relay resumes).
	published int64
	lastSeq   uint64
	// marks are the published ids not yet deleted from the outbox, with the time of their acknowledgement.
	marks []publishMark

	// lag observes each change's time from commit to the stream's acknowledgement.
	lag prometheus.Histogram
	mu  sync.Mutex
	// commits are the commits of this process not yet published, oldest first.
	commits []commitMark
}

// publishMark records that the stream acknowledged the outbox up to an id at a time.
type publishMark struct {
	upTo int64
	at   time.Time
}

// commitMark records that a transaction committed n changes, the last with outbox id upTo, at a time.
type commitMark struct {
	upTo int64
	n    int
	at   time.Time
}

// maxCommitMarks bounds the commits remembered for the lag metric while the stream is unreachable.
const maxCommitMarks = 100_000

func newRelay(st Store, js jetstream.JetStream, names streamNames, retention time.Duration, reg prometheus.Registerer) *relay {
	r := &relay{store: st, js: js, names: names, retention: retention, wake: make(chan struct{}, 1),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hnsec_pvk_publish_lag_seconds",
			Help: "Time from a setting change's commit to the change stream's acknowledgement.",
			Buckets: []float64{.001, .002, .003, .005, .0075, .01, .015, .02, .03, .04, .05, .075, .1, .15, .2, .3, .5, 1, 2, 5,
				10, 30},
		})}
	reg.MustRegister(r.lag)
	return r
}

// committed records a commit's changes for the lag metric and wakes the relay.
func (r *relay) committed(ws []*Write, at time.Time) {
	m := commitMark{at: at}
	for _, w := range ws {
		if w.Changed {
			m.upTo, m.n = max(m.upTo, w.OutboxID), m.n+1
		}
	}
	if m.n == 0 {
		return
	}
	r.mu.Lock()
	if len(r.commits) == maxCommitMarks {
		r.commits = r.commits[1:]
	}
	r.commits = append(r.commits, m)
	r.mu.Unlock()
	r.notify()
}

// acknowledged observes the lag of the commits the stream acknowledged up to an outbox id.
func (r *relay) acknowledged(upTo int64, at time.Time) {
	r.mu.Lock()
	n := 0
	for n < len(r.commits) && r.commits[n].upTo <= upTo {
		c := r.commits[n]
		for range c.n {
			r.lag.Observe(at.Sub(c.at).Seconds())
		}
		n++
	}
	r.commits = r.commits[n:]
	r.mu.Unlock()
}

// ensureStream creates or updates the change stream.
func ensureStream(ctx context.Context, js jetstream.JetStream, names streamNames, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, natsbus.SetupTimeout)
	defer cancel()
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       names.stream,
		Subjects:   []string{names.subjects + "*"},
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

// relayPoll is how often the relay looks at the outbox without a wake-up, in case one was missed.
const relayPoll = 100 * time.Millisecond

// The relay's waits after failed steps: the first is relayRetryMin, each next one twice the last, up to
// relayRetryMax; each is jittered (see retryWait).
const (
	relayRetryMin = 100 * time.Millisecond
	relayRetryMax = 5 * time.Second
)

// retryWait is the wait after the nth consecutive failed step (n ≥ 1): relayRetryMin doubled n-1 times,
// at most relayRetryMax, of which a random half is taken off, so that the relays of several replicas do
// not retry in step against a stream that has just come back.
func retryWait(n int) time.Duration {
	d := relayRetryMax
	if n < 16 {
		d = min(relayRetryMin<<(n-1), relayRetryMax)
	}
	return d/2 + rand.N(d/2+1)
}

// run publishes until ctx ends: at once after each commit, and every relayPoll in case a wake-up was
// missed; it deletes from the outbox what outlived the retention. After a failed step (the stream or the
// database unreachable) it waits retryWait, longer after each consecutive failure, and commits do not
// cut the wait short.
func (r *relay) run(ctx context.Context, onError func(error)) {
	failures := 0
	for {
		err := r.step(ctx)
		if err != nil && ctx.Err() == nil {
			onError(err)
		}
		wait, wake := relayPoll, r.wake
		if err != nil {
			failures++
			wait, wake = retryWait(failures), nil
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// step resumes where the stream stopped when that is not known yet, publishes and prunes.
func (r *relay) step(ctx context.Context) error {
	if !r.known {
		if err := r.resume(ctx); err != nil {
			return err
		}
		r.known = true
	}
	if err := r.drain(ctx); err != nil {
		return err
	}
	return r.prune(ctx, time.Now())
}

// resume finds the outbox event of the stream's last message: it and everything before it are in the
// stream (the relay publishes in outbox order), everything after it is not. When the last message is not
// in the outbox, the outbox holds only later events, which the stream has not seen.
func (r *relay) resume(ctx context.Context) error {
	stream, err := r.js.Stream(ctx, r.names.stream)
	if err != nil {
		return fmt.Errorf("change stream: %w", err)
	}
	r.published = 0
	last := stream.CachedInfo().State.LastSeq
	r.lastSeq = last
	if last == 0 {
		return nil
	}
	msg, err := stream.GetMsg(ctx, last)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("change stream's last message: %w", err)
	}
	id, err := r.store.OutboxID(ctx, msg.Header.Get(jetstream.MsgIDHeader))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Everything up to it is in the stream: it leaves the outbox after the retention, like what the relay
	// published itself.
	r.published = id
	if n := len(r.marks); n == 0 || r.marks[n-1].upTo < id {
		r.marks = append(r.marks, publishMark{upTo: id, at: time.Now()})
	}
	return nil
}

// prune deletes the events acknowledged at least the retention before now.
func (r *relay) prune(ctx context.Context, now time.Time) error {
	n := 0
	for n < len(r.marks) && !r.marks[n].at.After(now.Add(-r.retention)) {
		n++
	}
	if n == 0 {
		return nil
	}
	if err := r.store.DeleteOutbox(ctx, r.marks[n-1].upTo); err != nil {
		return err
	}
	r.marks = r.marks[n:]
	return nil
}

// drain publishes everything in the outbox after the last acknowledged event. Each batch is published
// asynchronously, in commit order on one connection, then every acknowledgement is awaited; the relay
// moves on to the last event acknowledged without a gap. An event whose acknowledgement was lost is
// published again and the stream drops the copy, so it keeps its first place.
func (r *relay) drain(ctx context.Context) error {
	for {
		events, err := r.store.PendingOutbox(ctx, r.published, relayBatch)
		if err != nil || len(events) == 0 {
			return err
		}
		acks := make([]jetstream.PubAckFuture, 0, len(events))
		var pubErr error
		for i, ev := range events {
			msg := &nats.Msg{Subject: r.names.subject(ev.Partition), Data: ev.Payload, Header: nats.Header{}}
			msg.Header.Set("Content-Type", "application/cloudevents+json")
			f, err := r.js.PublishMsgAsync(msg, jetstream.WithMsgID(ev.ChangeID), jetstream.WithExpectLastSequence(r.lastSeq+uint64(i)))
			if err != nil {
				pubErr = err
				break
			}
			acks = append(acks, f)
		}
		published, lastSeq := int64(0), r.lastSeq
	wait:
		for i, f := range acks {
			select {
			case ack := <-f.Ok():
				published, lastSeq = events[i].ID, ack.Sequence
			case err := <-f.Err():
				pubErr = err
				break wait
			case <-ctx.Done():
				pubErr = ctx.Err()
				break wait
			}
		}
		if published > 0 {
			r.acknowledged(published, time.Now())
			r.published, r.lastSeq = published, lastSeq
			r.marks = append(r.marks, publishMark{upTo: published, at: time.Now()})
		}
		if pubErr != nil {
			r.known = false // learn from the stream where it ends
			return fmt.Errorf("publish change: %w", pubErr)
		}
		if len(events) < relayBatch {
			return nil
		}
	}
}
