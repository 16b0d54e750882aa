package pvk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/store"
)

// TestRelayResume starts a relay over an outbox and a stream in the states a crash or a power loss can
// leave behind, and checks that the stream ends up holding every change once, in outbox order.
func TestRelayResume(t *testing.T) {
	tests := []struct {
		name string
		// outbox and inStream number the events each holds.
		outbox, inStream []int
	}{
		{name: "fresh", outbox: []int{1, 2, 3}},
		{name: "crash before the outbox was cleared", outbox: []int{1, 2, 3, 4, 5}, inStream: []int{1, 2, 3, 4, 5}},
		{name: "stream lost its unsynced tail", outbox: []int{1, 2, 3, 4, 5, 6}, inStream: []int{1, 2}},
		{name: "outbox holds only later events", outbox: []int{4, 5, 6}, inStream: []int{1, 2, 3}},
		{name: "nothing new", outbox: []int{2, 3}, inStream: []int{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			bus, js, db := relayFixture(t, 100*time.Millisecond)
			names := namesOf(bus)
			for _, n := range tc.inStream {
				if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: names.subject(n % Partitions), Data: []byte(fmt.Sprint(n))},
					jetstream.WithMsgID(changeID(n))); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range tc.outbox {
				if _, err := db.Write.ExecContext(ctx, `INSERT INTO outbox (id, change_id, partition, payload, create_time_ms) VALUES (?, ?, ?, ?, 0)`,
					n, changeID(n), n%Partitions, []byte(fmt.Sprint(n))); err != nil {
					t.Fatal(err)
				}
			}
			// Past the duplicate window only the relay's resumption keeps it from publishing a change twice.
			time.Sleep(300 * time.Millisecond)

			r := newRelay(&sqlStore{db: db}, js, names, time.Hour, prometheus.NewRegistry())
			if err := r.step(ctx); err != nil {
				t.Fatal(err)
			}

			want := slices.Concat(tc.inStream, tc.outbox)
			slices.Sort(want)
			want = slices.Compact(want)
			if got := streamChanges(t, js); !slices.Equal(got, want) {
				t.Errorf("stream holds %v, want %v", got, want)
			}
			// Every event stays in the outbox for the retention (the stream may not have synced it), then goes,
			// and nothing is published twice.
			if n := countOutbox(t, db); n != len(tc.outbox) {
				t.Errorf("outbox holds %d events within the retention, want %d", n, len(tc.outbox))
			}
			if err := r.prune(ctx, time.Now().Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			if n := countOutbox(t, db); n != 0 {
				t.Errorf("outbox holds %d events after the retention", n)
			}
			if err := r.step(ctx); err != nil {
				t.Fatal(err)
			}
			if got := streamChanges(t, js); !slices.Equal(got, want) {
				t.Errorf("after a second step the stream holds %v, want %v", got, want)
			}
		})
	}
}

// A publish whose acknowledgement never comes (here a subscriber takes the message and never answers, as
// when a stream leader dies after taking it) fails after publishAckTimeout: the relay resumes from the
// stream instead of waiting forever.
func TestRelayLostAcknowledgement(t *testing.T) {
	ctx := context.Background()
	bus, js, db := relayFixture(t, time.Minute)
	swallowed := streamNames{stream: namesOf(bus).stream, subjects: "swallowed."}
	sub, err := bus.Conn.Subscribe("swallowed.>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO outbox (id, change_id, partition, payload, create_time_ms) VALUES (1, ?, 0, ?, 0)`,
		changeID(1), []byte("1")); err != nil {
		t.Fatal(err)
	}
	r := newRelay(&sqlStore{db: db}, js, swallowed, time.Hour, prometheus.NewRegistry())
	ctx, cancel := context.WithTimeout(ctx, 3*publishAckTimeout)
	defer cancel()
	start := time.Now()
	err = r.step(ctx)
	if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) || time.Since(start) > 2*publishAckTimeout || r.known {
		t.Fatalf("step = %v after %s (resume next: %t); want the publish timeout after %s", err, time.Since(start), !r.known, publishAckTimeout)
	}
}

// relayFixture is an embedded NATS with the change stream (duplicate window dup) and a PVK database, in
// a directory of the test's.
func relayFixture(t *testing.T, dup time.Duration) (*natsbus.Bus, jetstream.JetStream, *store.DB) {
	t.Helper()
	dir := t.TempDir()
	bus, err := natsbus.Open(natsbus.Config{DataDir: dir, Name: "test", Sync: natsbus.Sync(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close() })
	js, err := newJetStream(bus.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureStream(context.Background(), js, namesOf(bus), Config{StreamReplicas: 1, StreamMaxAge: time.Hour, DuplicateWindow: dup}); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), store.Config{DataDir: dir}, "pvk", Migrations)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return bus, js, db
}

func changeID(n int) string { return fmt.Sprintf("change-%03d", n) }

// streamChanges returns the numbers of the changes in the stream, in stream order.
func streamChanges(t *testing.T, js jetstream.JetStream) []int {
	t.Helper()
	ctx := context.Background()
	stream, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for seq := uint64(1); seq <= stream.CachedInfo().State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscan(string(msg.Data), &n); err != nil || msg.Header.Get(jetstream.MsgIDHeader) != changeID(n) {
			t.Fatalf("message %d: %q with id %q", seq, msg.Data, msg.Header.Get(jetstream.MsgIDHeader))
		}
		got = append(got, n)
	}
	return got
}

func countOutbox(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	if err := db.Read.QueryRow(`SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// failingStream is a JetStream whose stream lookups fail while failing is set, counting them: each relay
// step starts with one when it does not know where the stream ends.
type failingStream struct {
	jetstream.JetStream
	failing atomic.Bool
	calls   atomic.Int64
}

func (f *failingStream) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	f.calls.Add(1)
	if f.failing.Load() {
		return nil, errors.New("nats: timeout")
	}
	return f.JetStream.Stream(ctx, name)
}

// While the stream cannot be reached the relay backs off (doubling waits with jitter, capped) instead of
// retrying every poll; once the stream is back it publishes again within the cap.
func TestRelayBacksOffWhileTheStreamFails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus, js, db := relayFixture(t, time.Minute)
	if _, err := db.Write.ExecContext(ctx, `INSERT INTO outbox (id, change_id, partition, payload, create_time_ms) VALUES (1, ?, 0, ?, 0)`,
		changeID(1), []byte("1")); err != nil {
		t.Fatal(err)
	}
	fs := &failingStream{JetStream: js}
	fs.failing.Store(true)
	r := newRelay(&sqlStore{db: db}, fs, namesOf(bus), time.Hour, prometheus.NewRegistry())
	var failures atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx, func(error) { failures.Add(1) })
	}()
	window := 2 * time.Second
	time.Sleep(window)
	// Polling every relayPoll would make 20 attempts; waits of at least 50, 100, 200, 400 and 800 ms allow 6.
	if n := fs.calls.Load(); n > 7 || n < 2 {
		t.Errorf("%d attempts against the failing stream in %s; want 2 to 7 (backing off)", n, window)
	}
	if failures.Load() != fs.calls.Load() {
		t.Errorf("%d failures reported for %d attempts", failures.Load(), fs.calls.Load())
	}
	fs.failing.Store(false)
	deadline := time.Now().Add(relayRetryMax + 5*time.Second)
	for len(streamChanges(t, js)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing published %s after the stream came back", relayRetryMax+5*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

// The waits double from relayRetryMin up to relayRetryMax, each between half and all of its step.
func TestRelayRetryWait(t *testing.T) {
	for n := 1; n <= 100; n++ {
		step := min(relayRetryMin<<min(n-1, 20), relayRetryMax)
		for range 50 {
			if d := retryWait(n); d < step/2 || d > step {
				t.Fatalf("retryWait(%d) = %s, want %s to %s", n, d, step/2, step)
			}
		}
	}
}
