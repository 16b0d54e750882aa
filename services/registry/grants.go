package registry

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/store"
)

// Grant statuses, shorter.
const (
	grantPending  = registryv1.GrantStatus_GRANT_STATUS_PENDING
	grantApproved = registryv1.GrantStatus_GRANT_STATUS_APPROVED
	grantRejected = registryv1.GrantStatus_GRANT_STATUS_REJECTED
	grantRevoked  = registryv1.GrantStatus_GRANT_STATUS_REVOKED
)

// grantStatusText names statuses in errors.
var grantStatusText = map[registryv1.GrantStatus]string{grantPending: "pending", grantApproved: "approved",
	grantRejected: "rejected", grantRevoked: "revoked"}

// RequestGrant implements ClientRegistryService.
func (s *Server) RequestGrant(ctx context.Context, req *registryv1.RequestGrantRequest) (*registryv1.RequestGrantResponse, error) {
	p, c, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	if err := s.registered(ctx, req.GetScope()); err != nil {
		return nil, err
	}
	status := grantPending
	if p.isOperator() {
		status = grantApproved
	}
	g, err := s.store.UpdateGrant(ctx, c.ID, req.GetScope(), func(g Grant, exists bool) (Grant, error) {
		if exists && g.Status != grantRevoked && g.Status != grantRejected {
			return g, apierr.New(apierr.AlreadyExists, "the grant is already %s", grantStatusText[g.Status])
		}
		return Grant{ClientID: c.ID, Scope: req.GetScope(), Status: status, UpdateTime: time.Now().UTC()}, nil
	})
	if err != nil {
		return nil, err
	}
	s.grantChanged(g)
	return &registryv1.RequestGrantResponse{Grant: grantProto(g)}, nil
}

// ApproveGrant implements ClientRegistryService.
func (s *Server) ApproveGrant(ctx context.Context, req *registryv1.ApproveGrantRequest) (*registryv1.ApproveGrantResponse, error) {
	g, err := s.decideGrant(ctx, req.GetClientId(), req.GetScope(), []registryv1.GrantStatus{grantPending, grantRejected}, grantApproved)
	if err != nil {
		return nil, err
	}
	return &registryv1.ApproveGrantResponse{Grant: grantProto(g)}, nil
}

// RejectGrant implements ClientRegistryService.
func (s *Server) RejectGrant(ctx context.Context, req *registryv1.RejectGrantRequest) (*registryv1.RejectGrantResponse, error) {
	g, err := s.decideGrant(ctx, req.GetClientId(), req.GetScope(), []registryv1.GrantStatus{grantPending}, grantRejected)
	if err != nil {
		return nil, err
	}
	return &registryv1.RejectGrantResponse{Grant: grantProto(g)}, nil
}

// RevokeGrant implements ClientRegistryService.
func (s *Server) RevokeGrant(ctx context.Context, req *registryv1.RevokeGrantRequest) (*registryv1.RevokeGrantResponse, error) {
	g, err := s.decideGrant(ctx, req.GetClientId(), req.GetScope(), []registryv1.GrantStatus{grantApproved}, grantRevoked)
	if err != nil {
		return nil, err
	}
	return &registryv1.RevokeGrantResponse{Grant: grantProto(g)}, nil
}

// decideGrant moves a grant from one of from to to, for the owners of the scope's API (operators also
// for scopes no API registered).
func (s *Server) decideGrant(ctx context.Context, clientID, sc string, from []registryv1.GrantStatus, to registryv1.GrantStatus) (Grant, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return Grant{}, err
	}
	if !guid.Valid(clientID) {
		return Grant{}, apierr.New(apierr.InvalidRequest, "client_id must be a GUID")
	}
	apiID, err := s.store.APIOfScope(ctx, sc)
	if err != nil && !(errors.Is(err, store.ErrNotFound) && p.isOperator()) {
		return Grant{}, lookupError(p, err, "scope")
	}
	if !p.isOperator() {
		if _, err := s.ownAPI(ctx, p, apiID); err != nil {
			return Grant{}, denied("scope")
		}
	}
	g, err := s.store.UpdateGrant(ctx, clientID, sc, func(g Grant, exists bool) (Grant, error) {
		if !exists {
			return g, apierr.New(apierr.NotFound, "grant not found")
		}
		if !slices.Contains(from, g.Status) {
			return g, apierr.New(apierr.FailedPrecondition, "the grant is %s", grantStatusText[g.Status])
		}
		g.Status, g.UpdateTime = to, time.Now().UTC()
		return g, nil
	})
	if err != nil {
		return Grant{}, err
	}
	s.grantChanged(g)
	return g, nil
}

// ListGrants implements ClientRegistryService.
func (s *Server) ListGrants(ctx context.Context, req *registryv1.ListGrantsRequest) (*registryv1.ListGrantsResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case (req.GetClientId() == "") == (req.GetApiId() == ""):
		return nil, apierr.New(apierr.InvalidRequest, "name exactly one of client_id and api_id")
	case req.GetClientId() != "":
		if _, err := s.ownClient(ctx, p, req.GetClientId()); err != nil {
			return nil, err
		}
	default:
		if !guid.Valid(req.GetApiId()) {
			return nil, apierr.New(apierr.InvalidRequest, "api_id must be a GUID")
		}
		if _, err := s.ownAPI(ctx, p, req.GetApiId()); err != nil {
			return nil, err
		}
	}
	grants, err := s.store.ListGrants(ctx, req.GetClientId(), req.GetApiId())
	if err != nil {
		return nil, err
	}
	return &registryv1.ListGrantsResponse{Grants: grantsProto(grants)}, nil
}

// registered checks that an API registered the scope.
func (s *Server) registered(ctx context.Context, sc string) error {
	_, err := s.store.APIOfScope(ctx, sc)
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New(apierr.InvalidRequest, "scope %s is not registered by any API", sc)
	}
	return err
}

// grantChanged logs the change and tells cache holders that the client's rights changed.
func (s *Server) grantChanged(g Grant) {
	s.log.Info("grant changed", "client_id", g.ClientID, "scope", g.Scope, "status", grantStatusText[g.Status])
	s.clientChanged(g.ClientID)
}

func grantProto(g Grant) *registryv1.Grant {
	return &registryv1.Grant{ClientId: g.ClientID, Scope: g.Scope, Status: g.Status, UpdateTime: timestamppb.New(g.UpdateTime)}
}

func grantsProto(gs []Grant) []*registryv1.Grant {
	out := make([]*registryv1.Grant, len(gs))
	for i, g := range gs {
		out[i] = grantProto(g)
	}
	return out
}
