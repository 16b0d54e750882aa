package registry

import (
	"context"
	"errors"
	"time"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/store"
)

// ensurePlatformAPIs creates the platform APIs (scope.PlatformAPIs) with their scopes on every start, dev
// or not, so that no API owner can ever register them. A platform scope that another API registered before
// they were reserved is moved to its platform API, and said so in the log and the audit trail; that API's
// owners lose the power to grant it.
func (s *Server) ensurePlatformAPIs(ctx context.Context) error {
	for _, p := range scope.PlatformAPIs {
		api, err := s.store.APIByAudience(ctx, p.Audience)
		if errors.Is(err, store.ErrNotFound) {
			err = s.ensure(s.store.CreateAPIResource(ctx, APIResource{ID: guid.New(), Audience: p.Audience, Name: p.Name,
				CreateTime: time.Now().UTC().Truncate(time.Second)}))
			if err == nil {
				api, err = s.store.APIByAudience(ctx, p.Audience)
			}
		}
		if err != nil {
			return err
		}
		for _, sc := range p.Scopes {
			owner, err := s.store.APIOfScope(ctx, sc)
			switch {
			case errors.Is(err, store.ErrNotFound):
				err = s.ensure(s.store.AddAPIScope(ctx, api.ID, sc))
			case err == nil && owner != api.ID:
				s.log.Warn("a platform scope was registered by another API: moved to the platform API", "scope", sc, "api_id", owner)
				err = s.store.MoveAPIScope(ctx, sc, api.ID)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// ownAPI loads an API that p administers: operators any; an API owner its own, unless it is a platform
// API (only operators administer those).
func (s *Server) ownAPI(ctx context.Context, p principal, apiID string) (APIResource, error) {
	if !p.owns(registryv1.Role_ROLE_API_OWNER, apiID) {
		return APIResource{}, denied("API")
	}
	api, err := s.store.GetAPIResource(ctx, apiID)
	if err != nil {
		return APIResource{}, lookupError(p, err, "API")
	}
	if !p.isOperator() && scope.IsPlatformAudience(api.Audience) {
		return APIResource{}, denied("API")
	}
	return api, nil
}
