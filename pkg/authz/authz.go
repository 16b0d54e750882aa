// Package authz authorises admin calls by their bearer access token: the token must be active here
// (resolved through the STS's LookupReference, or the STS's own lookup inside the STS) and carry a scope.
package authz

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
)

// Resolver resolves an access token to the reference behind it, with a NotFound status for a token that
// is not active.
type Resolver func(ctx context.Context, token string) (*stsv1.Reference, error)

// STSResolver resolves tokens through the STS's gRPC API.
func STSResolver(sts stsv1.TokenServiceClient) Resolver {
	return func(ctx context.Context, token string) (*stsv1.Reference, error) {
		resp, err := sts.LookupReference(ctx, &stsv1.LookupReferenceRequest{AccessToken: token})
		return resp.GetReference(), err
	}
}

// RequireScope returns the reference of the caller's bearer token when it is active and carries scope.
func RequireScope(ctx context.Context, resolve Resolver, scope string) (*stsv1.Reference, error) {
	tok := BearerToken(ctx)
	if tok == "" {
		return nil, apierr.New(apierr.InvalidToken, "a bearer access token with scope %s is required", scope)
	}
	ref, err := resolve(ctx, tok)
	if status.Code(err) == codes.NotFound {
		return nil, apierr.New(apierr.InvalidToken, "the access token is not active")
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(ref.GetScopes(), scope) {
		return nil, apierr.New(apierr.PermissionDenied, "the access token lacks scope %s", scope)
	}
	return ref, nil
}

// BearerToken returns the token of an "authorization: Bearer ..." metadata entry, or "".
func BearerToken(ctx context.Context) string {
	for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}
