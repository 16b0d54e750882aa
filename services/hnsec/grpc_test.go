package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
)

// grpcToken calls TokenService.Token over gRPC as if forwarded for addr.
func grpcToken(t *testing.T, s *testServer, addr, id, secret string) (*stsv1.TokenResponse, error) {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-for", addr)
	return stsv1.NewTokenServiceClient(s.conn).Token(ctx, &stsv1.TokenRequest{GrantType: "client_credentials", ClientId: id, ClientSecret: secret})
}

func TestGRPCTokenAndReflection(t *testing.T) {
	s := newTestServer(t)
	resp, err := grpcToken(t, s, "127.0.0.1", s.dev.ClientID, s.dev.ClientSecret)
	require.NoError(t, err)
	require.Equal(t, int32(1800), resp.GetExpiresIn())

	_, err = grpcToken(t, s, "127.0.0.1", s.dev.ClientID, "wrong")
	e := apierr.FromGRPC(err)
	require.Equal(t, apierr.InvalidClient, e.Kind, "the OAuth2 error travels in the gRPC status")

	_, err = stsv1.NewTokenServiceClient(s.conn).LookupReference(context.Background(), &stsv1.LookupReferenceRequest{AccessToken: "x.y.z"})
	require.Equal(t, apierr.NotFound, apierr.FromGRPC(err).Kind)

	stream, err := reflectionpb.NewServerReflectionClient(s.conn).ServerReflectionInfo(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	r, err := stream.Recv()
	require.NoError(t, err)
	var names []string
	for _, svc := range r.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	require.Subset(t, names, []string{"hnsec.sts.v1.TokenService", "hnsec.registry.v1.ClientRegistryService", "grpc.health.v1.Health"})

	// gRPC health answers for the whole server ("") and for each API by name.
	health := healthpb.NewHealthClient(s.conn)
	for _, name := range []string{"", "hnsec.sts.v1.TokenService", "hnsec.registry.v1.ClientRegistryService", "hnsec.pvk.v1.PrivacySettingsService",
		"hnsec.introspection.v1.IntrospectionService", "hnsec.dispatcher.v1.DeliveriesService"} {
		h, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
		require.NoError(t, err, name)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus(), name)
	}
	_, err = health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "hnsec.nope.v1.Nothing"})
	require.Equal(t, codes.NotFound, status.Code(err))
}
