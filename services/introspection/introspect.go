package introspection

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/scope"
)

// Server implements IntrospectionService.
type Server struct {
	introspectionv1.UnimplementedIntrospectionServiceServer
	clients  *clientauth.Authenticator
	sts      stsv1.TokenServiceClient
	registry registryv1.ClientRegistryServiceClient
	bus      *natsbus.Bus
	internal func(context.Context) bool
	maxAge   time.Duration
	cache    *cache
	answers  *prometheus.CounterVec
	cacheHit prometheus.Counter // answers{active, cache}, the busiest, looked up once
	log      *slog.Logger
}

var _ introspectionv1.IntrospectionServiceServer = (*Server)(nil)

// inactive is the one answer for every token that is not active.
var inactive = &introspectionv1.IntrospectResponse{Active: false}

// New returns the server; answers are cached until their token expires but at most maxAge, so a lost
// event cannot keep a revoked token active for long. Run must be running for revocations and client
// changes to reach the cache at once.
//
// internal reports whether a call comes from another hnsec service (PVK checking its callers' tokens): such
// callers need no client credentials.
func New(clients *clientauth.Authenticator, sts stsv1.TokenServiceClient, registry registryv1.ClientRegistryServiceClient,
	bus *natsbus.Bus, internal func(context.Context) bool, maxAge time.Duration, reg prometheus.Registerer, log *slog.Logger) *Server {
	answers := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hnsec_introspection_answers_total",
		Help: "Introspection answers by result (active, inactive) and source (cache, lookup).",
	}, []string{"result", "source"})
	reg.MustRegister(answers)
	return &Server{clients: clients, sts: sts, registry: registry, bus: bus, internal: internal, maxAge: maxAge, cache: newCache(),
		answers: answers, cacheHit: answers.WithLabelValues("active", "cache"), log: log}
}

// Run follows revocation and registry events, flushes the cache when the NATS connection comes back
// (events may have been missed), and sweeps expired answers until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer s.bus.OnReconnect(s.cache.flush)()
	for subject, drop := range map[string]func(string){
		natsbus.SubjectTokenRevoked:        s.cache.dropJTI,
		natsbus.SubjectClientTokensRevoked: s.cache.dropClient,
		natsbus.SubjectClientChanged:       s.cache.dropClient,
	} {
		sub, err := s.bus.Conn.Subscribe(s.bus.Subject(subject), func(m *nats.Msg) { drop(string(m.Data)) })
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	loop.Every(ctx, time.Minute, s.cache.sweep)
	return nil
}

// Introspect implements IntrospectionService.
func (s *Server) Introspect(ctx context.Context, req *introspectionv1.IntrospectRequest) (*introspectionv1.IntrospectResponse, error) {
	if !s.internal(ctx) {
		caller, _, err := s.clients.Authenticate(ctx, clientauth.Body{ClientID: req.GetClientId(), ClientSecret: req.GetClientSecret(),
			AssertionType: req.GetClientAssertionType(), Assertion: req.GetClientAssertion()})
		if err != nil {
			return nil, err
		}
		if !slices.Contains(caller.GetScopes(), scope.Introspect) {
			return nil, apierr.New(apierr.PermissionDenied, "this client may not introspect tokens (it lacks scope %s)", scope.Introspect)
		}
	}
	if req.GetToken() == "" {
		return nil, apierr.New(apierr.InvalidRequest, "token is missing")
	}
	key := tokenKey(sha256.Sum256([]byte(req.GetToken())))
	now := time.Now()
	if resp := s.cache.get(key, now); resp != nil {
		s.cacheHit.Inc()
		return resp, nil
	}
	gen := s.cache.generation()
	resp, expires, err := s.lookup(ctx, req.GetToken())
	if err != nil {
		return nil, err
	}
	if !resp.GetActive() {
		s.answers.WithLabelValues("inactive", "lookup").Inc()
		return resp, nil
	}
	if limit := now.Add(s.maxAge); limit.Before(expires) {
		expires = limit
	}
	s.cache.put(key, resp, expires, gen)
	s.answers.WithLabelValues("active", "lookup").Inc()
	return resp, nil
}

// lookup resolves the token through the STS and checks its client through the registry.
func (s *Server) lookup(ctx context.Context, token string) (*introspectionv1.IntrospectResponse, time.Time, error) {
	ref, err := s.sts.LookupReference(ctx, &stsv1.LookupReferenceRequest{AccessToken: token})
	if status.Code(err) == codes.NotFound {
		return inactive, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	r := ref.GetReference()
	client, err := s.registry.LookupClient(ctx, &registryv1.LookupClientRequest{ClientId: r.GetClientId()})
	if status.Code(err) == codes.NotFound {
		return inactive, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	c := client.GetClient()
	if c.GetStatus() == registryv1.ClientStatus_CLIENT_STATUS_BLOCKED {
		return inactive, time.Time{}, nil
	}
	// A scope whose grant was revoked after issuance is gone from the answer; with none left the token
	// is inactive.
	var scopes []string
	for _, sc := range r.GetScopes() {
		if slices.Contains(c.GetScopes(), sc) {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) == 0 {
		return inactive, time.Time{}, nil
	}
	return &introspectionv1.IntrospectResponse{
		Active:                   true,
		ClientId:                 r.GetClientId(),
		ClientName:               r.GetClientName(),
		Scope:                    strings.Join(scopes, " "),
		Aud:                      scope.Audiences(scopes),
		Iss:                      r.GetIssuer(),
		Exp:                      r.GetExpireTime().GetSeconds(),
		Iat:                      r.GetIssueTime().GetSeconds(),
		Nbf:                      r.GetNotBeforeTime().GetSeconds(),
		Jti:                      r.GetJti(),
		Zone:                     r.GetZone(),
		OrganisationNumber:       c.GetOrganisationNumber(),
		ParentOrganisationNumber: c.GetParentOrganisationNumber(),
		TokenType:                "bearer",
	}, r.GetExpireTime().AsTime(), nil
}
