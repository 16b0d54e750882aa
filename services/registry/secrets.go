package registry

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/secrets"
)

// maxGrace bounds how long a revoked secret may keep working.
const maxGrace = 24 * time.Hour

// AddClientSecret implements ClientRegistryService.
func (s *Server) AddClientSecret(ctx context.Context, req *registryv1.AddClientSecretRequest) (*registryv1.AddClientSecretResponse, error) {
	_, c, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	var expire time.Time
	if req.GetExpireTime() != nil {
		if expire = req.GetExpireTime().AsTime(); !expire.After(now) {
			return nil, apierr.New(apierr.InvalidRequest, "expire_time must be in the future")
		}
	}
	secret := secrets.New()
	sec := Secret{ID: guid.New(), Hash: secrets.Hash(s.pepper, secret), CreateTime: now, ExpireTime: expire}
	if err := s.store.AddSecret(ctx, c.ID, sec); err != nil {
		return nil, err
	}
	s.log.Info("client secret added", "client_id", c.ID, "secret_id", sec.ID)
	s.clientChanged(c.ID)
	return &registryv1.AddClientSecretResponse{Secret: secretProto(sec), ClientSecret: secret}, nil
}

// ListClientSecrets implements ClientRegistryService.
func (s *Server) ListClientSecrets(ctx context.Context, req *registryv1.ListClientSecretsRequest) (*registryv1.ListClientSecretsResponse, error) {
	_, _, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	stored, err := s.store.ListSecrets(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListClientSecretsResponse{}
	for _, sec := range stored {
		resp.Secrets = append(resp.Secrets, secretProto(sec))
	}
	return resp, nil
}

// RevokeClientSecret implements ClientRegistryService.
func (s *Server) RevokeClientSecret(ctx context.Context, req *registryv1.RevokeClientSecretRequest) (*registryv1.RevokeClientSecretResponse, error) {
	_, _, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	grace := time.Duration(req.GetGraceSeconds()) * time.Second
	if grace < 0 || grace > maxGrace {
		return nil, apierr.New(apierr.InvalidRequest, "grace_seconds must be between 0 and %d", int(maxGrace.Seconds()))
	}
	if !guid.Valid(req.GetSecretId()) {
		return nil, apierr.New(apierr.InvalidRequest, "secret_id must be a GUID")
	}
	now := time.Now().UTC().Truncate(time.Second)
	end := now.Add(grace)
	sec, err := s.store.UpdateSecret(ctx, req.GetClientId(), req.GetSecretId(), func(sec Secret, all []Secret) (Secret, error) {
		if !live(sec, now) {
			return sec, apierr.New(apierr.FailedPrecondition, "the secret has already expired")
		}
		lasting := 0
		for _, o := range all {
			if o.ID != sec.ID && live(o, end) {
				lasting++
			}
		}
		if lasting == 0 {
			return sec, apierr.New(apierr.FailedPrecondition, "the client would have no working secret left; add one first, or block the client")
		}
		if sec.ExpireTime.IsZero() || end.Before(sec.ExpireTime) {
			sec.ExpireTime = end
		}
		return sec, nil
	})
	if err != nil {
		return nil, storeError(err, "secret")
	}
	s.log.Info("client secret revoked", "client_id", req.GetClientId(), "secret_id", sec.ID, "expire_time", sec.ExpireTime)
	s.clientChanged(req.GetClientId())
	return &registryv1.RevokeClientSecretResponse{Secret: secretProto(sec)}, nil
}

// live reports whether the secret works at t.
func live(sec Secret, t time.Time) bool { return sec.ExpireTime.IsZero() || t.Before(sec.ExpireTime) }

func secretProto(sec Secret) *registryv1.ClientSecret {
	out := &registryv1.ClientSecret{SecretId: sec.ID, CreateTime: timestamppb.New(sec.CreateTime)}
	if !sec.ExpireTime.IsZero() {
		out.ExpireTime = timestamppb.New(sec.ExpireTime)
	}
	return out
}
