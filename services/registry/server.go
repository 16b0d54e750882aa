package registry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/text"
)

// AdminScope is the scope an access token needs for the admin RPCs.
const AdminScope = scope.RegistryAdmin

// InternalMethods are the RPCs only other services may call.
var InternalMethods = []string{
	registryv1.ClientRegistryService_AuthenticateClient_FullMethodName,
	registryv1.ClientRegistryService_LookupClient_FullMethodName,
	registryv1.ClientRegistryService_AuthorizeAdmin_FullMethodName,
}

// maxNameLen bounds names (characters).
const maxNameLen = 200

// Server implements ClientRegistryService.
type Server struct {
	registryv1.UnimplementedClientRegistryServiceServer
	cfg    Config
	store  Store
	pepper []byte
	bus    *natsbus.Bus
	sts    stsv1.TokenServiceClient
	log    *slog.Logger
}

var _ registryv1.ClientRegistryServiceServer = (*Server)(nil)

// Open migrates the registry database and returns the server. sealer (the key-encryption key) seals the
// key of the secret hash at rest; nc receives change events; sts resolves admin callers' access tokens.
func Open(ctx context.Context, cfg Config, storeCfg store.Config, sealer *seal.Sealer, bus *natsbus.Bus, sts stsv1.TokenServiceClient, log *slog.Logger) (*Server, *store.DB, error) {
	if sealer == nil {
		return nil, nil, errors.New("registry: a key-encryption key is required to seal the secret hash key")
	}
	db, err := store.Open(ctx, storeCfg, "registry", Migrations)
	if err != nil {
		return nil, nil, err
	}
	st := &sqlStore{db: db}
	// The key of the keyed secret hash, sealed under the key-encryption key: a copy of the database alone
	// cannot even confirm a guessed client secret. A key an older version kept in the clear is sealed here.
	pepper, err := st.sealedSetting(ctx, sealer, "secret_hash_key", secrets.NewKey)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return &Server{cfg: cfg, store: st, pepper: pepper, bus: bus, sts: sts, log: log}, db, nil
}

// CreateClient implements ClientRegistryService.
// Operators may create any client; organisation admins only their own organisation's, as instances of an
// approved client system.
func (s *Server) CreateClient(ctx context.Context, req *registryv1.CreateClientRequest) (*registryv1.CreateClientResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	if !p.owns(registryv1.Role_ROLE_ORGANISATION, req.GetOrganisationNumber()) {
		return nil, denied("organisation")
	}
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	if err := checkOrgnr(req.GetOrganisationNumber()); err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "%v", err)
	}
	if len(req.GetScopes()) == 0 {
		return nil, apierr.New(apierr.InvalidRequest, "scopes: at least one scope is required")
	}
	scopes, err := scope.Parse(strings.Join(req.GetScopes(), " "))
	if err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "scopes: %v", err)
	}
	if err := s.checkSystemForClient(ctx, p, req.GetClientSystemId()); err != nil {
		return nil, err
	}
	// Operators grant at once, and may grant scopes no API registered; organisation admins request
	// registered scopes, which wait for the API's owner.
	status := registryv1.GrantStatus_GRANT_STATUS_APPROVED
	if !p.isOperator() {
		status = registryv1.GrantStatus_GRANT_STATUS_PENDING
		for _, sc := range scopes {
			if err := s.registered(ctx, sc); err != nil {
				return nil, err
			}
		}
	}
	c, secret, err := s.createClient(ctx, Client{
		Name:               req.GetName(),
		OrganisationNumber: req.GetOrganisationNumber(),
		ClientSystemID:     req.GetClientSystemId(),
		Scopes:             scopes,
	}, status)
	if err != nil {
		return nil, err
	}
	s.log.Info("client created", "client_id", c.ID, "organisation_number", c.OrganisationNumber)
	return &registryv1.CreateClientResponse{Client: toProto(c), ClientSecret: secret}, nil
}

// checkSystemForClient checks that a new client configuration may be an instance of the system: it must
// exist and be approved. Only operators may create configurations without a system.
func (s *Server) checkSystemForClient(ctx context.Context, p principal, id string) error {
	if id == "" {
		if p.isOperator() {
			return nil
		}
		return apierr.New(apierr.InvalidRequest, "client_system_id is required")
	}
	cs, err := s.visibleSystem(ctx, p, id)
	if err != nil {
		return err
	}
	if cs.Status != systemApproved {
		return apierr.New(apierr.FailedPrecondition, "client system %s is %s, not approved", id, systemStatusText[cs.Status])
	}
	return nil
}

// createClient stores a new active client with a fresh id and secret and a grant in status for each of
// its scopes, returning the stored client and the secret.
func (s *Server) createClient(ctx context.Context, c Client, status registryv1.GrantStatus) (Client, string, error) {
	c.ID = guid.New()
	c.Status = registryv1.ClientStatus_CLIENT_STATUS_ACTIVE
	c.CreateTime = time.Now().UTC().Truncate(time.Second)
	secret := secrets.New()
	first := Secret{ID: guid.New(), Hash: secrets.Hash(s.pepper, secret), CreateTime: c.CreateTime}
	grants := make([]Grant, len(c.Scopes))
	for i, sc := range c.Scopes {
		grants[i] = Grant{ClientID: c.ID, Scope: sc, Status: status, UpdateTime: c.CreateTime}
	}
	if err := s.store.CreateClient(ctx, c, first, grants); err != nil {
		return Client{}, "", storeError(err, "client")
	}
	stored, err := s.store.GetClient(ctx, c.ID)
	return stored, secret, err
}

// GetClient implements ClientRegistryService.
func (s *Server) GetClient(ctx context.Context, req *registryv1.GetClientRequest) (*registryv1.GetClientResponse, error) {
	_, c, _, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	return &registryv1.GetClientResponse{Client: toProto(c)}, nil
}

// managedClient authenticates the admin caller and loads a client configuration it may manage, returning
// ctx naming the caller as actor.
func (s *Server) managedClient(ctx context.Context, id string) (principal, Client, context.Context, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return p, Client{}, ctx, err
	}
	c, err := s.ownClient(ctx, p, id)
	return p, c, ctx, err
}

// ownClient loads a client configuration p may manage (principal.manages).
func (s *Server) ownClient(ctx context.Context, p principal, id string) (Client, error) {
	if !guid.Valid(id) {
		return Client{}, apierr.New(apierr.InvalidRequest, "client_id must be a GUID")
	}
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return Client{}, lookupError(p, err, "client")
	}
	if !p.manages(c) {
		return Client{}, denied("client")
	}
	return c, nil
}

// BlockClient implements ClientRegistryService.
func (s *Server) BlockClient(ctx context.Context, req *registryv1.BlockClientRequest) (*registryv1.BlockClientResponse, error) {
	c, err := s.setStatus(ctx, req.GetClientId(), registryv1.ClientStatus_CLIENT_STATUS_BLOCKED)
	if err != nil {
		return nil, err
	}
	return &registryv1.BlockClientResponse{Client: toProto(c)}, nil
}

// UnblockClient implements ClientRegistryService.
func (s *Server) UnblockClient(ctx context.Context, req *registryv1.UnblockClientRequest) (*registryv1.UnblockClientResponse, error) {
	c, err := s.setStatus(ctx, req.GetClientId(), registryv1.ClientStatus_CLIENT_STATUS_ACTIVE)
	if err != nil {
		return nil, err
	}
	return &registryv1.UnblockClientResponse{Client: toProto(c)}, nil
}

// setStatus sets a client's status. No credential blocks itself: an organisation's (or the operator's)
// only admin credential would lock its tenant out for good.
func (s *Server) setStatus(ctx context.Context, id string, st registryv1.ClientStatus) (Client, error) {
	p, c, ctx, err := s.managedClient(ctx, id)
	if err != nil {
		return Client{}, err
	}
	if c.ID == p.clientID && st == registryv1.ClientStatus_CLIENT_STATUS_BLOCKED {
		return Client{}, apierr.New(apierr.FailedPrecondition, "a credential cannot block itself")
	}
	c, err = s.store.UpdateClient(ctx, id, func(c Client) (Client, error) {
		c.Status = st
		return c, nil
	})
	if err != nil {
		return Client{}, storeError(err, "client")
	}
	s.clientChanged(id)
	s.log.Info("client status changed", "client_id", id, "status", st.String())
	return c, nil
}

// AuthenticateClient implements ClientRegistryService: by secret (an unknown client and a wrong secret
// take the same work and give the same error) or by private_key_jwt assertion.
func (s *Server) AuthenticateClient(ctx context.Context, req *registryv1.AuthenticateClientRequest) (*registryv1.AuthenticateClientResponse, error) {
	var (
		c         Client
		secretEnd time.Time
		err       error
	)
	if req.GetClientAssertion() != "" {
		c, err = s.authenticateAssertion(ctx, req.GetClientId(), req.GetClientAssertion(), req.GetAudiences())
	} else {
		c, secretEnd, err = s.authenticateSecret(ctx, req.GetClientId(), req.GetClientSecret())
	}
	if err != nil {
		return nil, err
	}
	if c.Status == registryv1.ClientStatus_CLIENT_STATUS_BLOCKED {
		return nil, apierr.New(apierr.UnauthorizedClient, "client is blocked")
	}
	if c.ClientSystemID != "" {
		cs, err := s.store.GetClientSystem(ctx, c.ClientSystemID)
		if err != nil {
			return nil, storeError(err, "client system")
		}
		if cs.Status != systemApproved {
			return nil, apierr.New(apierr.UnauthorizedClient, "the client system is not approved")
		}
	}
	resp := &registryv1.AuthenticateClientResponse{Client: toProto(c)}
	if !secretEnd.IsZero() {
		resp.SecretExpireTime = timestamppb.New(secretEnd)
	}
	return resp, nil
}

// authenticateSecret checks a client secret against the client's live secrets, returning the client and
// when the matching secret expires (zero: never). An unknown client and a wrong secret cost the same work:
// one read of the secrets (none for an unknown id) and a comparison with every one of them, or with a
// stand-in; the client is loaded only after a match.
func (s *Server) authenticateSecret(ctx context.Context, id, secret string) (Client, time.Time, error) {
	failed := apierr.New(apierr.InvalidClient, "client authentication failed")
	hash := secrets.Hash(s.pepper, secret)
	if !guid.Valid(id) || secret == "" {
		return Client{}, time.Time{}, failed
	}
	stored, err := s.store.ListSecrets(ctx, id)
	if err != nil {
		return Client{}, time.Time{}, err
	}
	if len(stored) == 0 {
		stored = []Secret{{Hash: make([]byte, len(hash))}} // a stand-in to compare with, which never matches (no ID)
	}
	now := time.Now()
	var match *Secret
	for i, sec := range stored {
		if secrets.Equal(hash, sec.Hash) && sec.ID != "" && live(sec, now) && match == nil {
			match = &stored[i]
		}
	}
	if match == nil {
		return Client{}, time.Time{}, failed
	}
	c, err := s.store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Client{}, time.Time{}, failed
	}
	if err != nil {
		return Client{}, time.Time{}, err
	}
	return c, match.ExpireTime, nil
}

// LookupClient implements ClientRegistryService for internal callers.
func (s *Server) LookupClient(ctx context.Context, req *registryv1.LookupClientRequest) (*registryv1.LookupClientResponse, error) {
	if !guid.Valid(req.GetClientId()) {
		return nil, apierr.New(apierr.InvalidRequest, "client_id must be a GUID")
	}
	c, err := s.store.GetClient(ctx, req.GetClientId())
	if err != nil {
		return nil, storeError(err, "client")
	}
	return &registryv1.LookupClientResponse{Client: toProto(c)}, nil
}

// changed announces a change of a registry object other than a client.
func (s *Server) changed(objectType, objectID string) {
	b, _ := json.Marshal(map[string]string{"object_type": objectType, "object_id": objectID})
	if err := s.bus.Conn.Publish(s.bus.Subject(natsbus.SubjectRegistryChanged), b); err != nil {
		s.log.Error("publish registry change", "object_type", objectType, "object_id", objectID, "err", err)
	}
}

// clientChanged tells cache holders to drop what they know of the client.
func (s *Server) clientChanged(id string) {
	if err := s.bus.Conn.Publish(s.bus.Subject(natsbus.SubjectClientChanged), []byte(id)); err != nil {
		s.log.Error("publish client change", "client_id", id, "err", err)
	}
}

func checkName(n string) error {
	if n == "" || utf8.RuneCountInString(n) > maxNameLen || !utf8.ValidString(n) {
		return apierr.New(apierr.InvalidRequest, "name must be 1 to %d characters", maxNameLen)
	}
	if text.HasControl(n, false) {
		return apierr.New(apierr.InvalidRequest, "name must not contain control characters")
	}
	return nil
}

// storeError maps store sentinels to documented errors naming what.
func storeError(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apierr.New(apierr.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrAlreadyExists):
		return apierr.New(apierr.AlreadyExists, "%s already exists", what)
	}
	return err
}

func toProto(c Client) *registryv1.Client {
	return &registryv1.Client{
		ClientId:           c.ID,
		Name:               c.Name,
		OrganisationNumber: c.OrganisationNumber,
		Status:             c.Status,
		Scopes:             c.Scopes,
		CreateTime:         timestamppb.New(c.CreateTime),
		ClientSystemId:     c.ClientSystemID,

		ParentOrganisationNumber: c.ParentOrganisationNumber,
		Grants:                   grantsProto(c.Grants),
		OidcSettings:             oidcProto(c.OIDC),
	}
}
