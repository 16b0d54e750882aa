package grpcx

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recorder is a connection that records the calls it gets.
type recorder struct {
	name  string
	calls *[]string
}

func (r recorder) Invoke(_ context.Context, method string, _, _ any, _ ...grpc.CallOption) error {
	*r.calls = append(*r.calls, r.name+" "+method)
	return nil
}

func (r recorder) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, nil
}

func TestRouter(t *testing.T) {
	var calls []string
	r := Router{Local: recorder{"local", &calls}, Here: map[string]bool{"pvk": true},
		Peers: map[string]grpc.ClientConnInterface{"sts": recorder{"sts-peer", &calls}}}
	tests := []struct{ method, want string }{
		{"/hnsec.pvk.v1.SubscriptionsService/ListWebhookTargets", "local"},
		{"/hnsec.sts.v1.TokenService/IssueSystemToken", "sts-peer"},
		{"/grpc.health.v1.Health/Check", "local"},
	}
	for _, tt := range tests {
		calls = nil
		if err := r.Invoke(context.Background(), tt.method, nil, nil); err != nil || len(calls) != 1 || calls[0] != tt.want+" "+tt.method {
			t.Errorf("%s: %v, %v; want %s", tt.method, calls, err, tt.want)
		}
	}
	err := r.Invoke(context.Background(), "/hnsec.registry.v1.ClientRegistryService/LookupClient", nil, nil)
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "no address for the registry service: run it here or name its peer" {
		t.Errorf("unrouted call: %v", err)
	}
	r.Default = recorder{"default", &calls}
	calls = nil
	if err := r.Invoke(context.Background(), "/hnsec.registry.v1.ClientRegistryService/LookupClient", nil, nil); err != nil || calls[0] != "default /hnsec.registry.v1.ClientRegistryService/LookupClient" {
		t.Errorf("default peer: %v, %v", calls, err)
	}
}
