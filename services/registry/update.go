package registry

import (
	"context"
	"slices"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/fieldmask"
)

// maskPaths returns the paths of an update mask after checking each is one of allowed.
func maskPaths(mask *fieldmaskpb.FieldMask, allowed ...string) ([]string, error) {
	paths, err := fieldmask.Paths(mask, allowed...)
	if err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "%v", err)
	}
	return paths, nil
}

// ListClients implements ClientRegistryService.
func (s *Server) ListClients(ctx context.Context, req *registryv1.ListClientsRequest) (*registryv1.ListClientsResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	orgnr := req.GetOrganisationNumber()
	switch p.role {
	case registryv1.Role_ROLE_OPERATOR:
	case registryv1.Role_ROLE_ORGANISATION:
		if orgnr != "" && orgnr != p.tenant {
			return nil, denied("organisation")
		}
		orgnr = p.tenant
	default:
		return nil, denied("client list")
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	clients, err := s.store.ListClients(ctx, orgnr, pg)
	if err != nil {
		return nil, err
	}
	clients, next := nextPage(clients, pg, func(c Client) string { return c.Name + "\x00" + c.ID })
	resp := &registryv1.ListClientsResponse{NextPageToken: next}
	for _, c := range clients {
		// An organisation's list leaves out the admin credentials of other kinds of tenant that share its
		// number (a vendor's or an API owner's).
		if p.manages(c) {
			resp.Clients = append(resp.Clients, toProto(c))
		}
	}
	return resp, nil
}

// UpdateClient implements ClientRegistryService.
func (s *Server) UpdateClient(ctx context.Context, req *registryv1.UpdateClientRequest) (*registryv1.UpdateClientResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := maskPaths(req.GetUpdateMask(), "name"); err != nil {
		return nil, err
	}
	id := req.GetClient().GetClientId()
	if _, err := s.ownClient(ctx, p, id); err != nil {
		return nil, err
	}
	if err := checkName(req.GetClient().GetName()); err != nil {
		return nil, err
	}
	c, err := s.store.UpdateClient(ctx, id, func(c Client) (Client, error) {
		c.Name = req.GetClient().GetName()
		return c, nil
	})
	if err != nil {
		return nil, storeError(err, "client")
	}
	s.clientChanged(id)
	return &registryv1.UpdateClientResponse{Client: toProto(c)}, nil
}

// UpdateClientSystem implements ClientRegistryService.
func (s *Server) UpdateClientSystem(ctx context.Context, req *registryv1.UpdateClientSystemRequest) (*registryv1.UpdateClientSystemResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	paths, err := maskPaths(req.GetUpdateMask(), "name", "description")
	if err != nil {
		return nil, err
	}
	in := req.GetClientSystem()
	current, err := s.visibleSystem(ctx, p, in.GetClientSystemId())
	if err != nil {
		return nil, err
	}
	if !p.owns(registryv1.Role_ROLE_VENDOR, current.VendorID) {
		return nil, denied("client system")
	}
	if slices.Contains(paths, "name") {
		if err := checkName(in.GetName()); err != nil {
			return nil, err
		}
	}
	if err := checkDescription("description", in.GetDescription()); err != nil {
		return nil, err
	}
	cs, err := s.store.UpdateClientSystem(ctx, current.ID, func(cs ClientSystem) (ClientSystem, error) {
		for _, path := range paths {
			switch path {
			case "name":
				cs.Name = in.GetName()
			case "description":
				cs.Description = in.GetDescription()
			}
		}
		return cs, nil
	})
	if err != nil {
		return nil, storeError(err, "client system")
	}
	s.changed("client_system", cs.ID)
	return &registryv1.UpdateClientSystemResponse{ClientSystem: systemProto(cs)}, nil
}

// DeleteClient implements ClientRegistryService.
func (s *Server) DeleteClient(ctx context.Context, req *registryv1.DeleteClientRequest) (*registryv1.DeleteClientResponse, error) {
	p, c, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	if c.ID == p.clientID {
		return nil, apierr.New(apierr.FailedPrecondition, "a credential cannot delete itself")
	}
	if err := s.store.DeleteClient(ctx, c.ID); err != nil {
		return nil, storeError(err, "client")
	}
	s.log.Info("client deleted", "client_id", c.ID)
	s.clientChanged(c.ID)
	return &registryv1.DeleteClientResponse{}, nil
}
