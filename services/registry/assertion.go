package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/store"
)

// Limits on client assertions.
const (
	maxAssertionLifetime = 120 * time.Second
	assertionLeeway      = 5 * time.Second
	// usedJTIRetention is how long after its exp a used assertion's jti is remembered: as long as the
	// assertion is still accepted (the leeway), and as long again for replicas whose clocks differ (one
	// ahead forgets it sooner, one behind accepts it later).
	usedJTIRetention = 2 * assertionLeeway
)

// standInKeys are public keys whose private halves nobody has, one per kind of key an assertion may be
// signed with: an assertion checked against them fails as one checked against a client's own keys does.
var standInKeys = sync.OnceValue(func() []jwt.VerificationKey {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return []jwt.VerificationKey{&rsaKey.PublicKey, &ecKey.PublicKey}
})

// authenticateAssertion verifies a private_key_jwt client assertion (RFC 7523 2.2 and 3): signed by one
// of the client's registered keys with an allowed algorithm, iss = sub = client_id, aud one of audiences,
// exp at most two minutes ahead, and a jti never seen before (the jti is remembered until usedJTIRetention
// after exp, so it cannot be replayed within the leeway).
func (s *Server) authenticateAssertion(ctx context.Context, clientID, assertion string, audiences []string) (Client, error) {
	invalid := func(format string, args ...any) (Client, error) {
		return Client{}, apierr.New(apierr.InvalidClient, format, args...)
	}
	head, _, err := jwt.NewParser().ParseUnverified(assertion, &jwt.RegisteredClaims{})
	if err != nil {
		return invalid("client assertion is not a JWT")
	}
	if alg, _ := head.Header["alg"].(string); !slices.Contains(clientauth.AssertionAlgorithms, alg) {
		return invalid("client assertion must be signed with %s, not %q", clientauth.AssertionAlgorithmsText(), alg)
	}
	// The keys are read whether or not the client exists (an unknown one has none), and without a key
	// that may have signed, stand-in keys take their place: an unknown client, and one whose keys did not
	// sign, cost the same work and get the same answer.
	keys, err := s.store.ListKeys(ctx, clientID)
	if err != nil {
		return Client{}, err
	}
	kid, _ := head.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if kid != "" && k.KID != kid {
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(k.JWK)); err == nil {
			set.Keys = append(set.Keys, jwk.Key)
		}
	}
	if len(set.Keys) == 0 {
		set.Keys = standInKeys()
	}
	var claims jwt.RegisteredClaims
	now := time.Now()
	_, err = jwt.NewParser(
		jwt.WithValidMethods(clientauth.AssertionAlgorithms),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(assertionLeeway),
		jwt.WithIssuer(clientID),
		jwt.WithSubject(clientID),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(assertion, &claims, func(*jwt.Token) (any, error) { return set, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid("client assertion has expired")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidSubject):
		return invalid("client assertion iss and sub must both be the client_id")
	case err != nil:
		return invalid("client assertion signature does not verify with the client's keys")
	}
	if !slices.ContainsFunc(claims.Audience, func(a string) bool { return slices.Contains(audiences, a) }) {
		return invalid("client assertion aud must name this issuer or the endpoint")
	}
	if claims.ExpiresAt.Sub(now) > maxAssertionLifetime+assertionLeeway {
		return invalid("client assertion exp is more than %d seconds ahead", int(maxAssertionLifetime.Seconds()))
	}
	if claims.ID == "" || len(claims.ID) > 200 {
		return invalid("client assertion needs a jti of at most 200 characters")
	}
	c, err := s.store.GetClient(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return invalid("client authentication failed")
	}
	if err != nil {
		return Client{}, err
	}
	if err := s.store.UseAssertion(ctx, clientID, claims.ID, claims.ExpiresAt.Add(usedJTIRetention), now); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return invalid("client assertion was already used (jti replay)")
		}
		return Client{}, err
	}
	return c, nil
}
