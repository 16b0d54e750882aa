// Package reftoken is the access token format of seed 002: a "reference JWT" signed with HS256 whose
// header is {"alg":"HS256","typ":"JWT","ver":1,"typ_2":"ref"} and whose claims name the client and a
// ref_token handle. The rights the token represents are not in it: they are stored server side behind the
// handle. This package signs and verifies the JWT; it knows nothing about storage.
package reftoken

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Header values that mark a reference token.
const (
	TypeRef     = "ref"
	RefTypeFull = "Full"
	version     = 1
)

// Claims are the token's claims, in the order of the seed's example token. Times are Unix seconds.
type Claims struct {
	ID           string `json:"jti"`
	ClientID     string `json:"client_id"`
	ClientName   string `json:"client_name"`
	RefToken     string `json:"ref_token"`
	RefTokenType string `json:"ref_token_type"`
	Zone         string `json:"zone"`
	NotBefore    int64  `json:"nbf"`
	ExpiresAt    int64  `json:"exp"`
	IssuedAt     int64  `json:"iat"`
	Issuer       string `json:"iss"`
}

var _ jwt.Claims = Claims{}

// GetExpirationTime implements jwt.Claims.
func (c Claims) GetExpirationTime() (*jwt.NumericDate, error) { return numericDate(c.ExpiresAt), nil }

// GetIssuedAt implements jwt.Claims.
func (c Claims) GetIssuedAt() (*jwt.NumericDate, error) { return numericDate(c.IssuedAt), nil }

// GetNotBefore implements jwt.Claims.
func (c Claims) GetNotBefore() (*jwt.NumericDate, error) { return numericDate(c.NotBefore), nil }

// numericDate turns Unix seconds into what golang-jwt validates; 0 means absent.
func numericDate(unix int64) *jwt.NumericDate {
	if unix == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(unix, 0))
}

// GetIssuer implements jwt.Claims.
func (c Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims; reference tokens have no subject.
func (c Claims) GetSubject() (string, error) { return "", nil }

// GetAudience implements jwt.Claims; reference tokens carry no audience (it is behind the reference).
func (c Claims) GetAudience() (jwt.ClaimStrings, error) { return nil, nil }

// header is the encoded header segment, the same for every reference token and byte for byte the seed's
// ({"alg":"HS256","typ":"JWT","ver":1,"typ_2":"ref"}, in that order). It is encoded once: only the
// claims are marshalled per token.
var header = func() string {
	b, err := json.Marshal(struct {
		Alg  string `json:"alg"`
		Typ  string `json:"typ"`
		Ver  int    `json:"ver"`
		Typ2 string `json:"typ_2"`
	}{jwt.SigningMethodHS256.Alg(), "JWT", version, TypeRef})
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}()

// Sign returns the compact JWT for c signed with the HS256 key (JWS compact serialisation, RFC 7515 7.1;
// the signature is golang-jwt's HS256).
func Sign(key []byte, c Claims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signing := header + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := jwt.SigningMethodHS256.Sign(signing, key)
	if err != nil {
		return "", err
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Verifier checks reference tokens of one environment.
type Verifier struct {
	// Issuer the token must name.
	Issuer string
	// Zone the token must name.
	Zone string
	// Leeway allowed on nbf, iat and exp.
	Leeway time.Duration
}

// ErrInvalid wraps every reason a token is not valid here.
var ErrInvalid = errors.New("reference token not valid")

// Verify parses token and checks its signature against keys (any may match), its header, issuer, zone and
// times. It returns the claims of a valid token.
func (v Verifier) Verify(token string, keys [][]byte, now time.Time) (Claims, error) {
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	var c Claims
	t, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return set, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if t.Header["typ_2"] != TypeRef {
		return Claims{}, fmt.Errorf("%w: typ_2 is not %q", ErrInvalid, TypeRef)
	}
	if c.Zone != v.Zone {
		return Claims{}, fmt.Errorf("%w: zone %q", ErrInvalid, c.Zone)
	}
	if c.RefToken == "" || c.RefTokenType != RefTypeFull {
		return Claims{}, fmt.Errorf("%w: no reference", ErrInvalid)
	}
	return c, nil
}
