package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/services/registry"
)

// devAPI reads dev-api.json: the demo API allowed to introspect.
func (s *testServer) devAPI() registry.Credentials {
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, registry.DevAPIFile))
	require.NoError(s.t, err)
	var c registry.Credentials
	require.NoError(s.t, json.Unmarshal(b, &c))
	return c
}

// introspect asks POST /sts/introspect as the demo API (Basic authentication).
func (s *testServer) introspect(token string) response {
	api := s.devAPI()
	return s.do(http.MethodPost, "/sts/introspect", form, []byte("token="+url.QueryEscape(token)+"&token_type_hint=access_token"),
		basicHeader(api.ClientID, api.ClientSecret))
}

// token gets an access token for the demo client.
func (s *testServer) token() string {
	r := s.tokenForm(s.dev.ClientID, s.dev.ClientSecret)
	require.Equal(s.t, http.StatusOK, r.status, "%s", r.raw)
	return r.body["access_token"].(string)
}

func TestIntrospectActiveToken(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	claims := jwtPart(t, tok, 1)
	for range 2 { // the second answer comes from the cache
		r := s.introspect(tok)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		require.Equal(t, map[string]any{
			"active":              true,
			"client_id":           s.dev.ClientID,
			"client_name":         "Ekstern testklient",
			"scope":               strings.Join(s.dev.Scopes, " "),
			"aud":                 []any{"nhn:helsenorge.eksternapi"},
			"iss":                 "sikkerhet.helsenorge.no",
			"exp":                 claims["exp"],
			"iat":                 claims["iat"],
			"nbf":                 claims["nbf"],
			"jti":                 claims["jti"],
			"zone":                "ekstern_internett",
			"organisation_number": "971000007",
			"token_type":          "bearer",
		}, r.body)
	}
	// client_secret_post works too.
	api := s.devAPI()
	r := s.do(http.MethodPost, "/sts/introspect", form, []byte("token="+tok+"&client_id="+api.ClientID+"&client_secret="+api.ClientSecret), nil)
	require.Equal(t, true, r.body["active"])
}

func TestIntrospectInactiveTokens(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.STS.TokenTTL = time.Second })
	other := newTestServer(t)
	tok := s.token()
	parts := strings.Split(tok, ".")
	tests := []struct {
		name  string
		token func() string
	}{
		{"garbage", func() string { return "not-a-token" }},
		{"tampered claims", func() string {
			return parts[0] + "." + strings.Replace(parts[1], parts[1][10:14], "AAAA", 1) + "." + parts[2]
		}},
		{"tampered signature", func() string { return parts[0] + "." + parts[1] + ".AAAA" + parts[2][4:] }},
		{"another environment's token", other.token},
		{"expired", func() string {
			time.Sleep(1100 * time.Millisecond)
			return tok
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.introspect(tt.token())
			require.Equal(t, http.StatusOK, r.status)
			require.Equal(t, `{"active":false}`, string(r.raw))
		})
	}
}

func TestIntrospectUnknownReferenceBlockedAndDeletedClient(t *testing.T) {
	s := newTestServer(t)
	gone, kept := s.token(), s.token()

	// A reference that is no longer stored (as after cleanup) makes its token inactive.
	db := s.serviceDB("sts")
	res, err := db.Exec(`DELETE FROM token_references WHERE jti = ?`, jwtPart(t, gone, 1)["jti"])
	require.NoError(t, err)
	n, err := res.RowsAffected()
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	require.Equal(t, `{"active":false}`, string(s.introspect(gone).raw))

	// Blocking the client makes its cached, active token inactive within a second.
	require.Equal(t, true, s.introspect(kept).body["active"])
	_, err = s.admin("client", "block", s.dev.ClientID)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, `{"active":false}`, string(s.introspect(kept).raw))
	}, time.Second, 20*time.Millisecond)
	_, err = s.admin("client", "unblock", s.dev.ClientID)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, true, s.introspect(kept).body["active"])
	}, time.Second, 20*time.Millisecond)

	// Deleting the client makes its tokens inactive within a second, and it gets no new ones.
	_, err = s.admin("client", "delete", s.dev.ClientID)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, `{"active":false}`, string(s.introspect(kept).raw))
	}, time.Second, 20*time.Millisecond)
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, 401, s.tokenForm(s.dev.ClientID, s.dev.ClientSecret).status)
	}, time.Second, 20*time.Millisecond)
	_, err = s.admin("client", "get", s.dev.ClientID)
	require.EqualError(t, err, "not_found: client not found")
}

func TestIntrospectCallers(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	api := s.devAPI()
	tests := []struct {
		name   string
		body   string
		header http.Header
		status int
		err    string
		desc   string
	}{
		{"no authentication", "token=" + tok, nil, 401, "invalid_client", "client authentication is missing (client_id and client_secret, or a Basic header)"},
		{"wrong secret", "token=" + tok, basicHeader(api.ClientID, "wrong"), 401, "invalid_client", "client authentication failed"},
		{"a client without the introspection right", "token=" + tok, basicHeader(s.dev.ClientID, s.dev.ClientSecret), 403, "access_denied",
			"this client may not introspect tokens (it lacks scope hnsec:introspection)"},
		{"no token", "token_type_hint=access_token", basicHeader(api.ClientID, api.ClientSecret), 400, "invalid_request", "token is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(http.MethodPost, "/sts/introspect", form, []byte(tt.body), tt.header)
			require.Equal(t, tt.status, r.status, "%s", r.raw)
			require.Equal(t, tt.err, r.body["error"])
			require.Equal(t, tt.desc, r.body["error_description"])
		})
	}
	r := s.do(http.MethodGet, "/sts/introspect", "", nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
}
