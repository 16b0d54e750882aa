package grpcx

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// countingHealth counts the health checks a replica answers.
type countingHealth struct {
	*health.Server
	calls atomic.Int64
}

func (h *countingHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.calls.Add(1)
	return h.Server.Check(ctx, req)
}

// A peer name that resolves to several replicas (a headless Kubernetes Service) gets calls spread over
// all of them, not just the first.
func TestDialSpreadsCallsOverReplicas(t *testing.T) {
	var replicas []*countingHealth
	var addrs []resolver.Address
	for range 2 {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		h := &countingHealth{Server: health.NewServer()}
		healthpb.RegisterHealthServer(srv, h)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		replicas = append(replicas, h)
		addrs = append(addrs, resolver.Address{Addr: lis.Addr().String()})
	}
	r := manual.NewBuilderWithScheme("replicas")
	r.InitialState(resolver.State{Addresses: addrs})
	conn, err := Dial(r.Scheme()+":///sts", "", grpc.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	check := func() {
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatal(err)
		}
	}
	// Calls go to the replicas connected so far; once both are, they alternate.
	deadline := time.Now().Add(10 * time.Second)
	for replicas[0].calls.Load() == 0 || replicas[1].calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s of calls: %d and %d", replicas[0].calls.Load(), replicas[1].calls.Load())
		}
		check()
		time.Sleep(time.Millisecond)
	}
	for _, h := range replicas {
		h.calls.Store(0)
	}
	for range 20 {
		check()
	}
	for i, h := range replicas {
		if n := h.calls.Load(); n < 5 {
			t.Errorf("replica %d answered %d of 20 calls", i, n)
		}
	}
}
