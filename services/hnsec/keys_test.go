package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/systemtoken"
)

// systemToken asks the STS for a SystemToken over gRPC as an internal caller.
func (s *testServer) systemToken(audience string) (string, error) {
	resp, err := stsv1.NewTokenServiceClient(s.conn).IssueSystemToken(context.Background(), &stsv1.IssueSystemTokenRequest{
		Audience: audience, Scopes: []string{"nhn:helsenorge.eksternapi/personverninnstilling_store"}, ClientId: "pvk",
		ClientName: "Personvernkomponenten",
	})
	return resp.GetToken(), err
}

// verifier is a SystemToken receiver for audience against the server's live JWKS.
func (s *testServer) verifier(audience string) *systemtoken.Verifier {
	v, err := systemtoken.NewVerifier(s.t.Context(), systemtoken.Config{
		JWKSURL: s.base + "/sts/.well-known/jwks.json", Issuer: s.cfg.STS.Issuer, Audience: audience,
		RequiredScopes: []string{"nhn:helsenorge.eksternapi/personverninnstilling_store"}, RefreshInterval: 100 * time.Millisecond,
	})
	require.NoError(s.t, err)
	return v
}

func TestJWKSAndMetadata(t *testing.T) {
	s := newTestServer(t)
	a := s.do(http.MethodGet, "/sts/.well-known/jwks.json", "", nil, nil)
	b := s.do(http.MethodGet, "/.well-known/jwks.json", "", nil, nil)
	require.Equal(t, http.StatusOK, a.status)
	require.Equal(t, a.raw, b.raw)
	require.Equal(t, "public, max-age=300", a.header.Get("Cache-Control"))
	keys := a.body["keys"].([]any)
	require.Len(t, keys, 1, "one SystemToken key; reference-token keys are never published")
	k := keys[0].(map[string]any)
	require.Equal(t, "RSA", k["kty"])
	require.Equal(t, "RS256", k["alg"])
	require.Equal(t, "sig", k["use"])
	require.NotEmpty(t, k["n"])
	require.NotContains(t, string(a.raw), `"oct"`)
	require.NotContains(t, string(a.raw), `"d"`, "no private parts")

	m := s.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", nil, nil)
	require.Equal(t, http.StatusOK, m.status)
	require.Equal(t, "sikkerhet.helsenorge.no", m.body["issuer"])
	require.Equal(t, s.base+"/sts/Token", m.body["token_endpoint"])
	require.Equal(t, s.base+"/sts/.well-known/jwks.json", m.body["jwks_uri"])
	require.Equal(t, s.base+"/sts/introspect", m.body["introspection_endpoint"])
	require.Equal(t, s.base+"/sts/revoke", m.body["revocation_endpoint"])
	require.Equal(t, []any{"client_credentials"}, m.body["grant_types_supported"])
	for _, ep := range []string{"token", "introspection", "revocation"} {
		require.Equal(t, []any{"client_secret_basic", "client_secret_post", "private_key_jwt"}, m.body[ep+"_endpoint_auth_methods_supported"])
		require.Equal(t, []any{"RS256", "RS384", "RS512", "PS256", "PS512", "ES256"}, m.body[ep+"_endpoint_auth_signing_alg_values_supported"])
	}

	// A URL issuer is the base of every endpoint, as RFC 8414 clients expect.
	u := newTestServer(t, func(c *serveConfig) { c.STS.Issuer = "https://sts.test.example" })
	m = u.do(http.MethodGet, "/.well-known/oauth-authorization-server", "", nil, nil)
	require.Equal(t, "https://sts.test.example", m.body["issuer"])
	require.Equal(t, "https://sts.test.example/sts/Token", m.body["token_endpoint"])
}

func TestSystemTokenVerifiesAgainstTheLiveJWKS(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			s := newTestServer(t, func(c *serveConfig) { c.STS.Keys.SystemAlg = alg })
			tok, err := s.systemToken("subscriber-1")
			require.NoError(t, err)
			h := jwtPart(t, tok, 0)
			require.Equal(t, alg, h["alg"])
			require.Equal(t, "JWT", h["typ"])
			require.Equal(t, "system_ws_sync", h["typ_2"])
			require.NotEmpty(t, h["kid"])
			c := jwtPart(t, tok, 1)
			require.ElementsMatch(t, []string{"iss", "aud", "scp", "client_id", "client_name", "jti", "iat", "exp"}, keys(c))
			require.Equal(t, c["iat"].(float64)+300, c["exp"], "5 minutes by default")

			claims, err := s.verifier("subscriber-1").Verify(t.Context(), tok)
			require.NoError(t, err)
			require.Equal(t, "Personvernkomponenten", claims.ClientName)
			_, err = s.verifier("subscriber-2").Verify(t.Context(), tok)
			require.ErrorIs(t, err, systemtoken.ErrInvalid, "a token for one subscriber is refused by another")
		})
	}
}

func TestInternalRPCsNeedTheInternalCredential(t *testing.T) {
	s := newTestServer(t)
	outsider, err := grpcx.Dial(s.cfg.GRPCAddr, "")
	require.NoError(t, err)
	defer outsider.Close()
	sts := stsv1.NewTokenServiceClient(outsider)
	_, err = sts.IssueSystemToken(context.Background(), &stsv1.IssueSystemTokenRequest{Audience: "a", Scopes: []string{"s"}, ClientId: "c"})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Equal(t, "/hnsec.sts.v1.TokenService/IssueSystemToken is for internal callers only", status.Convert(err).Message())
	_, err = sts.LookupReference(context.Background(), &stsv1.LookupReferenceRequest{AccessToken: s.token()})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	_, err = sts.GetJwks(context.Background(), &stsv1.GetJwksRequest{})
	require.NoError(t, err, "public RPCs stay open")

	// Bad requests from internal callers get clear errors.
	_, err = stsv1.NewTokenServiceClient(s.conn).IssueSystemToken(context.Background(), &stsv1.IssueSystemTokenRequest{Scopes: []string{"s"}, ClientId: "c"})
	require.Equal(t, "audience must be 1 to 200 characters", status.Convert(err).Message())
	// Nothing internal has a REST route.
	require.Equal(t, http.StatusNotFound, s.do(http.MethodPost, "/sts/IssueSystemToken", "application/json", []byte("{}"), nil).status)
}

// Keys rotate every 2 s with 1 s of prepublication while tokens are issued and checked continuously:
// not one verification fails, and several keys take turns.
func TestKeyRotationWithoutAFailedVerification(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) {
		c.STS.Keys.Rotation, c.STS.Keys.Prepublish = 2*time.Second, time.Second
		c.STS.SystemTokenTTL, c.STS.TokenTTL = 2*time.Second, 3*time.Second
	})
	v := s.verifier("subscriber-1")
	var failures atomic.Int32
	kids := map[string]bool{}
	var refTokens []string
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		tok, err := s.systemToken("subscriber-1")
		require.NoError(t, err)
		if _, err := v.Verify(t.Context(), tok); err != nil {
			failures.Add(1)
			t.Logf("verification failed: %v", err)
		}
		kids[jwtPart(t, tok, 0)["kid"].(string)] = true
		ref := s.token()
		refTokens = append(refTokens, ref)
		if s.introspect(ref).body["active"] != true {
			failures.Add(1)
		}
		// Tokens issued up to a second ago still verify after rotations.
		if len(refTokens) > 10 && s.introspect(refTokens[len(refTokens)-10]).body["active"] != true {
			failures.Add(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Zero(t, failures.Load())
	require.GreaterOrEqual(t, len(kids), 3, "keys rotated")
	jwks := s.do(http.MethodGet, "/.well-known/jwks.json", "", nil, nil)
	require.LessOrEqual(t, len(jwks.body["keys"].([]any)), 4, "retired keys leave the JWKS once their tokens expired")
	require.Equal(t, "public, max-age=0", jwks.header.Get("Cache-Control"), "max-age stays below the prepublication time")
}

// sealer is the dev-mode server's key-encryption key (<data-dir>/kek), to open what it sealed.
func (s *testServer) sealer() *seal.Sealer {
	s.t.Helper()
	kekText, err := os.ReadFile(filepath.Join(s.cfg.DataDir, "kek"))
	require.NoError(s.t, err)
	kek, err := seal.ParseKEK(string(kekText))
	require.NoError(s.t, err)
	sealer, err := seal.New(kek)
	require.NoError(s.t, err)
	return sealer
}

func TestKeyRingIsSealedUnderTheKEK(t *testing.T) {
	s := newTestServer(t)
	sealer := s.sealer()

	db := s.serviceDB("sts")
	rows, err := db.Query(`SELECT kid, sealed FROM signing_keys`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var kid string
		var sealed []byte
		require.NoError(t, rows.Scan(&kid, &sealed))
		_, err := sealer.Open(sealed, []byte(kid))
		require.NoError(t, err, "only the KEK opens the stored key")
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 2, n, "one reference-token key and one SystemToken key")

	// Restarting with another KEK fails clearly rather than minting new keys.
	s.stop()
	other := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	t.Setenv("HNSEC_KEK", other)
	cfg := s.cfg
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	log, _ := newTestLogger(t)
	_, err = newApp(context.Background(), cfg, log)
	require.ErrorContains(t, err, "sealed key material cannot be opened with this key-encryption key")
}
