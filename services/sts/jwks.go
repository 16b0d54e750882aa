package sts

import (
	"context"
	"encoding/json"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/publicurl"
	"github.com/hnsec/hnsec/pkg/scope"
)

// GetJwks implements TokenService.
func (s *Server) GetJwks(context.Context, *stsv1.GetJwksRequest) (*stsv1.GetJwksResponse, error) {
	keys := s.keys.published()
	resp := &stsv1.GetJwksResponse{Keys: make([]*stsv1.JsonWebKey, 0, len(keys)),
		MaxAgeSeconds: int32(min(s.cfg.Keys.Prepublish/2, maxJWKSAge).Seconds())}
	for _, k := range keys {
		b, err := k.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var j struct{ Kty, Kid, Use, Alg, N, E, Crv, X, Y string }
		if err := json.Unmarshal(b, &j); err != nil {
			return nil, err
		}
		resp.Keys = append(resp.Keys, &stsv1.JsonWebKey{Kty: j.Kty, Kid: j.Kid, Use: j.Use, Alg: j.Alg, N: j.N, E: j.E, Crv: j.Crv, X: j.X, Y: j.Y})
	}
	return resp, nil
}

// GetServerMetadata implements TokenService (RFC 8414). Its URLs come from configuration, never from the
// request's Host or X-Forwarded-Host.
func (s *Server) GetServerMetadata(context.Context, *stsv1.GetServerMetadataRequest) (*stsv1.GetServerMetadataResponse, error) {
	base := s.publicURL()
	auth := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	return &stsv1.GetServerMetadataResponse{
		Issuer:                            s.cfg.Issuer,
		TokenEndpoint:                     base + "/sts/Token",
		JwksUri:                           base + "/sts/.well-known/jwks.json",
		IntrospectionEndpoint:             base + "/sts/introspect",
		RevocationEndpoint:                base + "/sts/revoke",
		GrantTypesSupported:               []string{GrantClientCredentials},
		ResponseTypesSupported:            []string{},
		TokenEndpointAuthMethodsSupported: auth,
		IntrospectionEndpointAuthMethodsSupported:          auth,
		RevocationEndpointAuthMethodsSupported:             auth,
		ScopesSupported:                                    []string{scope.RegistryAdmin, scope.Introspect},
		TokenEndpointAuthSigningAlgValuesSupported:         clientauth.AssertionAlgorithms,
		IntrospectionEndpointAuthSigningAlgValuesSupported: clientauth.AssertionAlgorithms,
		RevocationEndpointAuthSigningAlgValuesSupported:    clientauth.AssertionAlgorithms,
	}, nil
}

// publicURL is where clients reach the REST gateway.
func (s *Server) publicURL() string {
	return publicurl.Base(s.cfg.Issuer, s.cfg.PublicURL)
}
