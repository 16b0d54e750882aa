package grpcx

import (
	"context"
	"log/slog"
	"net"
	"sync"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// InProcess is an in-process gRPC channel: services registered on it are called through their generated
// gRPC clients, with the server's interceptor, metadata and status errors, but without sockets, HTTP/2
// framing or serialization (messages are copied). Monolithic mode uses it between services in one process
// and from the gateway.
//
// Unary calls run the handler in the caller's goroutine. grpchan's inprocgrpc channel, which still
// carries the streams, starts a goroutine per call; growing that goroutine's stack on every call cost
// more CPU than the introspection service's own work under load.
type InProcess struct {
	streams     *inprocgrpc.Channel
	interceptor grpc.UnaryServerInterceptor

	mu    sync.RWMutex
	unary map[string]unaryMethod // by full method name
}

type unaryMethod struct {
	impl    any
	handler grpc.MethodHandler
}

var (
	_ grpc.ServiceRegistrar      = (*InProcess)(nil)
	_ grpc.ClientConnInterface   = (*InProcess)(nil)
	_ grpc.ServerTransportStream = (*unaryStream)(nil)
	_ net.Addr                   = inProcessAddr{}
)

// NewInProcessChannel returns an in-process channel with the server's interceptor.
func NewInProcessChannel(log *slog.Logger, in *Internal) *InProcess {
	icp := unaryServerInterceptor(log, in)
	return &InProcess{streams: new(inprocgrpc.Channel).WithServerUnaryInterceptor(icp), interceptor: icp,
		unary: map[string]unaryMethod{}}
}

// RegisterService implements grpc.ServiceRegistrar.
func (c *InProcess) RegisterService(desc *grpc.ServiceDesc, impl any) {
	c.streams.RegisterService(desc, impl)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range desc.Methods {
		c.unary["/"+desc.ServiceName+"/"+m.MethodName] = unaryMethod{impl: impl, handler: m.Handler}
	}
}

// Invoke implements grpc.ClientConnInterface: it calls the method's handler through the interceptor with a
// copy of req, in a context holding the caller's outgoing metadata as incoming metadata and the caller's
// deadline and cancellation but none of its values, and copies the answer into reply.
func (c *InProcess) Invoke(ctx context.Context, method string, req, reply any, opts ...grpc.CallOption) error {
	c.mu.RLock()
	m, ok := c.unary[method]
	c.mu.RUnlock()
	if !ok {
		return c.streams.Invoke(ctx, method, req, reply, opts...) // answers Unimplemented
	}
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	stream := &unaryStream{method: method}
	sctx := context.Context(valueless{ctx})
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		sctx = metadata.NewIncomingContext(sctx, md)
	}
	sctx = grpc.NewContextWithServerTransportStream(peer.NewContext(sctx, &inProcessPeer), stream)
	resp, err := m.handler(m.impl, sctx, func(v any) error { return copyMessage(v, req) }, c.interceptor)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = stream.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = stream.trailer
		case grpc.PeerCallOption:
			*o.PeerAddr = inProcessPeer
		}
	}
	if err != nil {
		return err
	}
	return copyMessage(reply, resp)
}

// NewStream implements grpc.ClientConnInterface.
func (c *InProcess) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.streams.NewStream(ctx, desc, method, opts...)
}

// copyMessage makes dst a deep copy of src.
func copyMessage(dst, src any) error {
	d, ok1 := dst.(proto.Message)
	s, ok2 := src.(proto.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "in-process call with a message that is not a protocol buffer: %T", src)
	}
	proto.Reset(d)
	proto.Merge(d, s)
	return nil
}

// valueless passes on a context's deadline and cancellation, not its values: the handler sees only what
// a remote call would carry.
type valueless struct{ context.Context }

func (valueless) Value(any) any { return nil }

// unaryStream keeps the header and trailer a handler sets (grpc.SetHeader, grpc.SetTrailer).
type unaryStream struct {
	method          string
	header, trailer metadata.MD
}

func (s *unaryStream) Method() string { return s.method }

func (s *unaryStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *unaryStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *unaryStream) SetTrailer(md metadata.MD) error {
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// inProcessPeer is the peer of every in-process call.
var inProcessPeer = peer.Peer{Addr: inProcessAddr{}}

type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "inproc" }
func (inProcessAddr) String() string  { return "inproc" }
