package sts

import (
	"context"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/subscriber"
	"github.com/hnsec/hnsec/pkg/systemtoken"
)

// CheckSubscribersWith has IssueSystemToken check, through c, the audience of every SystemToken carrying
// the replication scope. Without a checker such tokens are refused: the STS never vouches for a delivery to
// a subscriber it could not check.
func (s *Server) CheckSubscribersWith(c *subscriber.Checker) { s.subscribers = c }

// IssueSystemToken implements TokenService for internal callers (the interceptor admits no other). A token
// carrying the replication scope goes only to an audience that is a client configuration that exists, is
// not blocked and holds an approved grant of the scope, asked at issue time (cached, and dropped on the
// registry's change events): it fails with FailedPrecondition, naming the reason, for any other.
func (s *Server) IssueSystemToken(ctx context.Context, req *stsv1.IssueSystemTokenRequest) (*stsv1.IssueSystemTokenResponse, error) {
	switch {
	case req.GetAudience() == "" || len(req.GetAudience()) > 200:
		return nil, apierr.New(apierr.InvalidRequest, "audience must be 1 to 200 characters")
	case len(req.GetScopes()) == 0:
		return nil, apierr.New(apierr.InvalidRequest, "scopes: at least one scope is required")
	case req.GetClientId() == "" || len(req.GetClientId()) > 200 || len(req.GetClientName()) > 200:
		return nil, apierr.New(apierr.InvalidRequest, "client_id must be 1 to 200 characters, client_name at most 200")
	}
	scopes, err := scope.Parse(strings.Join(req.GetScopes(), " "))
	if err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "scopes: %v", err)
	}
	if slices.Contains(scopes, scope.PVKReplication) {
		if err := s.checkSubscriber(ctx, req.GetAudience()); err != nil {
			return nil, err
		}
	}
	now := time.Now().Truncate(time.Second)
	exp := now.Add(s.cfg.SystemTokenTTL)
	key := s.keys.systemSigning()
	token, err := systemtoken.Sign(key.Alg, key.ID, key.signer, systemtoken.Claims{
		Issuer:     s.cfg.Issuer,
		Audience:   req.GetAudience(),
		Scope:      strings.Join(scopes, " "),
		ClientID:   req.GetClientId(),
		ClientName: req.GetClientName(),
		ID:         guid.New(),
		IssuedAt:   now.Unix(),
		ExpiresAt:  exp.Unix(),
	})
	if err != nil {
		return nil, err
	}
	return &stsv1.IssueSystemTokenResponse{Token: token, ExpireTime: timestamppb.New(exp)}, nil
}

// checkSubscriber refuses a replication SystemToken for an audience that may not receive the data.
func (s *Server) checkSubscriber(ctx context.Context, audience string) error {
	if s.subscribers == nil {
		return apierr.New(apierr.FailedPrecondition, "no SystemToken with scope %s: this STS cannot check subscribers", scope.PVKReplication)
	}
	v, err := s.subscribers.Check(ctx, audience, scope.PVKReplication)
	if err != nil {
		s.log.Warn("subscriber check", "audience", audience, "err", err)
		return apierr.New(apierr.Unavailable, "the subscriber could not be checked; retry later")
	}
	if !v.OK() {
		s.log.Warn("replication SystemToken refused", "audience", audience, "cause", string(v.Cause))
		return apierr.New(apierr.FailedPrecondition, "no SystemToken with scope %s for this audience: %s", scope.PVKReplication, v.Reason)
	}
	return nil
}
