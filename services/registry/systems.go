package registry

import (
	"context"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/text"
)

// maxDescriptionLen bounds descriptions and reasons (characters).
const maxDescriptionLen = 2000

// Client system statuses, shorter.
const (
	systemDraft    = registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_DRAFT
	systemPending  = registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_PENDING_APPROVAL
	systemApproved = registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_APPROVED
	systemRejected = registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_REJECTED
)

// CreateClientSystem implements ClientRegistryService.
func (s *Server) CreateClientSystem(ctx context.Context, req *registryv1.CreateClientSystemRequest) (*registryv1.CreateClientSystemResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	if !guid.Valid(req.GetVendorId()) {
		return nil, apierr.New(apierr.InvalidRequest, "vendor_id must be a GUID")
	}
	if !p.owns(registryv1.Role_ROLE_VENDOR, req.GetVendorId()) {
		return nil, denied("vendor")
	}
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	if err := checkDescription("description", req.GetDescription()); err != nil {
		return nil, err
	}
	if _, err := s.store.GetVendor(ctx, req.GetVendorId()); err != nil {
		return nil, lookupError(p, err, "vendor")
	}
	cs := ClientSystem{ID: guid.New(), VendorID: req.GetVendorId(), Name: req.GetName(), Description: req.GetDescription(),
		Status: systemDraft, CreateTime: time.Now().UTC().Truncate(time.Second)}
	if err := s.store.CreateClientSystem(ctx, cs); err != nil {
		return nil, storeError(err, "client system")
	}
	s.log.Info("client system created", "client_system_id", cs.ID, "vendor_id", cs.VendorID)
	s.changed("client_system", cs.ID)
	return &registryv1.CreateClientSystemResponse{ClientSystem: systemProto(cs)}, nil
}

// GetClientSystem implements ClientRegistryService. Organisation admins may read any system, to choose
// one for their client configurations.
func (s *Server) GetClientSystem(ctx context.Context, req *registryv1.GetClientSystemRequest) (*registryv1.GetClientSystemResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.visibleSystem(ctx, p, req.GetClientSystemId())
	if err != nil {
		return nil, err
	}
	return &registryv1.GetClientSystemResponse{ClientSystem: systemProto(cs)}, nil
}

// visibleSystem loads a system p may read.
func (s *Server) visibleSystem(ctx context.Context, p principal, id string) (ClientSystem, error) {
	if !guid.Valid(id) {
		return ClientSystem{}, apierr.New(apierr.InvalidRequest, "client_system_id must be a GUID")
	}
	cs, err := s.store.GetClientSystem(ctx, id)
	if err != nil {
		return ClientSystem{}, lookupError(p, err, "client system")
	}
	if p.role != registryv1.Role_ROLE_ORGANISATION && !p.owns(registryv1.Role_ROLE_VENDOR, cs.VendorID) {
		return ClientSystem{}, denied("client system")
	}
	return cs, nil
}

// ListClientSystems implements ClientRegistryService.
func (s *Server) ListClientSystems(ctx context.Context, req *registryv1.ListClientSystemsRequest) (*registryv1.ListClientSystemsResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	vendorID := req.GetVendorId()
	if vendorID != "" && !guid.Valid(vendorID) {
		return nil, apierr.New(apierr.InvalidRequest, "vendor_id must be a GUID")
	}
	if p.role == registryv1.Role_ROLE_VENDOR {
		if vendorID != "" && vendorID != p.tenant {
			return nil, denied("vendor")
		}
		vendorID = p.tenant
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	systems, err := s.store.ListClientSystems(ctx, vendorID, pg)
	if err != nil {
		return nil, err
	}
	systems, next := nextPage(systems, pg, func(cs ClientSystem) string { return cs.Name })
	resp := &registryv1.ListClientSystemsResponse{NextPageToken: next}
	for _, cs := range systems {
		resp.ClientSystems = append(resp.ClientSystems, systemProto(cs))
	}
	return resp, nil
}

// SubmitClientSystem implements ClientRegistryService.
func (s *Server) SubmitClientSystem(ctx context.Context, req *registryv1.SubmitClientSystemRequest) (*registryv1.SubmitClientSystemResponse, error) {
	next := systemPending
	if !s.cfg.RequireApproval {
		next = systemApproved
	}
	cs, err := s.moveSystem(ctx, req.GetClientSystemId(), false, []registryv1.ClientSystemStatus{systemDraft, systemRejected}, next, "")
	if err != nil {
		return nil, err
	}
	return &registryv1.SubmitClientSystemResponse{ClientSystem: systemProto(cs)}, nil
}

// ApproveClientSystem implements ClientRegistryService.
func (s *Server) ApproveClientSystem(ctx context.Context, req *registryv1.ApproveClientSystemRequest) (*registryv1.ApproveClientSystemResponse, error) {
	cs, err := s.moveSystem(ctx, req.GetClientSystemId(), true, []registryv1.ClientSystemStatus{systemPending}, systemApproved, "")
	if err != nil {
		return nil, err
	}
	return &registryv1.ApproveClientSystemResponse{ClientSystem: systemProto(cs)}, nil
}

// RejectClientSystem implements ClientRegistryService.
func (s *Server) RejectClientSystem(ctx context.Context, req *registryv1.RejectClientSystemRequest) (*registryv1.RejectClientSystemResponse, error) {
	if err := checkDescription("reason", req.GetReason()); err != nil {
		return nil, err
	}
	cs, err := s.moveSystem(ctx, req.GetClientSystemId(), true, []registryv1.ClientSystemStatus{systemPending}, systemRejected, req.GetReason())
	if err != nil {
		return nil, err
	}
	return &registryv1.RejectClientSystemResponse{ClientSystem: systemProto(cs)}, nil
}

// moveSystem changes a system's status from one of from to to, for its vendor's admins (or operators
// only, when operatorOnly).
func (s *Server) moveSystem(ctx context.Context, id string, operatorOnly bool, from []registryv1.ClientSystemStatus,
	to registryv1.ClientSystemStatus, reason string) (ClientSystem, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return ClientSystem{}, err
	}
	if operatorOnly && !p.isOperator() {
		return ClientSystem{}, apierr.New(apierr.PermissionDenied, "only operators may do this")
	}
	current, err := s.visibleSystem(ctx, p, id)
	if err != nil {
		return ClientSystem{}, err
	}
	if !p.owns(registryv1.Role_ROLE_VENDOR, current.VendorID) {
		return ClientSystem{}, denied("client system")
	}
	cs, err := s.store.UpdateClientSystem(ctx, id, func(cs ClientSystem) (ClientSystem, error) {
		for _, f := range from {
			if cs.Status == f {
				cs.Status, cs.Reason = to, reason
				return cs, nil
			}
		}
		return cs, apierr.New(apierr.FailedPrecondition, "the client system is %s", systemStatusText[cs.Status])
	})
	if err != nil {
		return ClientSystem{}, storeError(err, "client system")
	}
	s.log.Info("client system status changed", "client_system_id", id, "status", systemStatusText[to])
	s.changed("client_system", id)
	return cs, nil
}

// checkDescription checks free text: lines and tabs are allowed, other control characters are not.
func checkDescription(field, s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxDescriptionLen {
		return apierr.New(apierr.InvalidRequest, "%s must be at most %d characters", field, maxDescriptionLen)
	}
	if text.HasControl(s, true) {
		return apierr.New(apierr.InvalidRequest, "%s must not contain control characters other than line breaks and tabs", field)
	}
	return nil
}

func systemProto(cs ClientSystem) *registryv1.ClientSystem {
	return &registryv1.ClientSystem{ClientSystemId: cs.ID, VendorId: cs.VendorID, Name: cs.Name, Description: cs.Description,
		Status: cs.Status, CreateTime: timestamppb.New(cs.CreateTime)}
}
