package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/obs"
)

func TestHeaders(t *testing.T) {
	h := Headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sts/.well-known/jwks.json" {
			w.Header().Set("Cache-Control", "public, max-age=300")
		}
		w.WriteHeader(http.StatusOK)
	}))
	tests := []struct {
		path, cacheControl string
	}{
		{"/sts/Token", "no-store"},
		{"/registry/v1/clients", "no-store"},
		{"/registry/v1/clients/x/secrets", "no-store"},
		{"/pvk/v1/subscriptions", "no-store"},
		{"/personvern/Personverninnstillinger/v2/SjekkInnbyggersPiStatus", "no-store"},
		{"/no/such/path", "no-store"},
		{"/sts/.well-known/jwks.json", "public, max-age=300"},
		{"/.well-known/oauth-authorization-server", ""},
		{"/healthz", ""},
		{"/metrics", ""},
		{"/openapi.json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
			require.Equal(t, tt.cacheControl, w.Header().Get("Cache-Control"))
			require.Empty(t, w.Header().Get("Strict-Transport-Security"), "no HSTS over plain HTTP")
		})
	}

	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "max-age=31536000", resp.Header.Get("Strict-Transport-Security"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
}

// The access log has one line per request with what a person reading it needs, and never the query string.
func TestAccessLog(t *testing.T) {
	var b bytes.Buffer
	log, err := obs.NewLogger(&b, "info")
	require.NoError(t, err)
	h := withCorrelation(logRequests(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.WriteHeader(http.StatusOK) // superfluous: the first status counts
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/registry/v1/clients?access_token=secret-token", nil))
	line := b.String()
	for _, want := range []string{`"msg":"request"`, `"method":"POST"`, `"path":"/registry/v1/clients"`, `"status":418`, `"duration":"`,
		`"korrelasjonsId":"` + rec.Header().Get("X-Correlation-Id") + `"`} {
		require.Contains(t, line, want)
	}
	require.NotContains(t, line, "secret-token")
}
