package sts

import (
	"bytes"
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/reftoken"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
)

// errInactive is the one answer for every token that is not active here.
var errInactive = apierr.New(apierr.NotFound, "the token is not active")

// LookupReference implements TokenService: it verifies the reference JWT against this deployment's key
// ring, issuer and zone, then returns the stored rights unless the reference is unknown, expired or revoked.
func (s *Server) LookupReference(ctx context.Context, req *stsv1.LookupReferenceRequest) (*stsv1.LookupReferenceResponse, error) {
	if req.GetAccessToken() == "" {
		return nil, apierr.New(apierr.InvalidRequest, "access_token is missing")
	}
	ref, err := s.resolve(ctx, req.GetAccessToken())
	if err != nil {
		return nil, err
	}
	return &stsv1.LookupReferenceResponse{Reference: ref}, nil
}

// resolve returns the rights of an active token, or errInactive (an authz.Resolver).
func (s *Server) resolve(ctx context.Context, token string) (*stsv1.Reference, error) {
	now := time.Now()
	ref, claims, err := s.findReference(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if !now.Before(ref.ExpireTime) || !ref.RevokeTime.IsZero() {
		return nil, errInactive
	}
	revokedAll, err := s.store.ClientRevokeTime(ctx, ref.ClientID)
	if err != nil {
		return nil, err
	}
	if !revokedAll.IsZero() && bytes.Compare(ref.Selector, selectorBefore(revokedAll.UnixMilli()+1)) < 0 {
		return nil, errInactive
	}
	return &stsv1.Reference{
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
	}, nil
}

// findReference verifies the token and returns its stored reference (revoked or not), or errInactive when
// the token is not this deployment's, not valid now, or its reference is unknown.
func (s *Server) findReference(ctx context.Context, token string, now time.Time) (reference, reftoken.Claims, error) {
	claims, err := s.verifier.Verify(token, s.keys.verification(), now)
	if err != nil {
		return reference{}, claims, errInactive
	}
	selector, verifierHash, err := parseHandle(claims.RefToken)
	if err != nil {
		return reference{}, claims, errInactive
	}
	ref, err := s.store.Reference(ctx, selector)
	if errors.Is(err, store.ErrNotFound) {
		return reference{}, claims, errInactive
	}
	if err != nil {
		return reference{}, claims, err
	}
	if !secrets.Equal(ref.VerifierHash, verifierHash) || ref.JTI != claims.ID || ref.ClientID != claims.ClientID {
		return reference{}, claims, errInactive
	}
	return ref, claims, nil
}
