package grpcx

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/hnsec/hnsec/pkg/apierr"
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

// A handler that returns another service's error unchanged: a transport failure (gRPC's text names the
// peer's address) reaches the caller as the documented temporarily_unavailable, and the log keeps the
// text; a peer's documented error passes as it is.
func TestPublicErrorsHideTransportFailures(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	transport := status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.7:9090: connect: connection refused"`)
	documented := apierr.New(apierr.NotFound, "no such client").GRPCStatus().Err()
	for _, tc := range []struct {
		name     string
		err      error
		code     codes.Code
		message  string
		reason   string
		internal bool
	}{
		{"transport", transport, codes.Unavailable, apierr.UnavailableDescription, "temporarily_unavailable", true},
		{"deadline", status.Error(codes.DeadlineExceeded, "deadline exceeded after 4.9s talking to 10.0.0.7:9090"), codes.Unavailable,
			apierr.UnavailableDescription, "temporarily_unavailable", true},
		{"peer internal", status.Error(codes.Internal, "panic at 10.0.0.7"), codes.Internal, "internal error", "server_error", true},
		{"documented", documented, codes.NotFound, "no such client", "not_found", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			logs.Reset()
			mu.Unlock()
			srv := grpc.NewServer(grpc.ChainUnaryInterceptor(unaryServerInterceptor(log, NewInternal("credential"))))
			healthpb.RegisterHealthServer(srv, failingHealth{err: tc.err})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(lis) }()
			defer srv.Stop()
			conn, err := Dial(lis.Addr().String(), "")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
			st := status.Convert(err)
			if st.Code() != tc.code || st.Message() != tc.message || apierr.FromGRPC(err).Kind.Name != tc.reason {
				t.Fatalf("caller got %v (%s), want %v %q (%s)", st.Code(), st.Message(), tc.code, tc.message, tc.reason)
			}
			mu.Lock()
			logged := strings.Contains(logs.String(), "10.0.0.7")
			mu.Unlock()
			if logged != tc.internal {
				t.Fatalf("the log names the peer: %t, want %t", logged, tc.internal)
			}
		})
	}
}

// failingHealth fails every check with err.
type failingHealth struct {
	healthpb.UnimplementedHealthServer
	err error
}

func (f failingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return nil, f.err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
