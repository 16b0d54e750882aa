package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/clientauth"
)

// addKey registers pub for the client as the operator and returns its kid.
func (s *testServer) addKey(clientID string, pub any, alg string) (string, error) {
	b, err := json.Marshal(jose.JSONWebKey{Key: pub, Algorithm: alg, Use: "sig"})
	require.NoError(s.t, err)
	return s.addJWK(clientID, string(b))
}

// addJWK registers a JWK given as JSON and returns its kid.
func (s *testServer) addJWK(clientID, jwk string) (string, error) {
	path := filepath.Join(s.t.TempDir(), "jwk.json")
	require.NoError(s.t, os.WriteFile(path, []byte(jwk), 0o600))
	out, err := s.adminAs(nil, "key", "add", "--client", clientID, "--jwk-file", path)
	if err != nil {
		return "", err
	}
	return field(out, "key", "kid").(string), nil
}

// assertion signs a client assertion for the client, changed by mod.
func assertion(t *testing.T, method jwt.SigningMethod, key any, kid, clientID, aud string, mod func(*jwt.RegisteredClaims)) string {
	now := time.Now()
	c := jwt.RegisteredClaims{Issuer: clientID, Subject: clientID, Audience: jwt.ClaimStrings{aud}, ID: randomID(),
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(60 * time.Second))}
	if mod != nil {
		mod(&c)
	}
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	signed, err := tok.SignedString(key)
	require.NoError(t, err)
	return signed
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return url.QueryEscape(string(b))
}

// tokenWithAssertion asks for a token with private_key_jwt.
func (s *testServer) tokenWithAssertion(assertion string, extra string) response {
	return s.do(http.MethodPost, "/sts/Token", form, []byte("grant_type=client_credentials&client_assertion_type="+
		url.QueryEscape(clientauth.AssertionType)+"&client_assertion="+assertion+extra), nil)
}

func TestPrivateKeyJWT(t *testing.T) {
	s := newTestServer(t)
	id := s.dev.ClientID
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	unregistered, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	rsaKid, err := s.addKey(id, rsaKey.Public(), "")
	require.NoError(t, err)
	ecKid, err := s.addKey(id, ecKey.Public(), "ES256")
	require.NoError(t, err)
	issuer, tokenURL := "sikkerhet.helsenorge.no", s.base+"/sts/Token"

	for _, ok := range []struct {
		name string
		tok  string
	}{
		{"RS256, aud = issuer", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, nil)},
		{"PS256, aud = token endpoint", assertion(t, jwt.SigningMethodPS256, rsaKey, rsaKid, id, tokenURL, nil)},
		{"PS512 without kid", assertion(t, jwt.SigningMethodPS512, rsaKey, "", id, issuer, nil)},
		{"ES256", assertion(t, jwt.SigningMethodES256, ecKey, ecKid, id, issuer, nil)},
	} {
		r := s.tokenWithAssertion(ok.tok, "")
		require.Equal(t, http.StatusOK, r.status, "%s: %s", ok.name, r.raw)
	}

	replayed := assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, nil)
	require.Equal(t, http.StatusOK, s.tokenWithAssertion(replayed, "").status)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: id, Subject: id, Audience: jwt.ClaimStrings{issuer},
		ID: "x", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))})
	hsTok, err := hs.SignedString([]byte(s.dev.ClientSecret))
	require.NoError(t, err)
	tests := []struct {
		name   string
		tok    string
		extra  string
		status int
		err    string
		desc   string
	}{
		{"replayed jti", replayed, "", 401, "invalid_client", "client assertion was already used (jti replay)"},
		{"expired", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
		}), "", 401, "invalid_client", "client assertion has expired"},
		{"exp too far ahead", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, func(c *jwt.RegisteredClaims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(10 * time.Minute))
		}), "", 401, "invalid_client", "client assertion exp is more than 120 seconds ahead"},
		{"wrong aud", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, "https://elsewhere.example", nil), "", 401, "invalid_client",
			"client assertion aud must name this issuer or the endpoint"},
		{"HS256", hsTok, "", 401, "invalid_client", `client assertion must be signed with RS256, RS384, RS512, PS256, PS512 or ES256, not "HS256"`},
		{"unregistered key", assertion(t, jwt.SigningMethodRS256, unregistered, "", id, issuer, nil), "", 401, "invalid_client",
			"client assertion signature does not verify with the client's keys"},
		// An unknown client answers as a known one whose keys did not sign, so the answer tells no one which ids exist.
		{"unknown client", assertion(t, jwt.SigningMethodRS256, unregistered, "", "6f1c2d3e-0000-4000-8000-00000000dead", issuer, nil), "", 401,
			"invalid_client", "client assertion signature does not verify with the client's keys"},
		{"unknown client, expired", assertion(t, jwt.SigningMethodRS256, unregistered, "", "6f1c2d3e-0000-4000-8000-00000000dead", issuer,
			func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }), "", 401,
			"invalid_client", "client assertion signature does not verify with the client's keys"},
		{"unknown kid", assertion(t, jwt.SigningMethodRS256, unregistered, "nope", id, issuer, nil), "", 401, "invalid_client",
			"client assertion signature does not verify with the client's keys"},
		{"sub differs from iss", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, func(c *jwt.RegisteredClaims) {
			c.Subject = "someone-else"
		}), "", 401, "invalid_client", "client assertion iss and sub must both be the client_id"},
		{"no jti", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, func(c *jwt.RegisteredClaims) { c.ID = "" }), "", 401,
			"invalid_client", "client assertion needs a jti of at most 200 characters"},
		{"assertion and secret", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, nil), "&client_secret=" + s.dev.ClientSecret,
			400, "invalid_request", "client authenticated by more than one method (client_assertion and a secret)"},
		{"client_id differs from iss", assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, nil),
			"&client_id=6f1c2d3e-0000-4000-8000-00000000dead", 400, "invalid_request", "client_id differs from the client assertion's iss"},
		{"not a JWT", "garbage", "", 401, "invalid_client", "client assertion is not a JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.tokenWithAssertion(tt.tok, tt.extra)
			require.Equal(t, tt.status, r.status, "%s", r.raw)
			require.Equal(t, tt.err, r.body["error"])
			require.Equal(t, tt.desc, r.body["error_description"])
		})
	}
	r := s.do(http.MethodPost, "/sts/Token", form, []byte("grant_type=client_credentials&client_assertion_type=saml&client_assertion=x"), nil)
	require.Equal(t, "client_assertion_type must be "+clientauth.AssertionType, r.body["error_description"])

	// A resource server introspects with private_key_jwt too.
	api := s.devAPI()
	apiKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	apiKid, err := s.addKey(api.ClientID, apiKey.Public(), "RS256")
	require.NoError(t, err)
	tok := s.token()
	r = s.do(http.MethodPost, "/sts/introspect", form, []byte("token="+tok+"&client_assertion_type="+url.QueryEscape(clientauth.AssertionType)+
		"&client_assertion="+assertion(t, jwt.SigningMethodRS256, apiKey, apiKid, api.ClientID, issuer, nil)), nil)
	require.Equal(t, true, r.body["active"], "%s", r.raw)

	// A removed key no longer authenticates.
	_, err = s.adminAs(nil, "key", "remove", "--client", id, "--", rsaKid) // a kid may start with "-"
	require.NoError(t, err)
	listed := must(t)(s.adminAs(nil, "key", "list", "--client", id))
	require.Len(t, listed["keys"], 1)
	r = s.tokenWithAssertion(assertion(t, jwt.SigningMethodRS256, rsaKey, rsaKid, id, issuer, nil), "")
	require.Equal(t, http.StatusUnauthorized, r.status)
}

func TestClientKeysAreChecked(t *testing.T) {
	s := newTestServer(t)
	id := s.dev.ClientID
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	privJSON, err := json.Marshal(jose.JSONWebKey{Key: priv})
	require.NoError(t, err)
	pubJSON := func(k any, alg string) string {
		b, err := json.Marshal(jose.JSONWebKey{Key: k, Algorithm: alg})
		require.NoError(t, err)
		return string(b)
	}
	tests := []struct {
		name, jwk, wantErr string
	}{
		{"private key material", string(privJSON), `invalid_request: jwk contains private key material ("d"); register the public key only`},
		{"symmetric key", `{"kty":"oct","k":"c2VjcmV0"}`, `invalid_request: jwk contains private key material ("k"); register the public key only`},
		{"RSA under 2048 bits", pubJSON(small.Public(), ""), "invalid_request: jwk: RSA keys must have at least 2048 bits, not 1024"},
		{"curve P-384", pubJSON(p384.Public(), ""), "invalid_request: jwk: curve P-384 is not supported; use P-256"},
		{"algorithm PS384", pubJSON(priv.Public(), "PS384"), "invalid_request: jwk: algorithm PS384 is not supported; use one of RS256, RS384, RS512, PS256, PS512, ES256"},
		{"not JSON", "{", "invalid_request: jwk is not JSON"},
		{"oversize", `{"kty":"RSA","x":"` + strings.Repeat("a", 9000) + `"}`, "invalid_request: jwk must be 1 to 8192 bytes of JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.addJWK(id, tt.jwk)
			require.EqualError(t, err, tt.wantErr)
		})
	}
	kid, err := s.addKey(id, priv.Public(), "PS256")
	require.NoError(t, err)
	_, err = s.addJWK(id, pubJSON(priv.Public(), "PS256"))
	require.EqualError(t, err, "already_exists: key already exists", "the same key twice (same thumbprint kid)")
	require.NotEmpty(t, kid)
}

// NORPREG's PVK broker signs its assertions RS384 with a 3072-bit key and RS512 with a 4096-bit one: both
// are registered (with and without alg) and get tokens, and the server metadata lists them.
func TestPrivateKeyJWTRS384AndRS512(t *testing.T) {
	s := newTestServer(t)
	id := s.dev.ClientID
	issuer := "sikkerhet.helsenorge.no"
	for _, tc := range []struct {
		bits   int
		method jwt.SigningMethod
	}{{3072, jwt.SigningMethodRS384}, {4096, jwt.SigningMethodRS512}} {
		t.Run(tc.method.Alg(), func(t *testing.T) {
			key, err := rsa.GenerateKey(rand.Reader, tc.bits)
			require.NoError(t, err)
			kid, err := s.addKey(id, key.Public(), tc.method.Alg())
			require.NoError(t, err)
			r := s.tokenWithAssertion(assertion(t, tc.method, key, kid, id, issuer, nil), "")
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			require.NotEmpty(t, r.body["access_token"])
			r = s.tokenWithAssertion(assertion(t, tc.method, key, "", id, s.base+"/sts/Token", nil), "")
			require.Equal(t, http.StatusOK, r.status, "without kid, aud = token endpoint: %s", r.raw)
		})
	}
	// A key registered without alg signs either too.
	key, err := rsa.GenerateKey(rand.Reader, 3072)
	require.NoError(t, err)
	kid, err := s.addKey(id, key.Public(), "")
	require.NoError(t, err)
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodRS384, jwt.SigningMethodRS512} {
		r := s.tokenWithAssertion(assertion(t, m, key, kid, id, issuer, nil), "")
		require.Equal(t, http.StatusOK, r.status, "%s: %s", m.Alg(), r.raw)
	}
	meta := s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", nil, nil)
	require.Equal(t, http.StatusOK, meta.status, "%s", meta.raw)
	for _, field := range []string{"token_endpoint_auth_signing_alg_values_supported", "introspection_endpoint_auth_signing_alg_values_supported"} {
		require.Subset(t, meta.body[field], []any{"RS384", "RS512"}, field)
	}
}
