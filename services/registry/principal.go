package registry

import (
	"context"
	"errors"
	"fmt"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/authz"
	"github.com/hnsec/hnsec/pkg/store"
)

// principal is an authenticated admin caller: its role and the vendor id or organisation number it is
// bound to.
type principal struct {
	clientID string
	role     registryv1.Role
	tenant   string
}

// admin returns the caller's principal, and ctx naming it as the actor of the changes it makes: its
// bearer token must be active and carry AdminScope, and its client must be an admin credential.
func (s *Server) admin(ctx context.Context) (principal, context.Context, error) {
	ref, err := authz.RequireScope(ctx, authz.STSResolver(s.sts), AdminScope)
	if err != nil {
		return principal{}, ctx, err
	}
	c, err := s.store.GetClient(ctx, ref.GetClientId())
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.AdminRole == registryv1.Role_ROLE_UNSPECIFIED) {
		return principal{}, ctx, apierr.New(apierr.PermissionDenied, "this credential has no registry role")
	}
	if err != nil {
		return principal{}, ctx, err
	}
	p := principal{clientID: c.ID, role: c.AdminRole, tenant: c.AdminTenant}
	return p, withActor(ctx, p), nil
}

// operator is admin for operators only.
func (s *Server) operator(ctx context.Context) (principal, context.Context, error) {
	p, ctx, err := s.admin(ctx)
	if err == nil && !p.isOperator() {
		err = apierr.New(apierr.PermissionDenied, "only operators may do this")
	}
	return p, ctx, err
}

func (p principal) isOperator() bool { return p.role == registryv1.Role_ROLE_OPERATOR }

// owns reports whether p may act for the tenant (a vendor id or organisation number) in role.
func (p principal) owns(role registryv1.Role, tenant string) bool {
	return p.isOperator() || (p.role == role && p.tenant == tenant)
}

// denied is the answer to a non-operator asking for something it may not know about, whether or not it
// exists: existence is not revealed.
func denied(what string) error {
	return apierr.New(apierr.PermissionDenied, "you may not access this %s", what)
}

// lookupError maps a failed load of what for p: operators learn it does not exist, others are denied.
func lookupError(p principal, err error, what string) error {
	if errors.Is(err, store.ErrNotFound) && !p.isOperator() {
		return denied(what)
	}
	return storeError(err, what)
}

// adminCredential creates an admin client configuration for role and tenant.
func (s *Server) adminCredential(ctx context.Context, name, orgnr string, role registryv1.Role, tenant string) (*registryv1.AdminCredential, error) {
	c, secret, err := s.createClient(ctx, Client{Name: fmt.Sprintf("%s admin", name), OrganisationNumber: orgnr,
		Scopes: []string{AdminScope}, AdminRole: role, AdminTenant: tenant}, registryv1.GrantStatus_GRANT_STATUS_APPROVED)
	if err != nil {
		return nil, err
	}
	return &registryv1.AdminCredential{ClientId: c.ID, ClientSecret: secret, Role: role, Tenant: tenant}, nil
}
