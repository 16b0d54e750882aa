package grpcx

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Router is a client connection that sends each call to where its service runs: the services of this
// process in-process, each other service to its own peer, and the rest to a default peer. Services are
// named by the second part of their proto package: "/hnsec.sts.v1.TokenService/Token" is "sts"; calls
// outside hnsec (health) stay in-process.
type Router struct {
	// Local reaches the services registered in this process, which Here names.
	Local grpc.ClientConnInterface
	Here  map[string]bool
	// Peers reach services by name; Default the services neither here nor in Peers (nil: none).
	Peers   map[string]grpc.ClientConnInterface
	Default grpc.ClientConnInterface
}

var _ grpc.ClientConnInterface = Router{}

// ServiceOf returns the hnsec service a full method name belongs to, or "" for a method outside hnsec.
func ServiceOf(method string) string {
	rest, ok := strings.CutPrefix(method, "/hnsec.")
	if !ok {
		return ""
	}
	svc, _, _ := strings.Cut(rest, ".")
	return svc
}

func (r Router) route(method string) (grpc.ClientConnInterface, error) {
	svc := ServiceOf(method)
	switch {
	case svc == "" || r.Here[svc]:
		return r.Local, nil
	case r.Peers[svc] != nil:
		return r.Peers[svc], nil
	case r.Default != nil:
		return r.Default, nil
	}
	return nil, status.Errorf(codes.Unavailable, "no address for the %s service: run it here or name its peer", svc)
}

// Invoke implements grpc.ClientConnInterface.
func (r Router) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := r.route(method)
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (r Router) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := r.route(method)
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}
