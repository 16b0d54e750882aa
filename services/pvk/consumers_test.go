package pvk

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/secrets"
)

// A durable consumer whose subscription is gone (its deletion failed half way, or a replay on another
// replica recreated it) is deleted by the sweep once it is older than the grace; consumers of existing
// subscriptions, young ones (a subscription being created) and other consumers stay.
func TestConsumerSweepDeletesOrphans(t *testing.T) {
	ctx := context.Background()
	bus, js, db := relayFixture(t, time.Minute)
	st := &sqlStore{db: db, sealer: testSealer(t)}
	srv := &Server{cfg: Config{AckWait: time.Second}, store: st, bus: bus, log: slog.New(slog.DiscardHandler),
		relay: newRelay(st, js, namesOf(bus), time.Hour, prometheus.NewRegistry())}
	subs := &Subscriptions{pvk: srv}
	live, orphan := guid.New(), guid.New()
	if err := st.CreateSubscription(ctx, Subscription{ID: live, Subscriber: guid.New(), CreateTime: time.Now()}, auditEvent("t", "created", "")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{consumerName(live), consumerName(orphan), "other-consumer"} {
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	// Within the grace nothing goes: the orphan may be a subscription being created.
	if n, err := subs.sweepConsumers(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("sweep within the grace deleted %d (%v)", n, err)
	}
	if n, err := subs.sweepConsumers(ctx, time.Now().Add(consumerGrace+time.Second)); err != nil || n != 1 {
		t.Fatalf("sweep deleted %d (%v), want the orphan", n, err)
	}
	stream, err := js.Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		left = append(left, name)
	}
	slices.Sort(left)
	if want := []string{"other-consumer", consumerName(live)}; !slices.Equal(left, want) {
		t.Fatalf("consumers left: %v, want %v", left, want)
	}
}

// An ack id opens only for its subscription, unaltered, within its ack wait.
func TestAckIDs(t *testing.T) {
	a, err := newAckIDs(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	other, err := newAckIDs(secrets.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	reply := "$JS.ACK.PVK_CHANGES.sub-x.1.42.7.1712345678901234567.0"
	id := a.seal("sub-1", reply, now.Add(time.Second))
	if strings.Contains(id, "PVK_CHANGES") || strings.Contains(id, "sub-x") {
		t.Fatalf("ack id %q shows the subject", id)
	}
	if got, err := a.open("sub-1", id, now); err != nil || got != reply {
		t.Fatalf("open = %q, %v", got, err)
	}
	altered := []byte(id)
	altered[len(altered)-5] ^= 1
	for name, open := range map[string]func() (string, error){
		"another subscription": func() (string, error) { return a.open("sub-2", id, now) },
		"another key":          func() (string, error) { return other.open("sub-1", id, now) },
		"expired":              func() (string, error) { return a.open("sub-1", id, now.Add(2*time.Second)) },
		"altered":              func() (string, error) { return a.open("sub-1", string(altered), now) },
		"garbage":              func() (string, error) { return a.open("sub-1", "unknown-ack-id", now) },
		"empty":                func() (string, error) { return a.open("sub-1", "", now) },
	} {
		if got, err := open(); !errors.Is(err, errUnknownAckID) || got != "" {
			t.Errorf("%s: open = %q, %v; want errUnknownAckID", name, got, err)
		}
	}
}
