// Package correlation carries a request's korrelasjonsId (a GUID) from the HTTP edge through every gRPC
// hop into every log line, so a client's error can be found in the logs. It owns the header and metadata
// names and nothing else.
package correlation

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/hnsec/hnsec/pkg/guid"
)

const (
	// Header is the HTTP response (and optional request) header carrying the id.
	Header = "X-Correlation-Id"
	// MetadataKey is the gRPC metadata key carrying the id between services.
	MetadataKey = "x-correlation-id"
	// LogKey is the slog attribute name of the id.
	LogKey = "korrelasjonsId"
)

type ctxKey struct{}

// New returns a fresh id.
func New() string { return guid.New() }

// Valid reports whether s is acceptable as an incoming id (a GUID), so a client cannot inject text into logs.
func Valid(s string) bool { return guid.Valid(s) }

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the id in ctx, or "" when there is none.
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// FromIncoming returns the id from incoming gRPC metadata when it is valid, or a fresh one.
func FromIncoming(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, MetadataKey); len(v) > 0 && Valid(v[0]) {
		return v[0]
	}
	return New()
}

// Outgoing returns ctx with the id in ctx added to the outgoing gRPC metadata.
func Outgoing(ctx context.Context) context.Context {
	if id := From(ctx); id != "" {
		return metadata.AppendToOutgoingContext(ctx, MetadataKey, id)
	}
	return ctx
}
