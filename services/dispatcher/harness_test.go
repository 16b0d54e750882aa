package dispatcher

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/subscriber"
)

// harness runs dispatcher replicas in the test process against an embedded JetStream and a SQLite
// dispatcher store they share, with fakes of PVK (one webhook subscription), the STS and the registry, a
// receiver that records what it takes, and faults injected through the JetStream interface.
type harness struct {
	t      *testing.T
	bus    *natsbus.Bus
	js     jetstream.JetStream
	faults *faultJS
	dir    string
	cfg    Config
	pvk    *fakePVK
	rcv    *recorder
	sub    string
	sekv   atomic.Int64
	stream string
}

const (
	testStream     = "PVK_TEST"
	testSubject    = "pvk.test.0"
	testSubscriber = "6f1c2d3e-0000-4000-8000-00000000c11e"
)

// newHarness starts the embedded JetStream, the stream and the subscription's consumer (ack wait 1 s) and
// the receiver; mod adjusts the dispatcher's configuration.
func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	bus, err := natsbus.Open(natsbus.Config{DataDir: t.TempDir(), Name: "dispatcher-test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	js, err := jetstream.New(bus.Conn)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: testStream, Subjects: []string{"pvk.test.*"}, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	h := &harness{t: t, bus: bus, js: js, faults: &faultJS{JetStream: js}, dir: t.TempDir(), pvk: &fakePVK{}, rcv: newRecorder(t),
		sub: guid.New(), stream: testStream}
	_, err = js.CreateOrUpdateConsumer(ctx, testStream, jetstream.ConsumerConfig{Durable: "sub-" + h.sub, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Second, MaxAckPending: 1000})
	require.NoError(t, err)
	h.cfg = Config{Schedule: Schedule{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}, Timeout: 5 * time.Second,
		Concurrency: 8, BreakerFailures: 1000, BreakerPeriod: time.Hour, RetryTick: 10 * time.Millisecond, LogRetention: time.Hour, DeadLetterRetention: 24 * time.Hour,
		LeaseTTL: 3 * time.Second, AllowCIDRs: []string{"127.0.0.0/8"}, AllowHTTPHosts: []string{"127.0.0.1"}}
	if mod != nil {
		mod(&h.cfg)
	}
	h.pvk.target = &pvkv1.WebhookTarget{Subscription: &pvkv1.Subscription{SubscriptionId: h.sub, SubscriberClientId: testSubscriber,
		Status: pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE, Webhook: &pvkv1.Webhook{Url: h.rcv.srv.URL + "/pvk"}},
		Secrets: []string{"whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, Stream: testStream, Consumer: "sub-" + h.sub}
	return h
}

// open opens a dispatcher replica on the shared store, its JetStream behind the fault injector.
func (h *harness) open() *Server {
	h.t.Helper()
	s, db, err := Open(context.Background(), h.cfg, store.Config{DataDir: h.dir}, h.bus, h.pvk, fakeSTS{},
		subscriber.NewChecker(fakeRegistry{}, time.Minute), prometheus.NewRegistry(), slog.New(slog.NewTextHandler(h.t.Output(), nil)))
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = db.Close() })
	s.js = h.faults
	return s
}

// start opens a replica and runs it; the function returned stops it (as at shutdown or a lease handover)
// and waits until it stopped.
func (h *harness) start() (*Server, func()) {
	s := h.open()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	h.t.Cleanup(stop)
	return s, stop
}

// publish appends a change of citizen to the stream and returns its change id; its endringsnummer is the
// next one, and it is the first change of its setting (sekvensnummer 1), so only the endringsnummer orders.
func (h *harness) publish(citizen string) string {
	h.t.Helper()
	id := guid.New()
	body, err := json.Marshal(map[string]any{"id": id, "time": time.Now().UTC(), "endringsnummer": h.sekv.Add(1), "data": map[string]any{
		"innbyggerFnr": citizen, "sekvensnummer": 1, "definisjonGuid": "6f1c2d3e-0000-4000-8000-0000000000a1", "typePi": "samtykke",
		"partKode": "P"}})
	require.NoError(h.t, err)
	_, err = h.js.Publish(context.Background(), testSubject, body, jetstream.WithMsgID(id))
	require.NoError(h.t, err)
	return id
}

// arrival is one call the receiver took (2xx) or refused (0 while it is being answered).
type arrival struct {
	ID      string // webhook-id
	Citizen string
	Seq     int64 // endringsnummer
	Status  int
}

// recorder is the webhook receiver: respond decides each answer (204 by default).
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	respond func(a arrival, call int) (int, http.Header)
	calls   []arrival
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{respond: func(arrival, int) (int, http.Header) { return http.StatusNoContent, nil }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev struct {
			Endringsnummer int64 `json:"endringsnummer"`
			Data           struct {
				Fnr string `json:"innbyggerFnr"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &ev)
		a := arrival{ID: req.Header.Get("webhook-id"), Citizen: ev.Data.Fnr, Seq: ev.Endringsnummer}
		r.mu.Lock()
		respond := r.respond
		n := 0
		for _, c := range r.calls {
			if c.ID == a.ID {
				n++
			}
		}
		i := len(r.calls) // calls are kept in arrival order, answered or not
		r.calls = append(r.calls, a)
		r.mu.Unlock()
		status, header := respond(a, n)
		r.mu.Lock()
		r.calls[i].Status = status
		r.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// setRespond changes how the receiver answers; call counts the earlier calls with the same webhook-id.
func (r *recorder) setRespond(f func(a arrival, call int) (int, http.Header)) {
	r.mu.Lock()
	r.respond = f
	r.mu.Unlock()
}

// taken returns the calls answered 2xx, in the order they arrived.
func (r *recorder) taken() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []arrival
	for _, c := range r.calls {
		if c.Status >= 200 && c.Status < 300 {
			out = append(out, c)
		}
	}
	return out
}

// callsOf counts the calls (any answer) with a webhook-id.
func (r *recorder) callsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.ID == id {
			n++
		}
	}
	return n
}

// waitForIDs waits until every id was taken and returns what was taken.
func (r *recorder) waitForIDs(t *testing.T, ids []string, within time.Duration) []arrival {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		seen := map[string]bool{}
		for _, a := range r.taken() {
			seen[a.ID] = true
		}
		for _, id := range ids {
			if !seen[id] {
				c.Errorf("change %s not delivered; taken: %v", id, r.taken())
				return
			}
		}
	}, within, 20*time.Millisecond)
	return r.taken()
}

// requireNeverBackwards checks, without de-duplicating, that no citizen's change was taken after a newer
// one of the same citizen: a change may come again (the same webhook-id) only while it is the citizen's
// newest.
func requireNeverBackwards(t *testing.T, got []arrival) {
	t.Helper()
	last := map[string]arrival{}
	for _, a := range got {
		if l, ok := last[a.Citizen]; ok && (a.Seq < l.Seq || (a.Seq == l.Seq && a.ID != l.ID)) {
			t.Fatalf("citizen %s went backwards: endringsnummer %d after %d; all taken: %v", a.Citizen, a.Seq, l.Seq, got)
		}
		last[a.Citizen] = a
	}
}

// fakePVK serves the one webhook target and records disabled subscriptions.
type fakePVK struct {
	pvkv1.SubscriptionsServiceClient
	mu       sync.Mutex
	target   *pvkv1.WebhookTarget
	disabled []string
}

func (f *fakePVK) ListWebhookTargets(context.Context, *pvkv1.ListWebhookTargetsRequest, ...grpc.CallOption) (*pvkv1.ListWebhookTargetsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &pvkv1.ListWebhookTargetsResponse{Targets: []*pvkv1.WebhookTarget{f.target}}, nil
}

func (f *fakePVK) GetSubscription(context.Context, *pvkv1.GetSubscriptionRequest, ...grpc.CallOption) (*pvkv1.GetSubscriptionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &pvkv1.GetSubscriptionResponse{Subscription: f.target.GetSubscription()}, nil
}

func (f *fakePVK) DisableSubscription(_ context.Context, req *pvkv1.DisableSubscriptionRequest, _ ...grpc.CallOption) (*pvkv1.DisableSubscriptionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disabled = append(f.disabled, req.GetSubscriptionId())
	f.target.Subscription.Status = pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED
	return &pvkv1.DisableSubscriptionResponse{}, nil
}

func (f *fakePVK) disabledCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.disabled)
}

// fakeSTS issues a SystemToken to anyone.
type fakeSTS struct{ stsv1.TokenServiceClient }

func (fakeSTS) IssueSystemToken(context.Context, *stsv1.IssueSystemTokenRequest, ...grpc.CallOption) (*stsv1.IssueSystemTokenResponse, error) {
	return &stsv1.IssueSystemTokenResponse{Token: "system-token", ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}, nil
}

// fakeRegistry says every subscriber is active with an approved replication grant.
type fakeRegistry struct {
	registryv1.ClientRegistryServiceClient
}

func (fakeRegistry) LookupClient(_ context.Context, req *registryv1.LookupClientRequest, _ ...grpc.CallOption) (*registryv1.LookupClientResponse, error) {
	return &registryv1.LookupClientResponse{Client: &registryv1.Client{ClientId: req.GetClientId(), Status: registryv1.ClientStatus_CLIENT_STATUS_ACTIVE,
		Grants: []*registryv1.Grant{{Scope: scope.PVKReplication, Status: registryv1.GrantStatus_GRANT_STATUS_APPROVED}}}}, nil
}

// faultJS is the dispatcher's JetStream with faults: getMsg may fail reading a stream message (as during
// a leader election), drop may swallow a message the consumer hands out (as when the pull request it went
// to died with its connection), and the running consumer iterator can be stopped.
type faultJS struct {
	jetstream.JetStream
	mu     sync.Mutex
	getMsg func(seq uint64) error
	drop   func(seq, delivered uint64) bool
	iters  []jetstream.MessagesContext
	// attached counts the consumer iterators handed out: a worker attaching makes one.
	attached int
}

// attaches counts the times a worker attached to the consumer.
func (f *faultJS) attaches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attached
}

func (f *faultJS) setGetMsg(fn func(seq uint64) error) {
	f.mu.Lock()
	f.getMsg = fn
	f.mu.Unlock()
}

func (f *faultJS) setDrop(fn func(seq, delivered uint64) bool) {
	f.mu.Lock()
	f.drop = fn
	f.mu.Unlock()
}

// breakConsumers stops the consumer iterators handed out so far: the worker sees an error and attaches
// again.
func (f *faultJS) breakConsumers() {
	f.mu.Lock()
	iters := f.iters
	f.iters = nil
	f.mu.Unlock()
	for _, it := range iters {
		it.Stop()
	}
}

func (f *faultJS) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	st, err := f.JetStream.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return &faultStream{Stream: st, f: f}, nil
}

func (f *faultJS) Consumer(ctx context.Context, stream, name string) (jetstream.Consumer, error) {
	c, err := f.JetStream.Consumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return &faultConsumer{Consumer: c, f: f}, nil
}

type faultStream struct {
	jetstream.Stream
	f *faultJS
}

func (s *faultStream) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	s.f.mu.Lock()
	fn := s.f.getMsg
	s.f.mu.Unlock()
	if fn != nil {
		if err := fn(seq); err != nil {
			return nil, err
		}
	}
	return s.Stream.GetMsg(ctx, seq, opts...)
}

type faultConsumer struct {
	jetstream.Consumer
	f *faultJS
}

func (c *faultConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	it, err := c.Consumer.Messages(opts...)
	if err != nil {
		return nil, err
	}
	c.f.mu.Lock()
	c.f.iters = append(c.f.iters, it)
	c.f.attached++
	c.f.mu.Unlock()
	return &faultIter{MessagesContext: it, f: c.f}, nil
}

type faultIter struct {
	jetstream.MessagesContext
	f *faultJS
}

func (it *faultIter) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	for {
		m, err := it.MessagesContext.Next(opts...)
		if err != nil {
			return m, err
		}
		it.f.mu.Lock()
		drop := it.f.drop
		it.f.mu.Unlock()
		if meta, err := m.Metadata(); err == nil && drop != nil && drop(meta.Sequence.Stream, meta.NumDelivered) {
			continue
		}
		return m, nil
	}
}

// citizenIDs returns the ids of a citizen's changes in the order taken, and whether any came twice.
func citizenIDs(got []arrival, citizen string) []string {
	var ids []string
	for _, a := range got {
		if a.Citizen == citizen {
			ids = append(ids, a.ID)
		}
	}
	return ids
}

// uniq drops repeats of the same id that follow each other.
func uniq(ids []string) []string {
	var out []string
	for _, id := range ids {
		if len(out) == 0 || out[len(out)-1] != id {
			out = append(out, id)
		}
	}
	return out
}
