package pvk

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
