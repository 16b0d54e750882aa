package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// An assertion is accepted until its exp plus the leeway, so its jti is remembered that long: a replay
// after exp but within the leeway is refused as a replay.
func TestAssertionReplayWithinLeeway(t *testing.T) {
	ctx := context.Background()
	st := &sqlStore{db: storetest.Open(t, store.Config{DataDir: t.TempDir()}, "registry", Migrations)}
	s := &Server{store: st}
	const clientID, aud = "6f1c2d3e-0000-4000-8000-000000000001", "sikkerhet.helsenorge.no"
	now := time.Now().UTC().Truncate(time.Second)
	require.NoError(t, st.CreateVendor(ctx, Vendor{ID: "v1", Name: "Vendor", OrganisationNumber: "910000000", CreateTime: now}))
	require.NoError(t, st.CreateOrganisation(ctx, Organisation{Number: "910000002", Name: "Org", CreateTime: now}))
	require.NoError(t, st.CreateClient(ctx, Client{ID: clientID, Name: "K", OrganisationNumber: "910000002",
		Status: registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, CreateTime: now}, Secret{ID: "s1", Hash: []byte("h"), CreateTime: now}, nil))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jwk, err := json.Marshal(jose.JSONWebKey{Key: key.Public(), Algorithm: "ES256", Use: "sig"})
	require.NoError(t, err)
	require.NoError(t, st.AddKey(ctx, clientID, Key{KID: "k1", Kty: "EC", Alg: "ES256", JWK: string(jwk), CreateTime: now}))

	sign := func(jti string, exp time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{Issuer: clientID, Subject: clientID,
			Audience: jwt.ClaimStrings{aud}, ID: jti, ExpiresAt: jwt.NewNumericDate(exp)})
		tok.Header["kid"] = "k1"
		signed, err := tok.SignedString(key)
		require.NoError(t, err)
		return signed
	}
	refused := func(assertion, want string) {
		t.Helper()
		_, err := s.authenticateAssertion(ctx, clientID, assertion, []string{aud})
		var e *apierr.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, want, e.Description)
	}

	// Used within the leeway after its exp, then replayed: both after exp, both within the leeway.
	late := sign("late", time.Now().Add(-2*time.Second))
	_, err = s.authenticateAssertion(ctx, clientID, late, []string{aud})
	require.NoError(t, err)
	refused(late, "client assertion was already used (jti replay)")

	// Used before its exp, replayed after it (exp is in whole seconds: wait for the next one).
	exp := time.Now().Truncate(time.Second).Add(time.Second)
	onTime := sign("on-time", exp)
	_, err = s.authenticateAssertion(ctx, clientID, onTime, []string{aud})
	require.NoError(t, err)
	time.Sleep(time.Until(exp.Add(1100 * time.Millisecond)))
	refused(onTime, "client assertion was already used (jti replay)")

	// Past the leeway it is refused as expired.
	refused(sign("old", time.Now().Add(-assertionLeeway-2*time.Second)), "client assertion has expired")
}
