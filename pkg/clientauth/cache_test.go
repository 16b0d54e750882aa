package clientauth

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/natsbus"
)

const (
	testClient = "6f1c2d3e-0000-4000-8000-000000000001"
	testSecret = "the-secret"
	natsToken  = "a-token-of-at-least-thirty-two-characters"
)

// fakeAuthRegistry accepts testSecret until blocked, counting the calls; a gate, when set, holds each
// call until it is closed, with the answer as of the call's start.
type fakeAuthRegistry struct {
	registryv1.ClientRegistryServiceClient
	mu      sync.Mutex
	blocked bool
	gate    chan struct{}
	calls   atomic.Int32
}

func (f *fakeAuthRegistry) AuthenticateClient(_ context.Context, req *registryv1.AuthenticateClientRequest, _ ...grpc.CallOption) (*registryv1.AuthenticateClientResponse, error) {
	f.calls.Add(1)
	f.mu.Lock()
	blocked, gate := f.blocked, f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if blocked || req.GetClientSecret() != testSecret {
		return nil, status.Error(codes.Unauthenticated, "client authentication failed")
	}
	return &registryv1.AuthenticateClientResponse{Client: &registryv1.Client{ClientId: testClient}}, nil
}

func (f *fakeAuthRegistry) block() {
	f.mu.Lock()
	f.blocked, f.gate = true, nil
	f.mu.Unlock()
}

// An authentication the registry answered before the client changed is used once, but not cached
// after the change event dropped the client: the next request asks again.
func TestCacheRefillRacingADrop(t *testing.T) {
	gate := make(chan struct{})
	reg := &fakeAuthRegistry{gate: gate}
	c := NewCache(reg, time.Hour)
	done := make(chan error)
	go func() {
		_, err := c.Authenticate(context.Background(), testClient, testSecret)
		done <- err
	}()
	require.Eventually(t, func() bool { return reg.calls.Load() == 1 }, 5*time.Second, time.Millisecond)
	reg.block()
	c.Drop(testClient) // the change event, while the old answer is on its way
	close(gate)
	require.NoError(t, <-done, "the answer from before the change, once")
	_, err := c.Authenticate(context.Background(), testClient, testSecret)
	require.Error(t, err, "the blocked client's old answer was cached")
	require.Equal(t, int32(2), reg.calls.Load())
}

// When the NATS connection comes back every cached client goes: a change event may have been missed.
func TestCacheFlushedOnReconnect(t *testing.T) {
	server, err := natsbus.Open(natsbus.Config{DataDir: t.TempDir(), Name: "test", Listen: "127.0.0.1:0", Token: natsToken})
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	bus, err := natsbus.Open(natsbus.Config{URL: server.ClientURL(), Token: natsToken, Name: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	reg := &fakeAuthRegistry{}
	c := NewCache(reg, time.Hour)
	stop, err := c.Follow(bus)
	require.NoError(t, err)
	defer stop()
	for range 2 {
		_, err := c.Authenticate(context.Background(), testClient, testSecret)
		require.NoError(t, err)
	}
	require.Equal(t, int32(1), reg.calls.Load(), "the second from the cache")

	reg.block() // while the connection was away: the event never came
	reconnected := make(chan struct{}, 1)
	bus.OnReconnect(func() { reconnected <- struct{}{} })
	require.NoError(t, bus.Conn.ForceReconnect())
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect")
	}
	require.Eventually(t, func() bool {
		_, err := c.Authenticate(context.Background(), testClient, testSecret)
		return err != nil
	}, 5*time.Second, 10*time.Millisecond, "the cached client outlived the reconnect")
}
