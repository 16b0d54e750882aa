package registry

import (
	"context"
	"errors"
	"fmt"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/authz"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/store"
)

// principal is an authenticated admin caller: its role, which is also the kind of its tenant, and the
// tenant it acts for (a vendor id, an organisation number or an API id; empty for operators). Tenants of
// different kinds never overlap: an organisation admin and a vendor admin with the same organisation
// number are strangers to each other.
type principal struct {
	clientID string
	role     registryv1.Role
	tenant   string
}

// admin returns the caller's principal, and ctx naming it as the actor of the changes it makes: its
// bearer token must be active and carry AdminScope, and its client must be an admin credential that is
// still there and not blocked, asked afresh on every call.
func (s *Server) admin(ctx context.Context) (principal, context.Context, error) {
	ref, err := authz.RequireScope(ctx, authz.STSResolver(s.sts), AdminScope)
	if err != nil {
		return principal{}, ctx, err
	}
	p, err := s.principalOf(ctx, ref.GetClientId())
	if err != nil {
		return principal{}, ctx, err
	}
	return p, withActor(ctx, p), nil
}

// principalOf loads the principal of an admin credential: a deleted or blocked credential has none (its
// tokens are inactive, as introspection says), a client without an admin role is refused.
func (s *Server) principalOf(ctx context.Context, clientID string) (principal, error) {
	c, err := s.store.GetClient(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Status == registryv1.ClientStatus_CLIENT_STATUS_BLOCKED) {
		return principal{}, apierr.New(apierr.InvalidToken, "the access token is not active")
	}
	if err != nil {
		return principal{}, err
	}
	if c.AdminRole == registryv1.Role_ROLE_UNSPECIFIED {
		return principal{}, apierr.New(apierr.PermissionDenied, "this credential has no registry role")
	}
	return principal{clientID: c.ID, role: c.AdminRole, tenant: c.AdminTenant}, nil
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

// owns reports whether p may act for the tenant of kind role (a vendor id, organisation number or API
// id).
func (p principal) owns(role registryv1.Role, tenant string) bool {
	return p.isOperator() || (p.role == role && p.tenant == tenant)
}

// manages reports whether p may manage the client configuration c: operators any; an admin credential
// only the admins of its own typed tenant; any other client its organisation's admins.
func (p principal) manages(c Client) bool {
	if c.AdminRole != registryv1.Role_ROLE_UNSPECIFIED {
		return p.owns(c.AdminRole, c.AdminTenant)
	}
	return p.owns(registryv1.Role_ROLE_ORGANISATION, c.OrganisationNumber)
}

// AuthorizeAdmin implements ClientRegistryService for internal callers: the principal check of other
// services' privileged RPCs.
func (s *Server) AuthorizeAdmin(ctx context.Context, req *registryv1.AuthorizeAdminRequest) (*registryv1.AuthorizeAdminResponse, error) {
	if !guid.Valid(req.GetCallerClientId()) {
		return nil, apierr.New(apierr.InvalidRequest, "caller_client_id must be a GUID")
	}
	p, err := s.principalOf(ctx, req.GetCallerClientId())
	if err != nil {
		return nil, err
	}
	if req.GetClientId() != "" {
		if _, err := s.ownClient(ctx, p, req.GetClientId()); err != nil {
			return nil, err
		}
	}
	if req.GetAction() != "" {
		actx := context.WithValue(withActor(ctx, p), actionKey{}, req.GetAction())
		if err := s.store.Audit(actx, change{objectType: "client", objectID: req.GetClientId()}); err != nil {
			return nil, err
		}
	}
	return &registryv1.AuthorizeAdminResponse{Role: p.role, Tenant: p.tenant}, nil
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
