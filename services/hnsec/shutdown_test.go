package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/services/pvk"
)

// A gRPC call still running at --shutdown-timeout (here a pull waiting 30 s for changes) is cut off: the
// process stops soon after the timeout, within Kubernetes' 30 s grace, instead of waiting for the call.
func TestShutdownCutsOffCallsAtTheTimeout(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.ShutdownTimeout = time.Second })
	tok := s.token()
	r := s.subCall(http.MethodPost, "", tok, map[string]any{})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	id := r.body["subscription"].(map[string]any)["subscriptionId"].(string)

	conn, err := grpcx.Dial(s.cfg.GRPCAddr, "")
	require.NoError(t, err)
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	go func() {
		_, _ = pvkv1.NewSubscriptionsServiceClient(conn).PullSubscription(ctx, &pvkv1.PullSubscriptionRequest{SubscriptionId: id, WaitMs: 30000})
	}()
	js, err := jetstream.New(s.nc)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c, err := js.Consumer(context.Background(), pvk.StreamName, "sub-"+id)
		return err == nil && c.CachedInfo().NumWaiting > 0
	}, 10*time.Second, 20*time.Millisecond, "the pull is waiting")

	start := time.Now()
	s.stop()
	require.Less(t, time.Since(start), 15*time.Second, "the shutdown waited for the call")
	require.Contains(t, s.logs.String(), "gRPC calls still running at the shutdown timeout were cut off")
}
