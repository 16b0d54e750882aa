package registry

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
)

// CreateOrganisation implements ClientRegistryService.
func (s *Server) CreateOrganisation(ctx context.Context, req *registryv1.CreateOrganisationRequest) (*registryv1.CreateOrganisationResponse, error) {
	_, ctx, err := s.operator(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkOrgnr(req.GetOrganisationNumber()); err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "%v", err)
	}
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	if parent := req.GetParentOrganisationNumber(); parent != "" {
		if err := checkOrgnr(parent); err != nil {
			return nil, apierr.New(apierr.InvalidRequest, "parent_%v", err)
		}
		if parent == req.GetOrganisationNumber() {
			return nil, apierr.New(apierr.InvalidRequest, "an organisation cannot be its own parent")
		}
		if _, err := s.store.GetOrganisation(ctx, parent); err != nil {
			return nil, storeError(err, "parent organisation")
		}
	}
	o := Organisation{Number: req.GetOrganisationNumber(), Name: req.GetName(), Parent: req.GetParentOrganisationNumber(),
		CreateTime: time.Now().UTC().Truncate(time.Second)}
	if err := s.store.CreateOrganisation(ctx, o); err != nil {
		return nil, storeError(err, "organisation")
	}
	cred, err := s.adminCredential(ctx, o.Name, o.Number, registryv1.Role_ROLE_ORGANISATION, o.Number)
	if err != nil {
		return nil, err
	}
	s.log.Info("organisation created", "organisation_number", o.Number)
	s.changed("organisation", o.Number)
	return &registryv1.CreateOrganisationResponse{Organisation: organisationProto(o), AdminCredential: cred}, nil
}

// GetOrganisation implements ClientRegistryService.
func (s *Server) GetOrganisation(ctx context.Context, req *registryv1.GetOrganisationRequest) (*registryv1.GetOrganisationResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkOrgnr(req.GetOrganisationNumber()); err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "%v", err)
	}
	if !p.owns(registryv1.Role_ROLE_ORGANISATION, req.GetOrganisationNumber()) {
		return nil, denied("organisation")
	}
	o, err := s.store.GetOrganisation(ctx, req.GetOrganisationNumber())
	if err != nil {
		return nil, lookupError(p, err, "organisation")
	}
	return &registryv1.GetOrganisationResponse{Organisation: organisationProto(o)}, nil
}

// ListOrganisations implements ClientRegistryService.
func (s *Server) ListOrganisations(ctx context.Context, req *registryv1.ListOrganisationsRequest) (*registryv1.ListOrganisationsResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	only := ""
	switch p.role {
	case registryv1.Role_ROLE_OPERATOR:
	case registryv1.Role_ROLE_ORGANISATION:
		only = p.tenant
	default:
		return nil, denied("organisation list")
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	orgs, err := s.store.ListOrganisations(ctx, only, pg)
	if err != nil {
		return nil, err
	}
	orgs, next := nextPage(orgs, pg, func(o Organisation) string { return o.Number })
	resp := &registryv1.ListOrganisationsResponse{NextPageToken: next}
	for _, o := range orgs {
		resp.Organisations = append(resp.Organisations, organisationProto(o))
	}
	return resp, nil
}

func organisationProto(o Organisation) *registryv1.Organisation {
	return &registryv1.Organisation{OrganisationNumber: o.Number, Name: o.Name, ParentOrganisationNumber: o.Parent,
		CreateTime: timestamppb.New(o.CreateTime)}
}
