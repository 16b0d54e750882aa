package registry

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
)

// CreateVendor implements ClientRegistryService.
func (s *Server) CreateVendor(ctx context.Context, req *registryv1.CreateVendorRequest) (*registryv1.CreateVendorResponse, error) {
	_, ctx, err := s.operator(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	if err := checkOrgnr(req.GetOrganisationNumber()); err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "%v", err)
	}
	v := Vendor{ID: guid.New(), Name: req.GetName(), OrganisationNumber: req.GetOrganisationNumber(), CreateTime: time.Now().UTC().Truncate(time.Second)}
	if err := s.store.CreateVendor(ctx, v); err != nil {
		return nil, storeError(err, "vendor")
	}
	cred, err := s.adminCredential(ctx, v.Name, v.OrganisationNumber, registryv1.Role_ROLE_VENDOR, v.ID)
	if err != nil {
		return nil, err
	}
	s.log.Info("vendor created", "vendor_id", v.ID)
	s.changed("vendor", v.ID)
	return &registryv1.CreateVendorResponse{Vendor: vendorProto(v), AdminCredential: cred}, nil
}

// GetVendor implements ClientRegistryService.
func (s *Server) GetVendor(ctx context.Context, req *registryv1.GetVendorRequest) (*registryv1.GetVendorResponse, error) {
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
	v, err := s.store.GetVendor(ctx, req.GetVendorId())
	if err != nil {
		return nil, lookupError(p, err, "vendor")
	}
	return &registryv1.GetVendorResponse{Vendor: vendorProto(v)}, nil
}

// ListVendors implements ClientRegistryService.
func (s *Server) ListVendors(ctx context.Context, req *registryv1.ListVendorsRequest) (*registryv1.ListVendorsResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	only := ""
	switch p.role {
	case registryv1.Role_ROLE_OPERATOR:
	case registryv1.Role_ROLE_VENDOR:
		only = p.tenant
	default:
		return nil, denied("vendor list")
	}
	vs, err := s.store.ListVendors(ctx, only, pg)
	if err != nil {
		return nil, err
	}
	vs, next := nextPage(vs, pg, func(v Vendor) string { return v.Name })
	resp := &registryv1.ListVendorsResponse{NextPageToken: next}
	for _, v := range vs {
		resp.Vendors = append(resp.Vendors, vendorProto(v))
	}
	return resp, nil
}

func vendorProto(v Vendor) *registryv1.Vendor {
	return &registryv1.Vendor{VendorId: v.ID, Name: v.Name, OrganisationNumber: v.OrganisationNumber, CreateTime: timestamppb.New(v.CreateTime)}
}
