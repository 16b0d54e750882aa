package sts

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/authz"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/correlation"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/natsbus"
)

// Revoke implements TokenService (RFC 7009): the owning client revokes its token. Tokens that are not
// active here get the same success answer, so revocation tells nothing about unknown tokens.
func (s *Server) Revoke(ctx context.Context, req *stsv1.RevokeRequest) (*stsv1.RevokeResponse, error) {
	client, _, err := s.clients.Authenticate(ctx, clientauth.Body{ClientID: req.GetClientId(), ClientSecret: req.GetClientSecret(),
		AssertionType: req.GetClientAssertionType(), Assertion: req.GetClientAssertion()})
	if err != nil {
		return nil, err
	}
	if req.GetToken() == "" {
		return nil, apierr.New(apierr.InvalidRequest, "token is missing")
	}
	now := time.Now()
	ref, _, err := s.findReference(ctx, req.GetToken(), now)
	if errors.Is(err, errInactive) {
		return &stsv1.RevokeResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if ref.ClientID != client.GetClientId() {
		return nil, apierr.New(apierr.UnauthorizedClient, "the token was not issued to this client")
	}
	revoked, err := s.store.RevokeReference(ctx, ref.Selector, now)
	if err != nil {
		return nil, err
	}
	if revoked {
		s.publish(ctx, natsbus.SubjectTokenRevoked, ref.JTI)
		s.log.Info("token revoked", "client_id", ref.ClientID, "jti", ref.JTI, correlation.LogKey, correlation.From(ctx))
	}
	return &stsv1.RevokeResponse{}, nil
}

// AuthorizeAdminsWith sets the registry that answers who an admin caller is (RevokeAllTokens).
func (s *Server) AuthorizeAdminsWith(registry registryv1.ClientRegistryServiceClient) {
	s.admins = authz.Admins{Resolve: s.resolve, Registry: registry}
}

// RevokeAllTokens implements TokenService: every outstanding token of the client becomes inactive. The
// registry decides whether the caller manages the client, and audits it.
func (s *Server) RevokeAllTokens(ctx context.Context, req *stsv1.RevokeAllTokensRequest) (*stsv1.RevokeAllTokensResponse, error) {
	if !guid.Valid(req.GetClientId()) {
		return nil, apierr.New(apierr.InvalidRequest, "client_id must be a GUID")
	}
	if _, err := s.admins.Require(ctx, req.GetClientId(), stsv1.TokenService_RevokeAllTokens_FullMethodName); err != nil {
		return nil, err
	}
	now := time.Now()
	if err := s.store.RevokeClientTokens(ctx, req.GetClientId(), now); err != nil {
		return nil, err
	}
	s.publish(ctx, natsbus.SubjectClientTokensRevoked, req.GetClientId())
	s.log.Info("all tokens of a client revoked", "client_id", req.GetClientId(), correlation.LogKey, correlation.From(ctx))
	return &stsv1.RevokeAllTokensResponse{ClientId: req.GetClientId(), RevokeTime: timestamppb.New(now)}, nil
}

// publish announces a revocation to every cache holder. The revocation is already stored: a lost event
// only delays it until a cache entry expires.
func (s *Server) publish(ctx context.Context, subject, data string) {
	if err := s.bus.Conn.Publish(s.bus.Subject(subject), []byte(data)); err != nil {
		s.log.Error("publish revocation", "subject", subject, "err", err, correlation.LogKey, correlation.From(ctx))
	}
}
