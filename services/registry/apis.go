package registry

import (
	"context"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/scope"
)

// CreateApiResource implements ClientRegistryService.
func (s *Server) CreateApiResource(ctx context.Context, req *registryv1.CreateApiResourceRequest) (*registryv1.CreateApiResourceResponse, error) {
	_, ctx, err := s.operator(ctx)
	if err != nil {
		return nil, err
	}
	if err := scope.Check(req.GetAudience()); err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "audience: %v", err)
	}
	if scope.Reserved(req.GetAudience()) {
		return nil, apierr.New(apierr.InvalidRequest, "audience: %s is reserved to the platform", req.GetAudience())
	}
	if err := checkName(req.GetName()); err != nil {
		return nil, err
	}
	if err := checkOrgnr(req.GetOrganisationNumber()); err != nil {
		return nil, apierr.New(apierr.InvalidRequest, "%v", err)
	}
	if len(req.GetScopes()) == 0 {
		return nil, apierr.New(apierr.InvalidRequest, "scopes: at least one scope is required")
	}
	for _, sc := range req.GetScopes() {
		if err := checkAPIScope(sc, req.GetAudience()); err != nil {
			return nil, err
		}
	}
	api := APIResource{ID: guid.New(), Audience: req.GetAudience(), Name: req.GetName(), Scopes: req.GetScopes(),
		CreateTime: time.Now().UTC().Truncate(time.Second)}
	if err := s.store.CreateAPIResource(ctx, api); err != nil {
		return nil, storeError(err, "API or scope")
	}
	cred, err := s.adminCredential(ctx, api.Name, req.GetOrganisationNumber(), registryv1.Role_ROLE_API_OWNER, api.ID)
	if err != nil {
		return nil, err
	}
	stored, err := s.store.GetAPIResource(ctx, api.ID)
	if err != nil {
		return nil, err
	}
	s.log.Info("API resource created", "api_id", api.ID, "audience", api.Audience)
	s.changed("api_resource", api.ID)
	return &registryv1.CreateApiResourceResponse{ApiResource: apiProto(stored), AdminCredential: cred}, nil
}

// ListApiResources implements ClientRegistryService: every admin may read the API catalogue.
func (s *Server) ListApiResources(ctx context.Context, req *registryv1.ListApiResourcesRequest) (*registryv1.ListApiResourcesResponse, error) {
	if _, _, err := s.admin(ctx); err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	apis, err := s.store.ListAPIResources(ctx, pg)
	if err != nil {
		return nil, err
	}
	apis, next := nextPage(apis, pg, func(a APIResource) string { return a.Audience })
	resp := &registryv1.ListApiResourcesResponse{NextPageToken: next}
	for _, a := range apis {
		resp.ApiResources = append(resp.ApiResources, apiProto(a))
	}
	return resp, nil
}

// AddApiScope implements ClientRegistryService.
func (s *Server) AddApiScope(ctx context.Context, req *registryv1.AddApiScopeRequest) (*registryv1.AddApiScopeResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	if !guid.Valid(req.GetApiId()) {
		return nil, apierr.New(apierr.InvalidRequest, "api_id must be a GUID")
	}
	api, err := s.ownAPI(ctx, p, req.GetApiId())
	if err != nil {
		return nil, err
	}
	if err := checkAPIScope(req.GetScope(), api.Audience); err != nil {
		return nil, err
	}
	if err := s.store.AddAPIScope(ctx, req.GetApiId(), req.GetScope()); err != nil {
		return nil, storeError(err, "scope")
	}
	if api, err = s.store.GetAPIResource(ctx, req.GetApiId()); err != nil {
		return nil, err
	}
	s.changed("api_resource", api.ID)
	return &registryv1.AddApiScopeResponse{ApiResource: apiProto(api)}, nil
}

// checkAPIScope checks that sc is a well-formed scope of the API with audience: "<audience>/<name>"
// (hnsec's own API: "hnsec:<name>"), and never a platform scope under another audience.
func checkAPIScope(sc, audience string) error {
	if err := scope.Check(sc); err != nil {
		return apierr.New(apierr.InvalidRequest, "scopes: %v", err)
	}
	if !scope.Belongs(sc, audience) || (scope.IsPlatform(sc) && !scope.IsPlatformAudience(audience)) {
		return apierr.New(apierr.InvalidRequest, "scopes: %s is not a scope of audience %s (a scope is <audience>/<name>)", sc, audience)
	}
	return nil
}

func apiProto(a APIResource) *registryv1.ApiResource {
	return &registryv1.ApiResource{ApiId: a.ID, Audience: a.Audience, Name: a.Name, Scopes: slices.Clone(a.Scopes),
		CreateTime: timestamppb.New(a.CreateTime), Platform: scope.IsPlatformAudience(a.Audience)}
}
