package main

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// TestRunH2Load runs the hand-written HTTP/2 load generator against a real gRPC server's health service:
// it must count answers that pass as passed and everything else as failed.
func TestRunH2Load(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	serving := func(answer []byte) error {
		var r healthpb.HealthCheckResponse
		if err := proto.Unmarshal(answer, &r); err != nil {
			return err
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return errors.New(r.GetStatus().String())
		}
		return nil
	}
	request := func(service string) []byte {
		b, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: service})
		require.NoError(t, err)
		return b
	}
	const check = "/grpc.health.v1.Health/Check"
	for _, tc := range []struct {
		name   string
		addr   string
		call   h2Call
		passes bool
	}{
		{"answers pass", lis.Addr().String(), h2Call{check, request(""), serving}, true},
		{"error status", lis.Addr().String(), h2Call{check, request("no-such-service"), serving}, false},
		{"check fails", lis.Addr().String(), h2Call{check, request(""), func([]byte) error { return errors.New("no") }}, false},
		{"unknown method", lis.Addr().String(), h2Call{"/grpc.health.v1.Health/Nope", request(""), serving}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runH2Load(tc.addr, tc.call, 2, 8, 300*time.Millisecond)
			if tc.passes {
				require.Zero(t, r.failed)
				require.Greater(t, r.ok, 100) // many calls over few connections: flow control and stream ids keep up
				require.Len(t, r.latencies, r.ok)
			} else {
				require.Zero(t, r.ok)
				require.Greater(t, r.failed, 100)
			}
		})
	}
}
