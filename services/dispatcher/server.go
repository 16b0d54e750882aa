package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	dispatcherv1 "github.com/hnsec/hnsec/gen/hnsec/dispatcher/v1"
	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/ssrf"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/subscriber"
)

// syncEvery is how often the dispatcher reloads the webhook subscriptions without a change event (and
// renews its leases: at least three times a lease TTL).
const syncEvery = 5 * time.Second

// Server is the dispatcher: a worker per active webhook subscription, and the DeliveriesService.
type Server struct {
	dispatcherv1.UnimplementedDeliveriesServiceServer
	cfg    Config
	store  *sqlStore
	js     jetstream.JetStream
	bus    *natsbus.Bus
	pvk    pvkv1.SubscriptionsServiceClient
	tokens *tokenCache
	// subscribers says whether a subscriber may still receive (see hold.go).
	subscribers *subscriber.Checker
	sender      *sender
	metrics     *metrics
	attemptLog  *store.Batcher[attempt]
	// marks records citizen marks (citizen_marks.go) in group commits.
	marks   *store.Batcher[citizenMark]
	log     *slog.Logger
	wake    chan struct{}
	replica string
	// leases is nil until the lease bucket could be opened (Run retries); renewed is when they were last
	// renewed (unix nanoseconds).
	leases  *leases
	renewed atomic.Int64

	mu sync.Mutex
	// stream is the change stream PVK names for its webhook targets.
	stream  string
	workers map[string]*worker
	// holds are the webhook subscriptions held because their subscriber is cut off, with the cause.
	holds map[string]subscriber.Cause
}

var _ dispatcherv1.DeliveriesServiceServer = (*Server)(nil)

// Open migrates the dispatcher's database and returns the server; Run delivers. pvk must present the
// internal credential (ListWebhookTargets and DisableSubscription are internal), sts too (IssueSystemToken);
// subscribers says, at each attempt, whether a subscriber may still receive.
func Open(ctx context.Context, cfg Config, storeCfg store.Config, bus *natsbus.Bus, pvk pvkv1.SubscriptionsServiceClient,
	sts stsv1.TokenServiceClient, subscribers *subscriber.Checker, reg prometheus.Registerer, log *slog.Logger) (*Server, *store.DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if subscribers == nil {
		return nil, nil, errors.New("dispatcher: a subscriber checker is required")
	}
	nets, err := ssrf.ParseCIDRs(cfg.AllowCIDRs)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(bus.Conn)
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, storeCfg, "dispatcher", Migrations)
	if err != nil {
		return nil, nil, err
	}
	s := &Server{cfg: cfg, store: &sqlStore{db: db}, js: js, bus: bus, pvk: pvk, tokens: newTokenCache(sts), subscribers: subscribers,
		sender:  newSender(ssrf.Policy{AllowNetworks: nets, AllowHTTPHosts: cfg.AllowHTTPHosts}, cfg.Timeout),
		metrics: newMetrics(reg), log: log, wake: make(chan struct{}, 1), workers: map[string]*worker{}, holds: map[string]subscriber.Cause{}}
	if s.replica, err = replicaID(storeCfg.DataDir); err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	s.attemptLog = store.NewBatcher(1024, 10*time.Millisecond, s.store.logAttempts) // the log may wait: fewer, larger commits
	s.marks = store.NewBatcher(256, 0, s.store.saveMarks)                           // a lane waits for its mark: no lingering
	return s, db, nil
}

// Run delivers until ctx ends: it follows PVK's webhook subscriptions (on each change event, and every few
// seconds), runs a worker for each active one whose lease it holds (see sync), and keeps the delivery log.
func (s *Server) Run(ctx context.Context) error {
	sub, err := s.bus.Conn.Subscribe(s.bus.Subject(natsbus.SubjectSubscriptionChanged), func(*nats.Msg) { s.wakeUp() })
	if err != nil {
		return err
	}
	// A changed client may be a subscriber cut off or reinstated: look again (the checker dropped its answer).
	s.subscribers.OnChange(func(string) { s.wakeUp() })
	defer func() { _ = sub.Unsubscribe() }()
	logDone := make(chan error, 1)
	go func() { logDone <- s.attemptLog.Run(ctx) }()
	go func() { _ = s.marks.Run(ctx) }()
	go loop.Every(ctx, time.Hour, func(now time.Time) {
		if err := s.store.pruneAttempts(ctx, now.Add(-s.cfg.LogRetention)); err != nil && ctx.Err() == nil {
			s.log.Error("prune delivery log", "err", err)
		}
	})
	go loop.Every(ctx, s.cfg.LeaseTTL/8, s.watchLeases)
	go s.runRetention(ctx) // retention.go
	t := time.NewTicker(min(syncEvery, s.cfg.LeaseTTL/3))
	defer t.Stop()
	for {
		if err := s.sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("webhook subscriptions", "err", err)
		}
		select {
		case <-ctx.Done():
			held := s.stopAll()
			if s.leases != nil {
				s.leases.leave(context.WithoutCancel(ctx), held)
			}
			return <-logDone
		case <-s.wake:
		case <-t.C:
		}
	}
}

// wakeUp has Run sync now.
func (s *Server) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sync starts a worker for each active webhook subscription this replica holds the lease of and whose
// subscriber may receive, updates the running ones and stops the rest.
func (s *Server) sync(ctx context.Context) error {
	resp, err := s.pvk.ListWebhookTargets(ctx, &pvkv1.ListWebhookTargetsRequest{})
	if err != nil {
		return err
	}
	var ids []string
	for _, wt := range resp.GetTargets() {
		if wt.GetSubscription().GetStatus() == pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE {
			ids = append(ids, wt.GetSubscription().GetSubscriptionId())
		}
	}
	if s.leases == nil {
		l, err := openLeases(ctx, s.js, s.bus.Name(leaseBucket), s.cfg.LeaseTTL, max(1, s.cfg.Replicas), s.replica)
		if err != nil {
			return err
		}
		s.leases = l
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL/3)
	held, surplus, err := s.leases.claim(cctx, ids)
	cancel()
	if err != nil {
		return err
	}
	s.renewed.Store(time.Now().UnixNano())
	// The surplus goes only once its workers have stopped (below).
	defer s.leases.release(ctx, surplus)
	active, holds := map[string]bool{}, map[string]subscriber.Cause{}
	for _, wt := range resp.GetTargets() {
		sub := wt.GetSubscription()
		if !held[sub.GetSubscriptionId()] || sub.GetStatus() != pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE {
			continue
		}
		if s.holding(ctx, sub.GetSubscriptionId(), sub.GetSubscriberClientId(), holds) {
			continue // stopped below, its changes kept
		}
		t, err := targetOf(wt)
		if err != nil {
			s.log.Error("webhook subscription", "subscription_id", sub.GetSubscriptionId(), "err", err)
			continue
		}
		active[t.ID] = true
		s.mu.Lock()
		s.stream = wt.GetStream()
		w := s.workers[t.ID]
		if w != nil && (w.consumer != wt.GetConsumer() || w.stopping.Load()) {
			s.mu.Unlock()
			w.stop()
			s.mu.Lock()
			w = nil
		}
		if w == nil {
			w = newWorker(s, t, wt.GetConsumer())
			s.workers[t.ID] = w
			w.start(ctx)
		} else {
			w.target.Store(t)
		}
		s.mu.Unlock()
	}
	s.setHolds(holds)
	s.mu.Lock()
	var stopped []*worker
	for id, w := range s.workers {
		if !active[id] {
			stopped = append(stopped, w)
			delete(s.workers, id)
			s.metrics.lag.DeleteLabelValues(id)
		}
	}
	s.mu.Unlock()
	for _, w := range stopped {
		w.stop()
	}
	s.updateLag(ctx)
	return nil
}

// replicaID is this process's dispatcher replica id, kept in its data directory (not in the database,
// which the replicas may share) so that after a restart it takes its own leases back at once.
func replicaID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "dispatcher-replica-id")
	b, err := os.ReadFile(path)
	if err == nil && guid.Valid(strings.TrimSpace(string(b))) {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id := guid.New()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	return id, os.WriteFile(path, []byte(id+"\n"), 0o600)
}

// watchLeases stops every worker when the leases went unrenewed for half their TTL (NATS unreachable, or
// a sync stuck): they lapse at the TTL and another replica takes them, and two replicas must never deliver
// one subscription.
func (s *Server) watchLeases(now time.Time) {
	if now.Sub(time.Unix(0, s.renewed.Load())) <= s.cfg.LeaseTTL/2 {
		return
	}
	s.mu.Lock()
	running := len(s.workers)
	s.mu.Unlock()
	if running > 0 {
		s.log.Warn("dispatcher leases not renewed: stopping deliveries until they are", "workers", running)
		s.stopAll()
	}
}

// targetOf reads a webhook target, with a signer for each of its secrets.
func targetOf(wt *pvkv1.WebhookTarget) (*target, error) {
	sub := wt.GetSubscription()
	t := &target{ID: sub.GetSubscriptionId(), Subscriber: sub.GetSubscriberClientId(), URL: sub.GetWebhook().GetUrl(),
		XAuth: sub.GetWebhook().GetUseXAuthorization(), Filters: filtersOf(sub.GetFilters())}
	for _, secret := range wt.GetSecrets() {
		sg, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			return nil, err
		}
		t.signers = append(t.signers, sg)
	}
	return t, nil
}

// updateLag sets each subscription's lag: messages waiting in or handed out by its consumer, and parked.
func (s *Server) updateLag(ctx context.Context) {
	s.mu.Lock()
	workers := make([]*worker, 0, len(s.workers))
	for _, w := range s.workers {
		workers = append(workers, w)
	}
	stream := s.stream
	s.mu.Unlock()
	for _, w := range workers {
		info, err := s.js.Consumer(ctx, stream, w.consumer)
		if err != nil {
			continue
		}
		ci := info.CachedInfo()
		waiting, err := s.store.waitingCount(ctx, w.id)
		if err != nil {
			continue
		}
		s.metrics.lag.WithLabelValues(w.id).Set(float64(ci.NumPending) + float64(ci.NumAckPending) + float64(waiting))
	}
}

// streamName is the change stream's name.
func (s *Server) streamName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream
}

// stopAll stops every worker and returns their subscriptions.
func (s *Server) stopAll() []string {
	s.mu.Lock()
	workers := s.workers
	s.workers = map[string]*worker{}
	s.mu.Unlock()
	var ids []string
	for id, w := range workers {
		w.stop()
		ids = append(ids, id)
	}
	return ids
}

// worker returns the running worker of a subscription, or nil.
func (s *Server) worker(id string) *worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers[id]
}

// logAttempt appends an attempt to the delivery log without holding up the delivery.
func (s *Server) logAttempt(a attempt) {
	go func() {
		if err := s.attemptLog.Submit(context.Background(), a); err != nil && err != store.ErrClosed {
			s.log.Error("delivery log", "subscription_id", a.SubscriptionID, "err", err)
		}
	}()
}

// disable has PVK disable a subscription.
func (s *Server) disable(ctx context.Context, id, reason string) error {
	_, err := s.pvk.DisableSubscription(context.WithoutCancel(ctx), &pvkv1.DisableSubscriptionRequest{SubscriptionId: id, Reason: reason})
	return err
}
