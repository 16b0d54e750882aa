package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/correlation"
)

// PVK's paths are matched without regard to case: known segments take the HTTP rules' spelling, other
// paths are left alone.
func TestCanonicalPVKPath(t *testing.T) {
	tests := []struct {
		in, want string
		pvk      bool
	}{
		{"/personvern/Personverninnstillinger/SjekkInnbyggersPiStatus/v2", "/personvern/Personverninnstillinger/SjekkInnbyggersPiStatus/v2", true},
		{"/personvern/PersonvernInnstillinger/sjekkinnbyggerspistatus/V2", "/personvern/Personverninnstillinger/SjekkInnbyggersPiStatus/v2", true},
		{"/PERSONVERN/PERSONVERNINNSTILLINGER/V2/HENTINNBYGGEREAKTIVEPIFORDEFINISJON",
			"/personvern/Personverninnstillinger/v2/HentInnbyggereAktivePiForDefinisjon", true},
		{"/personvern/personverninnstillinger/SlettAlt/v2", "/personvern/Personverninnstillinger/SlettAlt/v2", true},
		{"/personvernet/Personverninnstillinger/v2", "/personvernet/Personverninnstillinger/v2", false},
		{"/pvk/v1/subscriptions", "/pvk/v1/subscriptions", false},
		{"/registry/v1/clients/v2", "/registry/v1/clients/v2", false},
	}
	for _, tt := range tests {
		got, pvk := canonicalPVKPath(tt.in)
		require.Equal(t, tt.want, got, tt.in)
		require.Equal(t, tt.pvk, pvk, tt.in)
	}
}

// pvkID is an answer's CorrelationId header, which must be spelt as PVK spells it.
func pvkID(rec *httptest.ResponseRecorder) string {
	if v := rec.Header()[PVKCorrelationHeader]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// PVK answers carry the korrelasjonsId in CorrelationId too, taken from the request's CorrelationId when
// it gives no X-Correlation-Id; other answers do not.
func TestPVKPathsCorrelation(t *testing.T) {
	var seenPath string
	h := pvkPaths(withCorrelation(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seenPath = r.URL.Path })))
	serve := func(path string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for k, v := range header {
			req.Header.Set(k, v[0])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := serve("/personvern/personverninnstillinger/hentinnbyggereaktivepifordefinisjon/v2?pagingReference=0", nil)
	require.Equal(t, "/personvern/Personverninnstillinger/HentInnbyggereAktivePiForDefinisjon/v2", seenPath)
	require.True(t, correlation.Valid(pvkID(rec)))
	require.Equal(t, rec.Header().Get(correlation.Header), pvkID(rec))

	id := correlation.New()
	rec = serve("/pvk/v1/subscriptions", http.Header{PVKCorrelationHeader: {id}})
	require.Equal(t, id, pvkID(rec))
	require.Equal(t, id, rec.Header().Get(correlation.Header))

	own := correlation.New()
	rec = serve("/pvk/v1/subscriptions", http.Header{PVKCorrelationHeader: {id}, correlation.Header: {own}})
	require.Equal(t, own, pvkID(rec), "X-Correlation-Id wins")

	rec = serve("/registry/v1/clients", http.Header{PVKCorrelationHeader: {id}})
	require.Empty(t, pvkID(rec))
	require.NotEqual(t, id, rec.Header().Get(correlation.Header), "CorrelationId is PVK's header only")
}
