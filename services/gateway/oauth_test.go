package gateway

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
)

// TestForwarded checks the metadata the OAuth2 handlers pass on: what the services read, as grpc-gateway
// forwards it, and nothing a client could use to pose as something else.
func TestForwarded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   metadata.MD
	}{
		{"peer and host", nil, metadata.MD{"x-forwarded-for": {"192.0.2.7"}, "x-forwarded-host": {"sts.example"}}},
		{"authorization", map[string]string{"Authorization": "Basic YTpi"},
			metadata.MD{"authorization": {"Basic YTpi"}, "x-forwarded-for": {"192.0.2.7"}, "x-forwarded-host": {"sts.example"}}},
		{"authorization that is not ASCII is left out", map[string]string{"Authorization": "Basic æøå"},
			metadata.MD{"x-forwarded-for": {"192.0.2.7"}, "x-forwarded-host": {"sts.example"}}},
		{"a proxy's X-Forwarded-For gets the peer last", map[string]string{"X-Forwarded-For": "198.51.100.1"},
			metadata.MD{"x-forwarded-for": {"198.51.100.1, 192.0.2.7"}, "x-forwarded-host": {"sts.example"}}},
		{"X-Forwarded-Host before Host", map[string]string{"X-Forwarded-Host": "public.example"},
			metadata.MD{"x-forwarded-for": {"192.0.2.7"}, "x-forwarded-host": {"public.example"}}},
		{"X-Forwarded-Host that is not ASCII gives way to Host", map[string]string{"X-Forwarded-Host": "bæd.example"},
			metadata.MD{"x-forwarded-for": {"192.0.2.7"}, "x-forwarded-host": {"sts.example"}}},
		{"other headers stay behind", map[string]string{"Grpc-Metadata-X-Hnsec-Internal": "guess", "X-Hnsec-Internal": "guess",
			"Content-Type": "application/x-www-form-urlencoded"},
			metadata.MD{"x-forwarded-for": {"192.0.2.7"}, "x-forwarded-host": {"sts.example"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://sts.example/sts/Token", nil)
			r.RemoteAddr = "192.0.2.7:51234"
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			require.Equal(t, tc.want, forwarded(r))
		})
	}
}
