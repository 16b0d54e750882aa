package sts

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
)

// LookupReference implements TokenService: it verifies the reference JWT against this deployment's key
// ring, issuer and zone, then returns the stored rights unless the reference is unknown, expired or revoked.
func (s *Server) LookupReference(ctx context.Context, req *stsv1.LookupReferenceRequest) (*stsv1.LookupReferenceResponse, error) {
	if req.GetAccessToken() == "" {
		return nil, apierr.New(apierr.InvalidRequest, "access_token is missing")
	}
	inactive := apierr.New(apierr.NotFound, "the token is not active")
	now := time.Now()
	claims, err := s.verifier.Verify(req.GetAccessToken(), s.keys.verification(), now)
	if err != nil {
		return nil, inactive
	}
	selector, verifierHash, err := parseHandle(claims.RefToken)
	if err != nil {
		return nil, inactive
	}
	ref, err := s.store.Reference(ctx, selector)
	if errors.Is(err, store.ErrNotFound) {
		return nil, inactive
	}
	if err != nil {
		return nil, err
	}
	if !secrets.Equal(ref.VerifierHash, verifierHash) || ref.JTI != claims.ID || ref.ClientID != claims.ClientID || !now.Before(ref.ExpireTime) || !ref.RevokeTime.IsZero() {
		return nil, inactive
	}
	return &stsv1.LookupReferenceResponse{Reference: &stsv1.Reference{
		Jti:                ref.JTI,
		ClientId:           ref.ClientID,
		ClientName:         ref.ClientName,
		Scopes:             ref.Scopes,
		Audiences:          ref.Audiences,
		OrganisationNumber: ref.OrganisationNumber,
		IssueTime:          timestamppb.New(ref.IssueTime),
		ExpireTime:         timestamppb.New(ref.ExpireTime),
		Issuer:             claims.Issuer,
		Zone:               claims.Zone,
		NotBeforeTime:      timestamppb.New(time.Unix(claims.NotBefore, 0)),
	}}, nil
}
