package registry

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/clientauth"
)

// maxJWKBytes bounds a JWK's JSON.
const maxJWKBytes = 8 << 10

// AddClientKey implements ClientRegistryService.
func (s *Server) AddClientKey(ctx context.Context, req *registryv1.AddClientKeyRequest) (*registryv1.AddClientKeyResponse, error) {
	_, c, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	k, err := parsePublicJWK(req.GetJwk())
	if err != nil {
		return nil, err
	}
	k.CreateTime = time.Now().UTC().Truncate(time.Second)
	if err := s.store.AddKey(ctx, c.ID, k); err != nil {
		return nil, storeError(err, "key")
	}
	s.log.Info("client key added", "client_id", c.ID, "kid", k.KID)
	s.clientChanged(c.ID)
	return &registryv1.AddClientKeyResponse{Key: keyProto(k)}, nil
}

// parsePublicJWK checks a client's JWK: public only, RSA of at least 2048 bits or EC P-256, and an
// algorithm (when named) a client assertion may use.
func parsePublicJWK(text string) (Key, error) {
	if len(text) == 0 || len(text) > maxJWKBytes {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk must be 1 to %d bytes of JSON", maxJWKBytes)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(text), &raw); err != nil {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk is not JSON")
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := raw[private]; ok {
			return Key{}, apierr.New(apierr.InvalidRequest, "jwk contains private key material (%q); register the public key only", private)
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(text)); err != nil {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk is not a valid JWK: %v", err)
	}
	if !jwk.IsPublic() {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk contains private key material; register the public key only")
	}
	k := Key{Alg: jwk.Algorithm}
	switch pub := jwk.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return Key{}, apierr.New(apierr.InvalidRequest, "jwk: RSA keys must have at least 2048 bits, not %d", pub.N.BitLen())
		}
		k.Kty = "RSA"
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return Key{}, apierr.New(apierr.InvalidRequest, "jwk: curve %s is not supported; use P-256", pub.Curve.Params().Name)
		}
		k.Kty = "EC"
	default:
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk: key type %T is not supported; use RSA or EC P-256", jwk.Key)
	}
	if k.Alg != "" && !slices.Contains(clientauth.AssertionAlgorithms, k.Alg) {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk: algorithm %s is not supported; use one of %s", k.Alg,
			strings.Join(clientauth.AssertionAlgorithms, ", "))
	}
	if k.Kty == "EC" && k.Alg != "" && k.Alg != "ES256" {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk: an EC P-256 key signs ES256, not %s", k.Alg)
	}
	if k.Kty == "RSA" && k.Alg == "ES256" {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk: an RSA key cannot sign ES256")
	}
	k.KID = jwk.KeyID
	if k.KID == "" {
		t, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return Key{}, apierr.New(apierr.InvalidRequest, "jwk: %v", err)
		}
		k.KID = base64.RawURLEncoding.EncodeToString(t)
		jwk.KeyID = k.KID
	}
	if len(k.KID) > 200 {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk: kid must be at most 200 characters")
	}
	public, err := jwk.Public().MarshalJSON()
	if err != nil {
		return Key{}, apierr.New(apierr.InvalidRequest, "jwk: %v", err)
	}
	k.JWK = string(public)
	return k, nil
}

// ListClientKeys implements ClientRegistryService.
func (s *Server) ListClientKeys(ctx context.Context, req *registryv1.ListClientKeysRequest) (*registryv1.ListClientKeysResponse, error) {
	_, _, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	keys, err := s.store.ListKeys(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	resp := &registryv1.ListClientKeysResponse{}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, keyProto(k))
	}
	return resp, nil
}

// RemoveClientKey implements ClientRegistryService.
func (s *Server) RemoveClientKey(ctx context.Context, req *registryv1.RemoveClientKeyRequest) (*registryv1.RemoveClientKeyResponse, error) {
	_, _, ctx, err := s.managedClient(ctx, req.GetClientId())
	if err != nil {
		return nil, err
	}
	if err := s.store.RemoveKey(ctx, req.GetClientId(), req.GetKid()); err != nil {
		return nil, storeError(err, "key")
	}
	s.clientChanged(req.GetClientId())
	return &registryv1.RemoveClientKeyResponse{}, nil
}

func keyProto(k Key) *registryv1.ClientKey {
	return &registryv1.ClientKey{Kid: k.KID, Kty: k.Kty, Alg: k.Alg, Jwk: k.JWK, CreateTime: timestamppb.New(k.CreateTime)}
}
