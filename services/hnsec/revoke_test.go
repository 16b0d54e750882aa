package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/services/registry"
)

// revoke asks POST /sts/revoke as the client with id and secret.
func (s *testServer) revoke(id, secret, token string) response {
	return s.do(http.MethodPost, "/sts/revoke", form, []byte("token="+token+"&token_type_hint=access_token"), basicHeader(id, secret))
}

func TestRevoke(t *testing.T) {
	s := newTestServer(t)
	tok, other := s.token(), s.token()
	require.Equal(t, true, s.introspect(tok).body["active"], "cached as active first")

	r := s.revoke(s.dev.ClientID, s.dev.ClientSecret, tok)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Equal(t, "no-store", r.header.Get("Cache-Control"))
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, `{"active":false}`, string(s.introspect(tok).raw))
	}, time.Second, 10*time.Millisecond)
	_, err := s.lookup(tok)
	require.Error(t, err, "the STS no longer resolves it")
	require.Equal(t, true, s.introspect(other).body["active"], "other tokens stay active")

	// Revoking again, or revoking garbage, answers 200 and says nothing.
	require.Equal(t, http.StatusOK, s.revoke(s.dev.ClientID, s.dev.ClientSecret, tok).status)
	require.Equal(t, http.StatusOK, s.revoke(s.dev.ClientID, s.dev.ClientSecret, "garbage").status)

	// A client cannot revoke another client's token.
	created, err := s.admin("client", "create", "--name", "B", "--orgnr", "971000007", "--scope", "x/y", "-o", "json")
	require.NoError(t, err)
	var b registry.Credentials
	require.NoError(t, json.Unmarshal([]byte(created), &b))
	r = s.revoke(b.ClientID, b.ClientSecret, other)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Equal(t, "unauthorized_client", r.body["error"])
	require.Equal(t, "the token was not issued to this client", r.body["error_description"])
	require.Equal(t, true, s.introspect(other).body["active"])

	// Bad authentication.
	r = s.revoke(s.dev.ClientID, "wrong", other)
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "invalid_client", r.body["error"])
	r = s.do(http.MethodPost, "/sts/revoke", form, []byte("token_type_hint=access_token"), basicHeader(s.dev.ClientID, s.dev.ClientSecret))
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Equal(t, "token is missing", r.body["error_description"])
}

func TestRevokeAllTokensOfAClient(t *testing.T) {
	s := newTestServer(t)
	before1, before2 := s.token(), s.token()
	require.Equal(t, true, s.introspect(before1).body["active"])

	out, err := s.admin("token", "revoke-all", "--client", s.dev.ClientID, "-o", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"client_id":"`+s.dev.ClientID+`"`)
	time.Sleep(5 * time.Millisecond) // tokens issued from the next millisecond on are not affected
	after := s.token()
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, `{"active":false}`, string(s.introspect(before1).raw))
		require.Equal(c, `{"active":false}`, string(s.introspect(before2).raw))
	}, time.Second, 10*time.Millisecond)
	require.Equal(t, true, s.introspect(after).body["active"])

	_, err = s.admin("token", "revoke-all", "--client", "nope")
	require.EqualError(t, err, "invalid_request: client_id must be a GUID")
	r := s.do(http.MethodPost, "/sts/v1/clients/"+s.dev.ClientID+":revokeAllTokens", "application/json", []byte("{}"),
		http.Header{"Authorization": {"Bearer " + after}})
	require.Equal(t, http.StatusForbidden, r.status, "the demo client is no operator")
}

// Two introspection replicas (two processes' worth of services) both drop a revoked token within a second.
func TestRevocationReachesEveryIntrospectionReplica(t *testing.T) {
	a := newTestServer(t, func(c *serveConfig) { c.NATSListen = "127.0.0.1:0" })
	require.NotEmpty(t, a.natsURL)
	b := newTestServer(t, func(c *serveConfig) {
		c.Services, c.Dev = "introspection,gateway", false
		c.PeerAddr, c.NATSURL = a.cfg.GRPCAddr, a.natsURL
		c.DataDir = a.cfg.DataDir // only to read dev-api.json: this process keeps no data
	})
	tok := a.token()
	require.Equal(t, true, a.introspect(tok).body["active"])
	require.Equal(t, true, b.introspect(tok).body["active"])

	start := time.Now()
	require.Equal(t, http.StatusOK, a.revoke(a.dev.ClientID, a.dev.ClientSecret, tok).status)
	for _, s := range []*testServer{a, b} {
		require.EventuallyWithT(t, func(c *assertCollect) {
			require.Equal(c, `{"active":false}`, string(s.introspect(tok).raw))
		}, time.Second, 5*time.Millisecond)
	}
	t.Logf("both replicas inactive %v after the revocation", time.Since(start))

	// Blocking the client reaches both replicas too.
	tok2 := a.token()
	require.Equal(t, true, b.introspect(tok2).body["active"])
	_, err := a.admin("client", "block", a.dev.ClientID)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, `{"active":false}`, string(b.introspect(tok2).raw))
	}, time.Second, 5*time.Millisecond)
}
