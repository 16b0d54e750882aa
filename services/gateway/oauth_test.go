package gateway

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	"github.com/hnsec/hnsec/pkg/clientauth"
)

// TestForwarded checks the metadata the OAuth2 handlers pass on: what the services read, with the
// forwarder token, and nothing a client could use to pose as something else (Host and X-Forwarded-Host
// stay behind: URLs come from configuration).
func TestForwarded(t *testing.T) {
	const fwd = clientauth.ForwarderMetadataKey
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   metadata.MD
	}{
		{"the peer, with the forwarder token", nil, metadata.MD{fwd: {"tok"}, "x-forwarded-for": {"192.0.2.7"}}},
		{"authorization", map[string]string{"Authorization": "Basic YTpi"},
			metadata.MD{fwd: {"tok"}, "authorization": {"Basic YTpi"}, "x-forwarded-for": {"192.0.2.7"}}},
		{"authorization that is not ASCII is left out", map[string]string{"Authorization": "Basic æøå"},
			metadata.MD{fwd: {"tok"}, "x-forwarded-for": {"192.0.2.7"}}},
		{"a proxy's X-Forwarded-For gets the peer last", map[string]string{"X-Forwarded-For": "198.51.100.1"},
			metadata.MD{fwd: {"tok"}, "x-forwarded-for": {"198.51.100.1, 192.0.2.7"}}},
		{"X-Forwarded-Host stays behind", map[string]string{"X-Forwarded-Host": "public.example"},
			metadata.MD{fwd: {"tok"}, "x-forwarded-for": {"192.0.2.7"}}},
		{"a client's own forwarder token never passes", map[string]string{"X-Hnsec-Forwarder": "guess", "Grpc-Metadata-X-Hnsec-Forwarder": "guess"},
			metadata.MD{fwd: {"tok"}, "x-forwarded-for": {"192.0.2.7"}}},
		{"other headers stay behind", map[string]string{"Grpc-Metadata-X-Hnsec-Internal": "guess", "X-Hnsec-Internal": "guess",
			"Content-Type": "application/x-www-form-urlencoded"},
			metadata.MD{fwd: {"tok"}, "x-forwarded-for": {"192.0.2.7"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "http://sts.example/sts/Token", nil)
			r.RemoteAddr = "192.0.2.7:51234"
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			require.Equal(t, tc.want, forwarded(r, "tok"))
		})
	}
}
