package sts

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/authz"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/reftoken"
	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/subscriber"
)

// InternalMethods are the RPCs only other services may call.
var InternalMethods = []string{
	stsv1.TokenService_LookupReference_FullMethodName,
	stsv1.TokenService_IssueSystemToken_FullMethodName,
}

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
	clients  *clientauth.Authenticator
	bus      *natsbus.Bus
	metrics  *metrics
	log      *slog.Logger
	// admins is the principal check of RevokeAllTokens (see AuthorizeAdminsWith).
	admins authz.Admins
	// subscribers checks the audience of a replication SystemToken (see CheckSubscribersWith).
	subscribers *subscriber.Checker
}

var _ stsv1.TokenServiceServer = (*Server)(nil)

// Open migrates the STS database, loads the key ring and returns the server. Run must be running for
// tokens to be issued.
func Open(ctx context.Context, cfg Config, storeCfg store.Config, sealer *seal.Sealer, bus *natsbus.Bus, clients *clientauth.Authenticator,
	reg prometheus.Registerer, log *slog.Logger) (*Server, *store.DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, storeCfg, "sts", Migrations)
	if err != nil {
		return nil, nil, err
	}
	st := &sqlStore{db: db}
	keys, err := newKeyRing(ctx, cfg.Keys, st, sealer, cfg.TokenTTL, cfg.SystemTokenTTL)
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
		clients:  clients,
		bus:      bus,
		metrics:  m,
		log:      log,
	}, db, nil
}

// Run writes token references, deletes expired ones and rotates the key ring until ctx ends; then it
// writes what is still queued and returns.
func (s *Server) Run(ctx context.Context) error {
	go s.sweep(ctx)
	go s.keys.run(ctx, s.cfg.Keys.refreshInterval(), func(err error) { s.log.Error("key ring refresh", "err", err) })
	return s.refs.Run(ctx)
}

// expiredMargin is how long a reference is kept after its token expired (beside the clock differences
// between replicas, nothing needs it: an expired token is inactive by its exp).
const expiredMargin = 5 * time.Minute

// sweep deletes references whose tokens expired expiredMargin ago, every minute, in batches (DeleteExpired).
func (s *Server) sweep(ctx context.Context) {
	loop.Every(ctx, time.Minute, func(now time.Time) {
		cutoff := now.Add(-expiredMargin)
		if n, err := s.store.DeleteExpired(ctx, cutoff.Add(-s.cfg.TokenTTL), cutoff); err != nil {
			s.log.Error("delete expired references", "err", err)
		} else if n > 0 {
			s.log.Debug("expired references deleted", "count", n)
		}
	})
}
