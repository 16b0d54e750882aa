package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	"github.com/hnsec/hnsec/pkg/grpcx"
)

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return addr
}

// A service that cannot be reached (its peer address refuses connections) answers public callers with
// the documented temporarily_unavailable, over REST and gRPC alike, never gRPC's transport text with the
// peer's address; the log keeps it for the operator.
func TestUnreachablePeerLeaksNoAddress(t *testing.T) {
	peer := closedAddr(t)
	_, port, err := net.SplitHostPort(peer)
	require.NoError(t, err)
	s := newTestServer(t, func(c *serveConfig) {
		c.Services, c.Dev, c.PeerAddr = "introspection,gateway", false, peer
	})
	for _, path := range []string{"/sts/Token", "/sts/introspect"} {
		r := s.do(http.MethodPost, path, form, []byte("grant_type=client_credentials&client_id=6f1c2d3e-0000-4000-8000-000000000001&client_secret=x&token=x"), nil)
		require.Equal(t, http.StatusServiceUnavailable, r.status, "%s: %s", path, r.raw)
		require.Equal(t, "temporarily_unavailable", r.body["error"], "%s", path)
		for _, leak := range []string{port, "refused", "dial", "transport"} {
			require.NotContains(t, string(r.raw), leak, "%s", path)
		}
	}
	// A public gRPC caller (no internal credential) of a service here that calls the unreachable peer.
	conn, err := grpcx.Dial(s.cfg.GRPCAddr, "")
	require.NoError(t, err)
	defer conn.Close()
	_, err = introspectionv1.NewIntrospectionServiceClient(conn).Introspect(context.Background(), &introspectionv1.IntrospectRequest{
		ClientId: "6f1c2d3e-0000-4000-8000-000000000001", ClientSecret: "x", Token: "x"})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	for _, leak := range []string{port, "refused", "dial", "transport"} {
		require.NotContains(t, status.Convert(err).Message(), leak)
	}
	require.True(t, strings.Contains(s.logs.String(), port), "the log names the unreachable peer")
}
