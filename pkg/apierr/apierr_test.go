package apierr_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hnsec/hnsec/pkg/apierr"
)

func TestRoundTripThroughGRPC(t *testing.T) {
	tests := []struct {
		name string
		in   *apierr.Error
	}{
		{"invalid client", apierr.New(apierr.InvalidClient, "client authentication failed")},
		{"invalid scope", apierr.New(apierr.InvalidScope, "scope x is not granted")},
		{"throttled", &apierr.Error{Kind: apierr.TooManyRequests, Description: "slow", RetryAfter: 1500 * time.Millisecond}},
		{"method", apierr.New(apierr.MethodNotAllowed, "no")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.in.GRPCStatus()
			require.Equal(t, tt.in.Kind.GRPC, st.Code())
			got := apierr.FromGRPC(st.Err())
			require.Equal(t, tt.in.Kind, got.Kind)
			require.Equal(t, tt.in.Description, got.Description)
			if tt.in.RetryAfter > 0 {
				require.Equal(t, 2*time.Second, got.RetryAfter, "retry_after rounds up to whole seconds")
			}
		})
	}
}

func TestFromGRPCForeignErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantKind apierr.Kind
		wantDesc string
	}{
		{"plain error leaks nothing", errors.New("sql: database is locked"), apierr.ServerError, "internal error"},
		{"bare invalid argument keeps its text", status.Error(codes.InvalidArgument, "bad body"), apierr.InvalidRequest, "bad body"},
		{"bare not found", status.Error(codes.NotFound, "x"), apierr.NotFound, "x"},
		{"bare internal leaks nothing", status.Error(codes.Internal, "stack trace"), apierr.ServerError, "internal error"},
		{"wrapped apierr", fmt.Errorf("ctx: %w", apierr.New(apierr.InvalidScope, "s")), apierr.InvalidScope, "s"},
		{"transport failure leaks no address", status.Error(codes.Unavailable,
			`connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.7:9090: connect: connection refused"`),
			apierr.Unavailable, apierr.UnavailableDescription},
		{"timed-out peer call leaks nothing", status.Error(codes.DeadlineExceeded, "context deadline exceeded calling 10.0.0.7:9090"),
			apierr.Unavailable, apierr.UnavailableDescription},
		{"a peer's documented unavailable keeps its text", apierr.New(apierr.Unavailable, "the token could not be stored").GRPCStatus().Err(),
			apierr.Unavailable, "the token could not be stored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := apierr.FromGRPC(tt.err)
			require.Equal(t, tt.wantKind, got.Kind)
			require.Equal(t, tt.wantDesc, got.Description)
		})
	}
}

func TestBodyCarriesBothShapes(t *testing.T) {
	b := apierr.New(apierr.InvalidClient, "client authentication failed").Body("3f0e9a52-7d3b-4c47-9c53-5ad0e5a0a111")
	require.Equal(t, apierr.Body{
		Error: "invalid_client", ErrorDescription: "client authentication failed", Code: 1002,
		Message: "client authentication failed", ErrorCategory: "Authentication", StatusCode: 401,
		KorrelasjonsID: "3f0e9a52-7d3b-4c47-9c53-5ad0e5a0a111",
	}, b)
}
