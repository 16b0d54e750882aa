package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/hnsec/hnsec/pkg/guid"
)

func TestTokenWithOAuth2Client(t *testing.T) {
	s := newTestServer(t)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{ClientID: s.dev.ClientID, ClientSecret: s.dev.ClientSecret,
			TokenURL: s.base + "/sts/Token", AuthStyle: style}
		tok, err := cc.Token(context.Background())
		require.NoError(t, err, "auth style %d", style)
		require.Equal(t, "bearer", tok.TokenType)
		require.WithinDuration(t, time.Now().Add(1800*time.Second), tok.Expiry, 10*time.Second)
		ref, err := s.lookup(tok.AccessToken)
		require.NoError(t, err)
		require.Equal(t, s.dev.Scopes, ref.GetScopes())
	}
}

func TestTokenSucceedsInEveryShape(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.STS.Issuer = "https://sts.test.example" })
	id, secret := s.dev.ClientID, s.dev.ClientSecret
	require.Equal(t, s.dev, s.devClientFile(), "dev-client.json holds the printed credentials")
	tests := []struct {
		name        string
		contentType string
		body        string
		header      http.Header
		path        string
	}{
		{"form", form, "grant_type=client_credentials&client_id=" + id + "&client_secret=" + secret, nil, "/sts/Token"},
		{"form with charset, lower-case path", form + "; charset=UTF-8", "grant_type=client_credentials&client_id=" + id + "&client_secret=" + secret, nil, "/sts/token"},
		{"json", "application/json", `{"grant_type":"client_credentials","client_id":"` + id + `","client_secret":"` + secret + `"}`, nil, "/sts/Token"},
		{"json with charset", "application/json; charset=utf-8", `{"grant_type":"client_credentials","client_id":"` + id + `","client_secret":"` + secret + `"}`, nil, "/sts/Token"},
		{"basic", form, "grant_type=client_credentials", basicHeader(id, secret), "/sts/Token"},
		{"basic with the same client_id in the body", form, "grant_type=client_credentials&client_id=" + id, basicHeader(id, secret), "/sts/Token"},
		{"scope subset", form, "grant_type=client_credentials&scope=" + s.dev.Scopes[0] + "&client_id=" + id + "&client_secret=" + secret, nil, "/sts/Token"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(http.MethodPost, tt.path, tt.contentType, []byte(tt.body), tt.header)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			require.Equal(t, "no-store", r.header.Get("Cache-Control"))
			require.Equal(t, "no-cache", r.header.Get("Pragma"))
			require.Len(t, r.body, 3, "exactly access_token, expires_in, token_type: %s", r.raw)
			require.Equal(t, float64(1800), r.body["expires_in"], "expires_in is a JSON number")
			require.Contains(t, string(r.raw), `"expires_in":1800`)
			require.Equal(t, "bearer", r.body["token_type"])

			tok := r.body["access_token"].(string)
			require.False(t, seen[tok], "every token differs")
			seen[tok] = true
			require.Equal(t, map[string]any{"alg": "HS256", "typ": "JWT", "ver": float64(1), "typ_2": "ref"}, jwtPart(t, tok, 0))
			c := jwtPart(t, tok, 1)
			require.ElementsMatch(t, []string{"jti", "client_id", "client_name", "ref_token", "ref_token_type", "zone", "nbf", "exp", "iat", "iss"}, keys(c))
			require.True(t, guid.Valid(c["jti"].(string)))
			require.False(t, seen[c["jti"].(string)])
			seen[c["jti"].(string)] = true
			require.Equal(t, id, c["client_id"])
			require.Equal(t, "Ekstern testklient", c["client_name"])
			ref := c["ref_token"].(string)
			raw, err := base64.RawURLEncoding.DecodeString(ref)
			require.NoError(t, err, "ref_token is base64url")
			require.GreaterOrEqual(t, len(raw), 32, "ref_token has at least 256 random bits")
			require.False(t, seen[ref])
			seen[ref] = true
			require.Equal(t, "Full", c["ref_token_type"])
			require.Equal(t, "ekstern_internett", c["zone"])
			require.Equal(t, "https://sts.test.example", c["iss"])
			require.Equal(t, c["iat"], c["nbf"])
			require.Equal(t, c["iat"].(float64)+1800, c["exp"])
			require.InDelta(t, float64(time.Now().Unix()), c["iat"], 5)

			stored, err := s.lookup(tok)
			require.NoError(t, err, "the reference is stored before the answer")
			require.Equal(t, c["jti"], stored.GetJti())
			require.Equal(t, "971000007", stored.GetOrganisationNumber())
			require.Equal(t, []string{"nhn:helsenorge.eksternapi"}, stored.GetAudiences())
			if strings.Contains(tt.body, "scope=") {
				require.Equal(t, []string{s.dev.Scopes[0]}, stored.GetScopes())
			} else {
				require.Equal(t, s.dev.Scopes, stored.GetScopes())
			}
		})
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestTokenBadInput(t *testing.T) {
	s := newTestServer(t)
	id, secret := s.dev.ClientID, s.dev.ClientSecret
	unknown := guid.New()
	valid := "grant_type=client_credentials&client_id=" + id + "&client_secret=" + secret
	const (
		json     = "application/json"
		notGUID  = "client_id must be a GUID"
		authFail = "client authentication failed"
	)
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		header      http.Header
		status      int
		err         string
		code        float64
		desc        string
	}{
		{"seed JSON example with its missing quote", "POST", json,
			`{"grant_type": "client_credentials", "client_id": "<Client Id (GUID)>", "client_secret": "<Client Secret>`,
			nil, 400, "invalid_request", 1001, "request body is not valid JSON for this endpoint: unexpected EOF"},
		{"seed form example with its placeholder values", "POST", form,
			"grant_type=client_credentials&client_id=<Client Id (GUID)>&client_secret=<Client Secret>",
			nil, 400, "invalid_request", 1001, notGUID},
		{"missing grant_type", "POST", form, "client_id=" + id + "&client_secret=" + secret, nil, 400, "invalid_request", 1001, "grant_type is missing"},
		{"grant_type password", "POST", form, "grant_type=password&username=a&password=b&client_id=" + id + "&client_secret=" + secret,
			nil, 400, "unsupported_grant_type", 1005, "grant_type must be client_credentials"},
		{"repeated parameter", "POST", form, valid + "&client_id=" + id, nil, 400, "invalid_request", 1001, `parameter "client_id" is repeated`},
		{"empty client_id", "POST", form, "grant_type=client_credentials&client_id=&client_secret=" + secret,
			nil, 401, "invalid_client", 1002, "client authentication is missing (client_id and client_secret, or a Basic header)"},
		{"non-GUID client_id", "POST", form, "grant_type=client_credentials&client_id=demo&client_secret=" + secret, nil, 400, "invalid_request", 1001, notGUID},
		{"GUID in braces", "POST", form, "grant_type=client_credentials&client_id={" + id + "}&client_secret=" + secret, nil, 400, "invalid_request", 1001, notGUID},
		{"empty secret", "POST", form, "grant_type=client_credentials&client_id=" + id + "&client_secret=", nil, 401, "invalid_client", 1002, "client_secret is missing"},
		{"wrong secret", "POST", form, "grant_type=client_credentials&client_id=" + id + "&client_secret=wrong", nil, 401, "invalid_client", 1002, authFail},
		{"unknown client", "POST", form, "grant_type=client_credentials&client_id=" + unknown + "&client_secret=" + secret, nil, 401, "invalid_client", 1002, authFail},
		{"wrong secret in Basic", "POST", form, "grant_type=client_credentials", basicHeader(id, "wrong"), 401, "invalid_client", 1002, authFail},
		{"malformed Basic", "POST", form, "grant_type=client_credentials", http.Header{"Authorization": {"Basic %%%"}}, 401, "invalid_client", 1002, "malformed Basic authorization header"},
		{"Basic and client_secret at once", "POST", form, "grant_type=client_credentials&client_secret=" + secret, basicHeader(id, secret),
			400, "invalid_request", 1001, "client authenticated by more than one method (Basic header and client_secret)"},
		{"Basic and another client_id", "POST", form, "grant_type=client_credentials&client_id=" + unknown, basicHeader(id, secret),
			400, "invalid_request", 1001, "client_id in the body differs from the Basic header"},
		{"JSON with wrong types", "POST", json, `{"grant_type": 1, "client_id": ["x"]}`, nil, 400, "invalid_request", 1001,
			"request body is not valid JSON for this endpoint: field grant_type must be a string, not a number"},
		{"deeply nested JSON", "POST", json, `{"grant_type":"client_credentials","x":` + strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100) + "}",
			nil, 400, "invalid_request", 1001, "request body nests deeper than 32 levels"},
		{"2 MiB body", "POST", form, valid + "&pad=" + strings.Repeat("a", 2<<20), nil, 413, "invalid_request", 1413, "request body is larger than 64 KiB"},
		{"invalid UTF-8 in a form", "POST", form, valid[:len(valid)-2] + "\xff\xfe", nil, 400, "invalid_request", 1001, "form body is not valid UTF-8"},
		{"invalid UTF-8 in JSON", "POST", json, "{\"grant_type\":\"\xff\"}", nil, 400, "invalid_request", 1001, "request body is not valid UTF-8"},
		{"GET", "GET", "", "", nil, 405, "invalid_request", 1405, "method GET is not allowed here"},
		{"text/plain", "POST", "text/plain", valid, nil, 415, "invalid_request", 1415, "Content-Type must be application/x-www-form-urlencoded or application/json"},
		{"no Content-Type", "POST", "", valid, nil, 415, "invalid_request", 1415, "Content-Type must be application/x-www-form-urlencoded or application/json"},
		{"latin-1 charset", "POST", form + "; charset=iso-8859-1", valid, nil, 415, "invalid_request", 1415, "charset must be utf-8"},
		{"scope not granted", "POST", form, valid + "&scope=hnsec:registry.admin", nil, 400, "invalid_scope", 1006, "scope hnsec:registry.admin is not granted to this client"},
		{"malformed scope", "POST", form, valid + "&scope=a%20%20b", nil, 400, "invalid_scope", 1006, "scope has an empty entry (double or edge space)"},
	}
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(tt.method, "/sts/Token", tt.contentType, []byte(tt.body), tt.header)
			require.Equal(t, tt.status, r.status, "%s", r.raw)
			require.Equal(t, tt.err, r.body["error"])
			require.Equal(t, tt.desc, r.body["error_description"])
			require.Equal(t, tt.desc, r.body["message"])
			require.Equal(t, tt.code, r.body["code"])
			require.Equal(t, float64(tt.status), r.body["statusCode"])
			require.NotEmpty(t, r.body["errorCategory"])
			id := r.body["korrelasjonsId"].(string)
			require.Regexp(t, uuidRE, id)
			require.Equal(t, id, r.header.Get("X-Correlation-Id"))
			require.Contains(t, s.logs.String(), `"korrelasjonsId":"`+id+`"`, "the server logged the error with its korrelasjonsId")
			switch {
			case tt.status == 405:
				require.Equal(t, "POST", r.header.Get("Allow"))
			case tt.status == 401 && tt.header != nil:
				require.Equal(t, `Basic realm="hnsec", charset="UTF-8"`, r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// A wrong secret and an unknown client_id get identical answers apart from the korrelasjonsId.
func TestWrongSecretAndUnknownClientLookAlike(t *testing.T) {
	s := newTestServer(t)
	a := s.tokenForm(s.dev.ClientID, "wrong-secret")
	b := s.tokenForm(guid.New(), "wrong-secret")
	for _, r := range []*response{&a, &b} {
		require.Equal(t, http.StatusUnauthorized, r.status)
		delete(r.body, "korrelasjonsId")
		for _, h := range []string{"X-Correlation-Id", "Date"} {
			r.header.Del(h)
		}
	}
	require.Equal(t, a.body, b.body)
	require.Equal(t, a.header, b.header)
}

func TestRepeatedFailuresAreThrottled(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.ClientAuth.FailureBurst, c.ClientAuth.FailureRefill = 3, time.Second })
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, s.tokenForm(s.dev.ClientID, "guess").status)
	}
	r := s.tokenForm(s.dev.ClientID, "guess")
	require.Equal(t, http.StatusTooManyRequests, r.status, "%s", r.raw)
	require.Equal(t, "slow_down", r.body["error"])
	require.Equal(t, float64(1429), r.body["code"])
	require.Equal(t, "1", r.header.Get("Retry-After"))

	// The right secret from the throttled address waits too, but another address is not affected.
	require.Equal(t, http.StatusTooManyRequests, s.tokenForm(s.dev.ClientID, s.dev.ClientSecret).status)
	other := s.do(http.MethodPost, "/sts/Token", form, []byte("grant_type=client_credentials&client_id="+s.dev.ClientID+
		"&client_secret="+s.dev.ClientSecret), nil)
	require.Equal(t, http.StatusTooManyRequests, other.status, "X-Forwarded-For from the client does not change its address")
	_, err := grpcToken(t, s, "192.0.2.10", s.dev.ClientID, s.dev.ClientSecret)
	require.NoError(t, err, "another address is not throttled")

	// After one refill interval the real client gets in again.
	time.Sleep(1100 * time.Millisecond)
	require.Equal(t, http.StatusOK, s.tokenForm(s.dev.ClientID, s.dev.ClientSecret).status)
}
