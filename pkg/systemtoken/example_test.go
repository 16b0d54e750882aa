package systemtoken_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/hnsec/hnsec/pkg/systemtoken"
)

// A receiver of PVK's replication calls checks the SystemToken in each call's Authorization header.
func ExampleVerifier() {
	// Stand-ins for the STS: its signing key and its JWK Set endpoint.
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	defer jwks.Close()
	now := time.Now()
	token, _ := systemtoken.Sign("RS256", "k1", key, systemtoken.Claims{
		Issuer: "sikkerhet.helsenorge.no", Audience: "my-system", Scope: "nhn:helsenorge.eksternapi/personverninnstilling_store",
		ClientID: "pvk", ClientName: "Personvernkomponenten", ID: "1", IssuedAt: now.Unix(), ExpiresAt: now.Add(5 * time.Minute).Unix(),
	})

	// The receiver: created once, used for every call.
	v, err := systemtoken.NewVerifier(context.Background(), systemtoken.Config{
		JWKSURL:        jwks.URL,
		Issuer:         "sikkerhet.helsenorge.no",
		Audience:       "my-system",
		RequiredScopes: []string{"nhn:helsenorge.eksternapi/personverninnstilling_store"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	claims, err := v.Verify(context.Background(), token)
	fmt.Println(claims.ClientName, err)
	// Output: Personvernkomponenten <nil>
}
