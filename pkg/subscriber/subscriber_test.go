package subscriber

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
	replication = "nhn:helsenorge.eksternapi/personverninnstilling_replikering"
	clientID    = "6f1c2d3e-0000-4000-8000-000000000001"
)

// fakeRegistry answers LookupClient from a settable client (nil: not found) and counts the calls.
type fakeRegistry struct {
	registryv1.ClientRegistryServiceClient
	mu     sync.Mutex
	client *registryv1.Client
	err    error
	calls  atomic.Int32
	// gate, when set, holds each call until it is closed.
	gate chan struct{}
}

func (f *fakeRegistry) LookupClient(ctx context.Context, _ *registryv1.LookupClientRequest, _ ...grpc.CallOption) (*registryv1.LookupClientResponse, error) {
	f.calls.Add(1)
	f.mu.Lock()
	gate, c, err := f.gate, f.client, f.err // the answer as of the call
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, status.Error(codes.NotFound, "client not found")
	}
	return &registryv1.LookupClientResponse{Client: c}, nil
}

func (f *fakeRegistry) set(c *registryv1.Client, err error) {
	f.mu.Lock()
	f.client, f.err = c, err
	f.mu.Unlock()
}

func client(st registryv1.ClientStatus, grants ...registryv1.GrantStatus) *registryv1.Client {
	c := &registryv1.Client{ClientId: clientID, Status: st}
	for _, g := range grants {
		c.Grants = append(c.Grants, &registryv1.Grant{ClientId: clientID, Scope: replication, Status: g})
	}
	return c
}

func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client *registryv1.Client
		cause  Cause
		reason string
	}{
		{"active and granted", client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_APPROVED), Allowed, ""},
		{"limited and granted", client(registryv1.ClientStatus_CLIENT_STATUS_LIMITED, registryv1.GrantStatus_GRANT_STATUS_APPROVED), Allowed, ""},
		{"blocked", client(registryv1.ClientStatus_CLIENT_STATUS_BLOCKED, registryv1.GrantStatus_GRANT_STATUS_APPROVED), Blocked,
			"the subscriber's client configuration is blocked"},
		{"deleted", nil, Deleted, "the subscriber's client configuration does not exist (deleted)"},
		{"revoked", client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_REVOKED), NotGranted,
			"the subscriber's client configuration holds no approved grant of scope " + replication + " (the grant is revoked)"},
		{"pending", client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_PENDING), NotGranted,
			"the subscriber's client configuration holds no approved grant of scope " + replication + " (the grant is pending)"},
		{"never requested", client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE), NotGranted,
			"the subscriber's client configuration holds no approved grant of scope " + replication + " (it was never requested)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := &fakeRegistry{client: tc.client}
			v, err := NewChecker(reg, time.Minute).Check(t.Context(), clientID, replication)
			require.NoError(t, err)
			require.Equal(t, tc.cause, v.Cause)
			require.Equal(t, tc.reason, v.Reason)
			require.Equal(t, tc.cause == Allowed, v.OK())
		})
	}
}

func TestCacheDropAndTTL(t *testing.T) {
	reg := &fakeRegistry{client: client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_APPROVED)}
	c := NewChecker(reg, 200*time.Millisecond)
	var heard []string
	c.OnChange(func(id string) {
		v, err := c.Check(t.Context(), id, replication)
		if err != nil {
			heard = append(heard, "error")
			return
		}
		heard = append(heard, string(v.Cause))
	})
	for range 100 {
		v, err := c.Check(t.Context(), clientID, replication)
		require.NoError(t, err)
		require.True(t, v.OK())
	}
	require.Equal(t, int32(1), reg.calls.Load(), "one lookup, then the cache")

	// A change event drops the answer before the watchers hear of it: they see the new one.
	reg.set(client(registryv1.ClientStatus_CLIENT_STATUS_BLOCKED, registryv1.GrantStatus_GRANT_STATUS_APPROVED), nil)
	c.Drop(clientID)
	require.Equal(t, []string{string(Blocked)}, heard)

	// Without an event the TTL bounds how long an answer lasts.
	reg.set(nil, nil)
	v, _ := c.Check(t.Context(), clientID, replication)
	require.Equal(t, Blocked, v.Cause, "cached")
	time.Sleep(250 * time.Millisecond)
	v, _ = c.Check(t.Context(), clientID, replication)
	require.Equal(t, Deleted, v.Cause, "expired and asked again")

	// Registry errors are errors, not verdicts, and are not cached.
	reg.set(nil, status.Error(codes.Unavailable, "down"))
	c.Drop(clientID)
	require.Equal(t, []string{string(Blocked), "error"}, heard)
	_, err := c.Check(t.Context(), clientID, replication)
	require.Equal(t, codes.Unavailable, status.Code(err))
	reg.set(client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_APPROVED), nil)
	v, err = c.Check(t.Context(), clientID, replication)
	require.NoError(t, err)
	require.True(t, v.OK())
}

// A lookup under way when its client changes answers its callers but is not cached: the next check asks
// again.
func TestLookupRacingAChangeIsNotCached(t *testing.T) {
	gate := make(chan struct{})
	reg := &fakeRegistry{client: client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_APPROVED), gate: gate}
	c := NewChecker(reg, time.Hour)
	done := make(chan Verdict)
	go func() {
		v, _ := c.Check(context.Background(), clientID, replication)
		done <- v
	}()
	require.Eventually(t, func() bool { return reg.calls.Load() == 1 }, time.Second, time.Millisecond)
	c.Drop(clientID) // the client is blocked while the registry's old answer is on its way
	reg.mu.Lock()
	reg.gate = nil
	reg.client = client(registryv1.ClientStatus_CLIENT_STATUS_BLOCKED, registryv1.GrantStatus_GRANT_STATUS_APPROVED)
	reg.mu.Unlock()
	close(gate)
	require.True(t, (<-done).OK(), "the old answer, once")
	v, err := c.Check(t.Context(), clientID, replication)
	require.NoError(t, err)
	require.Equal(t, Blocked, v.Cause, "not cached: asked again")
	require.Equal(t, int32(2), reg.calls.Load())
}

// A cached check is what every webhook attempt pays.
func BenchmarkCheckCached(b *testing.B) {
	reg := &fakeRegistry{client: client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_APPROVED)}
	c := NewChecker(reg, time.Hour)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := c.Check(context.Background(), clientID, replication); err != nil || !v.OK() {
				b.Fatal(v, err)
			}
		}
	})
}

// When the NATS connection comes back every answer goes (a change event may have been missed), and the
// watchers hear of every client ("").
func TestFlushedOnReconnect(t *testing.T) {
	const token = "a-token-of-at-least-thirty-two-characters"
	server, err := natsbus.Open(natsbus.Config{DataDir: t.TempDir(), Name: "test", Listen: "127.0.0.1:0", Token: token})
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	bus, err := natsbus.Open(natsbus.Config{URL: server.ClientURL(), Token: token, Name: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	reg := &fakeRegistry{client: client(registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, registryv1.GrantStatus_GRANT_STATUS_APPROVED)}
	c := NewChecker(reg, time.Hour)
	heard := make(chan string, 10)
	c.OnChange(func(id string) { heard <- id })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx, bus) }()
	for range 2 {
		v, err := c.Check(ctx, clientID, replication)
		require.NoError(t, err)
		require.True(t, v.OK())
	}
	require.Equal(t, int32(1), reg.calls.Load())

	reg.set(client(registryv1.ClientStatus_CLIENT_STATUS_BLOCKED, registryv1.GrantStatus_GRANT_STATUS_APPROVED), nil) // the event is missed
	// Reconnect until the watchers hear of the flush (Run registers it once it runs).
	flushed := func() bool {
		if bus.Conn.ForceReconnect() != nil {
			return false
		}
		select {
		case id := <-heard:
			return id == "" // every client
		case <-time.After(2 * time.Second):
			return false
		}
	}
	require.Eventually(t, flushed, 20*time.Second, time.Millisecond, "the watchers heard of no flush")
	v, err := c.Check(ctx, clientID, replication)
	require.NoError(t, err)
	require.Equal(t, Blocked, v.Cause)
}
