package authz

import (
	"context"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/scope"
)

// Admins is the principal check of privileged RPCs outside the registry (DESIGN.md, Authorization model):
// the caller's bearer token must be active and carry hnsec:registry.admin, and the registry must confirm,
// on every call, that the token's client is an admin credential that is still there and not blocked. A
// scope in the token is necessary, never sufficient.
type Admins struct {
	Resolve  Resolver
	Registry registryv1.ClientRegistryServiceClient
}

// Require returns the caller's principal. When clientID is set, the principal must also manage that
// client configuration; when action is set, the registry audits it.
func (a Admins) Require(ctx context.Context, clientID, action string) (*registryv1.AuthorizeAdminResponse, error) {
	ref, err := RequireScope(ctx, a.Resolve, scope.RegistryAdmin)
	if err != nil {
		return nil, err
	}
	return a.Registry.AuthorizeAdmin(ctx, &registryv1.AuthorizeAdminRequest{CallerClientId: ref.GetClientId(), ClientId: clientID, Action: action})
}

// RequireOperator returns the caller's principal when it is an operator.
func (a Admins) RequireOperator(ctx context.Context, action string) (*registryv1.AuthorizeAdminResponse, error) {
	p, err := a.Require(ctx, "", action)
	if err == nil && p.GetRole() != registryv1.Role_ROLE_OPERATOR {
		return nil, apierr.New(apierr.PermissionDenied, "only operators may do this")
	}
	return p, err
}
