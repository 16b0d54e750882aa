package sts

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/reftoken"
	"github.com/hnsec/hnsec/pkg/store"
)

// maxBatch bounds the references written in one transaction.
const maxBatch = 1024

// Server implements TokenService.
type Server struct {
	stsv1.UnimplementedTokenServiceServer
	cfg      Config
	store    Store
	keys     *keyRing
	verifier reftoken.Verifier
	refs     *store.Batcher[reference]
	clients  *clientCache
	throttle *throttle
	nc       *nats.Conn
	metrics  *metrics
	log      *slog.Logger
}

var _ stsv1.TokenServiceServer = (*Server)(nil)

// Open migrates the STS database, loads the key ring and returns the server. Run must be running for
// tokens to be issued.
func Open(ctx context.Context, cfg Config, storeCfg store.Config, nc *nats.Conn, registry registryv1.ClientRegistryServiceClient,
	reg prometheus.Registerer, log *slog.Logger) (*Server, *store.DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, storeCfg, "sts", migrations)
	if err != nil {
		return nil, nil, err
	}
	st := &sqlStore{db: db}
	keys, err := loadKeyRing(ctx, st)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	m := newMetrics(reg)
	return &Server{
		refs: store.NewBatcher(maxBatch, cfg.CommitLinger, func(ctx context.Context, refs []reference) error {
			m.batch.Observe(float64(len(refs)))
			return st.InsertReferences(ctx, refs)
		}),
		cfg:      cfg,
		store:    st,
		keys:     keys,
		verifier: reftoken.Verifier{Issuer: cfg.Issuer, Zone: cfg.Zone, Leeway: 5 * time.Second},
		clients:  newClientCache(registry, cfg.ClientCacheTTL),
		throttle: newThrottle(cfg.FailureBurst, cfg.FailureRefill),
		nc:       nc,
		metrics:  m,
		log:      log,
	}, db, nil
}

// Run writes token references, follows registry change events and sweeps expired state until ctx ends;
// then it writes what is still queued and returns.
func (s *Server) Run(ctx context.Context) error {
	sub, err := s.nc.Subscribe(natsbus.SubjectClientChanged, func(m *nats.Msg) { s.clients.drop(string(m.Data)) })
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	go s.sweep(ctx)
	return s.refs.Run(ctx)
}

// sweep drops expired cache and throttle entries, and references that expired an hour ago, every minute.
func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.clients.sweep(now)
			s.throttle.sweep(now)
			cutoff := now.Add(-time.Hour)
			if n, err := s.store.DeleteExpired(ctx, cutoff.Add(-s.cfg.TokenTTL), cutoff); err != nil {
				s.log.Error("delete expired references", "err", err)
			} else if n > 0 {
				s.log.Debug("expired references deleted", "count", n)
			}
		}
	}
}
