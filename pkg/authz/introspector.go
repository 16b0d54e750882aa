package authz

import (
	"context"
	"slices"
	"strings"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
)

// Introspector checks callers' access tokens through the introspection service, for services outside the
// STS (PVK and the dispatcher), and answers with the service's own error codes.
type Introspector struct {
	Client introspectionv1.IntrospectionServiceClient
	// UnauthenticatedCode marks a missing or inactive token, ForbiddenCode a token without the scope.
	UnauthenticatedCode, ForbiddenCode string
}

// Require returns the introspection answer for the caller's bearer token when it is active and carries
// the scope need, or one of the alternatives.
func (in Introspector) Require(ctx context.Context, need string, alternatives ...string) (*introspectionv1.IntrospectResponse, error) {
	tok := BearerToken(ctx)
	if tok == "" {
		return nil, apierr.WithCode(apierr.InvalidToken, in.UnauthenticatedCode, "a bearer access token is required")
	}
	resp, err := in.Client.Introspect(ctx, &introspectionv1.IntrospectRequest{Token: tok})
	if err != nil {
		return nil, err
	}
	if !resp.GetActive() {
		return nil, apierr.WithCode(apierr.InvalidToken, in.UnauthenticatedCode, "the access token is not active")
	}
	held := strings.Fields(resp.GetScope())
	for _, sc := range append([]string{need}, alternatives...) {
		if slices.Contains(held, sc) {
			return resp, nil
		}
	}
	return nil, apierr.WithCode(apierr.PermissionDenied, in.ForbiddenCode, "the access token lacks scope %s", need)
}
