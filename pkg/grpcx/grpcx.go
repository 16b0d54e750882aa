// Package grpcx builds hnsec's gRPC servers and client connections the same way in every mode: correlation
// ids in, log lines out, panics and internal errors turned into documented errors that leak nothing, the
// standard health service on, reflection where the process puts it. It knows no service.
package grpcx

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/fullstorydev/grpchan"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/correlation"
)

// InternalMetadataKey carries the internal credential between services.
const InternalMetadataKey = "x-hnsec-internal"

// Internal is the credential services present to each other, and the RPCs only they may call.
type Internal struct {
	// Credential is the shared secret.
	Credential string
	// Methods are the full method names reserved for internal callers; fill it before serving.
	Methods map[string]bool
}

// NewInternal returns an Internal with credential and no reserved methods yet.
func NewInternal(credential string) *Internal {
	return &Internal{Credential: credential, Methods: map[string]bool{}}
}

// Reserve marks full method names as internal-only.
func (in *Internal) Reserve(methods ...string) {
	for _, m := range methods {
		in.Methods[m] = true
	}
}

// IsInternal reports whether the call in ctx comes from another service: it presents the credential, or
// (with TLS) a client certificate of the internal CA.
func (in *Internal) IsInternal(ctx context.Context) bool {
	if verifiedPeer(ctx) {
		return true
	}
	v := metadata.ValueFromIncomingContext(ctx, InternalMetadataKey)
	return len(v) == 1 && subtle.ConstantTimeCompare([]byte(v[0]), []byte(in.Credential)) == 1
}

// check admits a call to a reserved method only with the credential.
func (in *Internal) check(ctx context.Context, method string) error {
	if !in.Methods[method] || in.IsInternal(ctx) {
		return nil
	}
	return apierr.New(apierr.PermissionDenied, "%s is for internal callers only", method)
}

// MaxRecvMsgBytes bounds a request message: PVK's set request carries up to 4 MiB of signed evidence in
// base64 (gRPC's default of 4 MiB would refuse it between processes).
const MaxRecvMsgBytes = 8 << 20

// NewServer returns a gRPC server with hnsec's interceptors and a health service (returned so services can
// report their state). Reflection is registered separately (Reflection), on it or on an ops listener.
func NewServer(log *slog.Logger, in *Internal, opts ...grpc.ServerOption) (*grpc.Server, *health.Server) {
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(unaryServerInterceptor(log, in)),
		// Long-lived workers keep their grown stacks (a goroutine per stream grows one for every call);
		// idle ones cost little, and beyond 256 concurrent calls gRPC spawns goroutines as usual.
		grpc.NumStreamWorkers(256),
		grpc.MaxRecvMsgSize(MaxRecvMsgBytes)}, opts...)...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	return srv, hs
}

// Reflection registers gRPC server reflection (v1 and v1alpha) on reg, describing the services of
// services: the server itself, or the main server from an ops listener's own gRPC server.
func Reflection(reg grpc.ServiceRegistrar, services reflection.ServiceInfoProvider) {
	opts := reflection.ServerOptions{Services: services}
	reflectionv1.RegisterServerReflectionServer(reg, reflection.NewServerV1(opts))
	reflectionv1alpha.RegisterServerReflectionServer(reg, reflection.NewServer(opts)) // grpcurl and older clients ask v1alpha
}

// unaryServerInterceptor puts the correlation id in the context, admits internal-only methods to internal
// callers only, recovers panics, hides internal errors and logs every failed call with its korrelasjonsId
// (successes at debug level).
func unaryServerInterceptor(log *slog.Logger, in *Internal) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		id := correlation.FromIncoming(ctx)
		ctx = correlation.With(ctx, id)
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in gRPC handler", "method", info.FullMethod, correlation.LogKey, id,
					"panic", p, "stack", string(debug.Stack()))
				resp, err = nil, apierr.New(apierr.ServerError, "internal error")
			}
			if err != nil {
				err = publicError(log, info.FullMethod, id, err)
			}
			logCall(ctx, log, info.FullMethod, id, time.Since(start), err)
		}()
		if err := in.check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// publicError keeps documented errors and peer statuses, except those whose text may name internals
// (apierr.Hidden: a call to another service that failed in transport, with the peer's address in gRPC's
// text, becomes the documented temporarily_unavailable), and replaces anything else with ServerError,
// logging what it replaced: a client never sees an internal error text or address.
func publicError(log *slog.Logger, method, id string, err error) error {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e
	}
	if apierr.Hidden(err) {
		log.Warn("call to another service failed", "method", method, correlation.LogKey, id, "err", err)
		return apierr.FromGRPC(err)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	log.Error("internal error", "method", method, correlation.LogKey, id, "err", err)
	return apierr.New(apierr.ServerError, "internal error")
}

func logCall(ctx context.Context, log *slog.Logger, method, id string, d time.Duration, err error) {
	if err == nil {
		if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("grpc call", "method", method, correlation.LogKey, id, "duration", d)
		}
		return
	}
	e := apierr.FromGRPC(err)
	level := slog.LevelInfo
	if e.Kind.HTTPStatus >= 500 {
		level = slog.LevelError
	}
	log.Log(ctx, level, "grpc call failed", "method", method, correlation.LogKey, id, "error", e.Kind.Name,
		"description", e.Description, "duration", d)
}

// roundRobin spreads calls over every address a peer's name resolves to: a headless Kubernetes Service
// names each replica, and without it every call would go to the first.
const roundRobin = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// Dial returns a client connection to addr that forwards the caller's correlation id and, when
// credential is set, presents it as the internal credential. The connection is plaintext unless opts
// give transport credentials (TLS.DialOption).
func Dial(addr, credential string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(outgoing(credential)), grpc.WithDefaultServiceConfig(roundRobin)}, opts...)...)
}

// InProcessClient returns a client connection over ch with Dial's behaviour.
func InProcessClient(ch *InProcess, credential string) grpc.ClientConnInterface {
	return grpchan.InterceptClientConn(ch, outgoing(credential), nil)
}

// Registrars registers a service on several registrars (the TCP server and the in-process channel).
type Registrars []grpc.ServiceRegistrar

// RegisterService implements grpc.ServiceRegistrar.
func (rs Registrars) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, r := range rs {
		r.RegisterService(desc, impl)
	}
}

// outgoing puts the context's correlation id, and the internal credential when set, in the outgoing
// metadata.
func outgoing(credential string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = correlation.Outgoing(ctx)
		if credential != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, InternalMetadataKey, credential)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}
