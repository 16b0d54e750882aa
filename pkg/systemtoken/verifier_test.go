package systemtoken_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/systemtoken"
)

// issuer is a fake STS: keys and a JWK Set endpoint.
type issuer struct {
	mu   sync.Mutex
	keys []jose.JSONWebKey
	srv  *httptest.Server
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// publish adds a public key under kid.
func (is *issuer) publish(kid, alg string, pub crypto.PublicKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"})
}

func claims(mod func(*systemtoken.Claims)) systemtoken.Claims {
	now := time.Now()
	c := systemtoken.Claims{Issuer: "sikkerhet.helsenorge.no", Audience: "subscriber-1",
		Scope: "nhn:pvk/replication other", ClientID: "pvk", ClientName: "Personvernkomponenten",
		ID: "id-1", IssuedAt: now.Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix()}
	if mod != nil {
		mod(&c)
	}
	return c
}

func TestVerify(t *testing.T) {
	is := newIssuer(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	is.publish("rsa", "RS256", rsaKey.Public())
	is.publish("ec", "ES256", ecKey.Public())
	is.publish("ed", "EdDSA", edKey.Public())

	ctx := t.Context()
	v, err := systemtoken.NewVerifier(ctx, systemtoken.Config{JWKSURL: is.srv.URL, Issuer: "sikkerhet.helsenorge.no",
		Audience: "subscriber-1", RequiredScopes: []string{"nhn:pvk/replication"}, Leeway: time.Second})
	require.NoError(t, err)
	sign := func(alg, kid string, key any, c systemtoken.Claims) string {
		tok, err := systemtoken.Sign(alg, kid, key, c)
		require.NoError(t, err)
		return tok
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hs.Header["kid"], hs.Header["typ_2"] = "rsa", systemtoken.Type2
	hsTok, err := hs.SignedString([]byte("a shared secret is not accepted"))
	require.NoError(t, err)
	noTyp2 := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(nil))
	noTyp2.Header["kid"] = "rsa"
	noTyp2Tok, err := noTyp2.SignedString(rsaKey)
	require.NoError(t, err)

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256", sign("RS256", "rsa", rsaKey, claims(nil)), true},
		{"ES256", sign("ES256", "ec", ecKey, claims(nil)), true},
		{"EdDSA", sign("EdDSA", "ed", edKey, claims(nil)), true},
		{"another audience", sign("RS256", "rsa", rsaKey, claims(func(c *systemtoken.Claims) { c.Audience = "subscriber-2" })), false},
		{"another issuer", sign("RS256", "rsa", rsaKey, claims(func(c *systemtoken.Claims) { c.Issuer = "test.helsenorge.no" })), false},
		{"expired", sign("RS256", "rsa", rsaKey, claims(func(c *systemtoken.Claims) { c.ExpiresAt = time.Now().Add(-time.Minute).Unix() })), false},
		{"scope missing", sign("RS256", "rsa", rsaKey, claims(func(c *systemtoken.Claims) { c.Scope = "other" })), false},
		{"signed by an unpublished key", sign("ES256", "ec", mustEC(t), claims(nil)), false},
		{"kid of another key", sign("RS256", "ec", rsaKey, claims(nil)), false},
		{"HS256", hsTok, false},
		{"no typ_2", noTyp2Tok, false},
		{"garbage", "a.b.c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(ctx, tt.token)
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, "pvk", c.ClientID)
				return
			}
			require.ErrorIs(t, err, systemtoken.ErrInvalid)
		})
	}

	// A key published after the verifier started (rotation) is fetched when a token names it.
	next, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	is.publish("next", "RS256", next.Public())
	_, err = v.Verify(ctx, sign("RS256", "next", next, claims(nil)))
	require.NoError(t, err)
}

func mustEC(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func TestNewVerifierNeedsItsConfig(t *testing.T) {
	_, err := systemtoken.NewVerifier(context.Background(), systemtoken.Config{JWKSURL: "http://127.0.0.1:1/jwks"})
	require.EqualError(t, err, "systemtoken: JWKSURL, Issuer and Audience are required")
}
