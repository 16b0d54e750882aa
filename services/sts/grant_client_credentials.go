package sts

import (
	"context"
	"slices"
	"time"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/correlation"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/reftoken"
	"github.com/hnsec/hnsec/pkg/scope"
)

// GrantClientCredentials is the only grant type the token endpoint accepts.
const GrantClientCredentials = "client_credentials"

// Token implements TokenService: the client credentials grant (RFC 6749 4.4).
func (s *Server) Token(ctx context.Context, req *stsv1.TokenRequest) (*stsv1.TokenResponse, error) {
	start := time.Now()
	resp, err := s.token(ctx, req)
	s.metrics.observe(err, time.Since(start))
	return resp, err
}

func (s *Server) token(ctx context.Context, req *stsv1.TokenRequest) (*stsv1.TokenResponse, error) {
	switch req.GetGrantType() {
	case GrantClientCredentials:
	case "":
		return nil, apierr.New(apierr.InvalidRequest, "grant_type is missing")
	default:
		return nil, apierr.New(apierr.UnsupportedGrantType, "grant_type must be client_credentials")
	}
	requested, err := scope.Parse(req.GetScope())
	if err != nil {
		return nil, apierr.New(apierr.InvalidScope, "%v", err)
	}
	client, _, err := s.clients.Authenticate(ctx, clientauth.Body{ClientID: req.GetClientId(), ClientSecret: req.GetClientSecret(),
		AssertionType: req.GetClientAssertionType(), Assertion: req.GetClientAssertion()})
	if err != nil {
		return nil, err
	}
	granted := client.GetScopes()
	if len(granted) == 0 {
		return nil, apierr.New(apierr.InvalidScope, "no scope is granted to this client yet")
	}
	if len(requested) > 0 {
		for _, sc := range requested {
			if !slices.Contains(granted, sc) {
				return nil, apierr.New(apierr.InvalidScope, "scope %s is not granted to this client", sc)
			}
		}
		granted = requested
	}
	return s.issue(ctx, client.GetClientId(), client.GetName(), client.GetOrganisationNumber(), granted, time.Now())
}

// issue stores a reference for the rights and returns the signed reference JWT. The reference is durable
// (group-committed) before the token is returned.
func (s *Server) issue(ctx context.Context, clientID, clientName, orgnr string, scopes []string, now time.Time) (*stsv1.TokenResponse, error) {
	now = now.Truncate(time.Second)
	exp := now.Add(s.cfg.TokenTTL)
	handle, selector, verifierHash := newHandle()
	claims := reftoken.Claims{
		ID:           guid.New(),
		ClientID:     clientID,
		ClientName:   clientName,
		RefToken:     handle,
		RefTokenType: reftoken.RefTypeFull,
		Zone:         s.cfg.Zone,
		NotBefore:    now.Unix(),
		ExpiresAt:    exp.Unix(),
		IssuedAt:     now.Unix(),
		Issuer:       s.cfg.Issuer,
	}
	token, err := reftoken.Sign(s.keys.signing().secret, claims)
	if err != nil {
		return nil, err
	}
	ref := reference{
		Selector:           selector,
		VerifierHash:       verifierHash,
		JTI:                claims.ID,
		ClientID:           clientID,
		ClientName:         clientName,
		Scopes:             scopes,
		Audiences:          scope.Audiences(scopes),
		OrganisationNumber: orgnr,
		IssueTime:          now,
		ExpireTime:         exp,
	}
	if err := s.refs.Submit(ctx, ref); err != nil {
		s.log.Error("store token reference", correlation.LogKey, correlation.From(ctx), "err", err)
		return nil, apierr.New(apierr.Unavailable, "the token could not be stored; try again")
	}
	return &stsv1.TokenResponse{AccessToken: token, ExpiresIn: int32(s.cfg.TokenTTL / time.Second), TokenType: "bearer"}, nil
}
