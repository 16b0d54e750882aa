package grpcx

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/hnsec/hnsec/pkg/correlation"
)

// probeHealth records what its Check handler saw, sets a header, and changes the request it was given.
type probeHealth struct {
	*health.Server
	sawValue   any
	sawMD      metadata.MD
	sawPeer    string
	correlated string
}

type ctxKey struct{}

func (h *probeHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.sawValue = ctx.Value(ctxKey{})
	h.sawMD, _ = metadata.FromIncomingContext(ctx)
	if p, ok := peer.FromContext(ctx); ok {
		h.sawPeer = p.Addr.String()
	}
	h.correlated = correlation.From(ctx)
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-probe", "header")); err != nil {
		return nil, err
	}
	service := req.GetService()
	req.Service = "changed by the handler"
	if service == "panic" {
		panic("probe")
	}
	return h.Server.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
}

// Unary calls over the in-process channel behave as remote ones: the interceptor runs (correlation id,
// internal-only methods, panics), metadata arrives as incoming metadata, the caller's context values do
// not, messages are copies, headers reach grpc.Header, and errors are status errors.
func TestInProcessUnary(t *testing.T) {
	in := NewInternal("internal-secret")
	in.Reserve(healthpb.Health_List_FullMethodName)
	ch := NewInProcessChannel(slog.New(slog.DiscardHandler), in)
	h := &probeHealth{Server: health.NewServer()}
	h.SetServingStatus("sts", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(ch, h)
	public := healthpb.NewHealthClient(InProcessClient(ch, ""))
	internal := healthpb.NewHealthClient(InProcessClient(ch, "internal-secret"))

	id := correlation.New()
	ctx := correlation.With(context.WithValue(context.Background(), ctxKey{}, "caller's"), id)
	req := &healthpb.HealthCheckRequest{Service: "sts"}
	var header metadata.MD
	resp, err := public.Check(ctx, req, grpc.Header(&header))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	if req.GetService() != "sts" {
		t.Errorf("the handler changed the caller's request: %q", req.GetService())
	}
	if h.sawValue != nil {
		t.Errorf("the handler saw the caller's context value %v", h.sawValue)
	}
	if h.correlated != id || h.sawPeer != "inproc" {
		t.Errorf("handler saw correlation id %q (want %q) and peer %q", h.correlated, id, h.sawPeer)
	}
	if got := header.Get("x-probe"); len(got) != 1 || got[0] != "header" {
		t.Errorf("header = %v", header)
	}
	if v := h.sawMD.Get(InternalMetadataKey); len(v) != 0 {
		t.Errorf("a public client sent the internal credential: %v", v)
	}

	tests := []struct {
		name   string
		call   func() error
		status codes.Code
	}{
		{"unknown service", func() error {
			_, err := public.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
			return err
		}, codes.NotFound},
		{"handler panics", func() error {
			_, err := public.Check(ctx, &healthpb.HealthCheckRequest{Service: "panic"})
			return err
		}, codes.Internal},
		{"internal method, public caller", func() error {
			_, err := public.List(ctx, &healthpb.HealthListRequest{})
			return err
		}, codes.PermissionDenied},
		{"internal method, internal caller", func() error {
			_, err := internal.List(ctx, &healthpb.HealthListRequest{})
			return err
		}, codes.OK},
		{"cancelled context", func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := public.Check(cctx, req)
			return err
		}, codes.Canceled},
		{"unregistered method", func() error {
			return InProcessClient(ch, "").Invoke(ctx, "/hnsec.nothing.v1.Nothing/Call", req, &healthpb.HealthCheckResponse{})
		}, codes.Unimplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.status {
				t.Fatalf("status %s, want %s", got, tt.status)
			}
		})
	}
}

// Streams go over the same channel.
func TestInProcessStream(t *testing.T) {
	ch := NewInProcessChannel(slog.New(slog.DiscardHandler), NewInternal("x"))
	h := health.NewServer()
	h.SetServingStatus("sts", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(ch, h)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := healthpb.NewHealthClient(InProcessClient(ch, "")).Watch(ctx, &healthpb.HealthCheckRequest{Service: "sts"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first = %v, %v", first, err)
	}
	h.SetServingStatus("sts", healthpb.HealthCheckResponse_NOT_SERVING)
	second, err := stream.Recv()
	if err != nil || second.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second = %v, %v", second, err)
	}
	cancel()
	if _, err := stream.Recv(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("after cancel: %v, want an error", err)
	}
}
