// Package systemtoken is the SystemToken format (the JWT Helsenorge and PVK send to external systems) and
// a verifier for the receivers: it fetches and caches the issuer's JWKS, follows key rotation, and checks
// signature, issuer, audience, expiry (with a small leeway) and required scopes.
package systemtoken

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Header values of every SystemToken.
const (
	// Type2 is the typ_2 header value.
	Type2 = "system_ws_sync"
	// Version is the ver header value.
	Version = 1
)

// Claims are a SystemToken's claims. Times are Unix seconds.
type Claims struct {
	Issuer     string `json:"iss"`
	Audience   string `json:"aud"`
	Scope      string `json:"scp"`
	ClientID   string `json:"client_id"`
	ClientName string `json:"client_name"`
	ID         string `json:"jti"`
	IssuedAt   int64  `json:"iat"`
	ExpiresAt  int64  `json:"exp"`
}

var _ jwt.Claims = Claims{}

// GetExpirationTime implements jwt.Claims.
func (c Claims) GetExpirationTime() (*jwt.NumericDate, error) { return date(c.ExpiresAt), nil }

// GetIssuedAt implements jwt.Claims.
func (c Claims) GetIssuedAt() (*jwt.NumericDate, error) { return date(c.IssuedAt), nil }

// GetNotBefore implements jwt.Claims; SystemTokens have no nbf.
func (c Claims) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }

// GetIssuer implements jwt.Claims.
func (c Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims; SystemTokens have no sub.
func (c Claims) GetSubject() (string, error) { return "", nil }

// GetAudience implements jwt.Claims.
func (c Claims) GetAudience() (jwt.ClaimStrings, error) { return jwt.ClaimStrings{c.Audience}, nil }

func date(unix int64) *jwt.NumericDate {
	if unix == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(unix, 0))
}

// Method returns the golang-jwt signing method of a JWS algorithm name, or nil when it is not one a
// SystemToken may use.
func Method(alg string) jwt.SigningMethod {
	switch alg {
	case "RS256":
		return jwt.SigningMethodRS256
	case "ES256":
		return jwt.SigningMethodES256
	case "EdDSA":
		return jwt.SigningMethodEdDSA
	}
	return nil
}

// Sign returns the compact SystemToken for c, signed by key (an *rsa.PrivateKey, *ecdsa.PrivateKey or
// ed25519.PrivateKey matching alg) and naming kid.
func Sign(alg, kid string, key any, c Claims) (string, error) {
	t := jwt.NewWithClaims(Method(alg), c)
	t.Header["kid"] = kid
	t.Header["ver"] = Version
	t.Header["typ_2"] = Type2
	return t.SignedString(key)
}
