package sts

import (
	"context"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/systemtoken"
)

// IssueSystemToken implements TokenService for internal callers (the interceptor admits no other).
func (s *Server) IssueSystemToken(_ context.Context, req *stsv1.IssueSystemTokenRequest) (*stsv1.IssueSystemTokenResponse, error) {
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
