package introspection

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/natsbus"
)

const (
	testClient = "6f1c2d3e-0000-4000-8000-000000000001"
	testJTI    = "jti-1"
	testScope  = "nhn:test/read"
	testToken  = "a-token-of-at-least-thirty-two-characters"
)

// fakeSTS answers LookupReference with the token's reference until revoked, counting the calls; a gate,
// when set, holds each call until it is closed, with the answer as of the call's start.
type fakeSTS struct {
	stsv1.TokenServiceClient
	mu      sync.Mutex
	revoked bool
	gate    chan struct{}
	calls   atomic.Int32
}

func (f *fakeSTS) LookupReference(context.Context, *stsv1.LookupReferenceRequest, ...grpc.CallOption) (*stsv1.LookupReferenceResponse, error) {
	f.calls.Add(1)
	f.mu.Lock()
	revoked, gate := f.revoked, f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if revoked {
		return nil, status.Error(codes.NotFound, "no such reference")
	}
	return &stsv1.LookupReferenceResponse{Reference: &stsv1.Reference{Jti: testJTI, ClientId: testClient, Scopes: []string{testScope},
		IssueTime: timestamppb.Now(), ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}}, nil
}

func (f *fakeSTS) revoke(gate chan struct{}) {
	f.mu.Lock()
	f.revoked, f.gate = true, gate
	f.mu.Unlock()
}

// fakeRegistry knows one active client holding testScope.
type fakeRegistry struct {
	registryv1.ClientRegistryServiceClient
}

func (fakeRegistry) LookupClient(context.Context, *registryv1.LookupClientRequest, ...grpc.CallOption) (*registryv1.LookupClientResponse, error) {
	return &registryv1.LookupClientResponse{Client: &registryv1.Client{ClientId: testClient, Scopes: []string{testScope},
		Status: registryv1.ClientStatus_CLIENT_STATUS_ACTIVE}}, nil
}

// newTestServer is an introspection server on fakes, for internal callers, on bus.
func newTestServer(sts *fakeSTS, bus *natsbus.Bus) *Server {
	return New(nil, sts, fakeRegistry{}, bus, func(context.Context) bool { return true }, time.Hour, prometheus.NewRegistry(),
		slog.New(slog.DiscardHandler))
}

func introspect(t *testing.T, s *Server) bool {
	t.Helper()
	resp, err := s.Introspect(context.Background(), &introspectionv1.IntrospectRequest{Token: testToken})
	require.NoError(t, err)
	return resp.GetActive()
}

// A lookup that read the token before its revocation answers its caller, but does not put the active
// answer in the cache after the revocation dropped it: the next introspection asks again.
func TestLookupRacingARevocationIsNotCached(t *testing.T) {
	gate := make(chan struct{})
	sts := &fakeSTS{gate: gate}
	s := newTestServer(sts, nil)
	done := make(chan bool)
	go func() {
		resp, err := s.Introspect(context.Background(), &introspectionv1.IntrospectRequest{Token: testToken})
		done <- err == nil && resp.GetActive()
	}()
	require.Eventually(t, func() bool { return sts.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
	sts.revoke(nil)
	s.cache.dropJTI(testJTI) // the revocation event, while the old answer is on its way
	close(gate)
	require.True(t, <-done, "the answer read before the revocation, once")
	require.False(t, introspect(t, s), "the revoked token's old answer was cached")
	require.Equal(t, int32(2), sts.calls.Load())
}

// When the NATS connection comes back every cached answer goes (a revocation may have been missed), and a
// lookup under way then does not cache its answer.
func TestCacheFlushedOnReconnect(t *testing.T) {
	server, err := natsbus.Open(natsbus.Config{DataDir: t.TempDir(), Name: "test", Listen: "127.0.0.1:0", Token: testToken})
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	bus, err := natsbus.Open(natsbus.Config{URL: server.ClientURL(), Token: testToken, Name: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	sts := &fakeSTS{}
	s := newTestServer(sts, bus)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()

	require.True(t, introspect(t, s))
	require.True(t, introspect(t, s))
	require.Equal(t, int32(1), sts.calls.Load(), "the second answer from the cache")

	// Revoked while the connection was away: the event never came.
	sts.revoke(nil)
	reconnected := make(chan struct{}, 1)
	bus.OnReconnect(func() { reconnected <- struct{}{} })
	// Reconnect (again, should Run not have registered its flush yet) until the answer is gone.
	require.Eventually(t, func() bool {
		if bus.Conn.ForceReconnect() != nil {
			return false
		}
		select {
		case <-reconnected:
		case <-time.After(5 * time.Second):
			return false
		}
		time.Sleep(10 * time.Millisecond) // the flush may run after the test's callback
		resp, err := s.Introspect(context.Background(), &introspectionv1.IntrospectRequest{Token: testToken})
		return err == nil && !resp.GetActive()
	}, 20*time.Second, 10*time.Millisecond, "the cached answer outlived the reconnect")
}
