package reftoken_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/reftoken"
)

var (
	key   = []byte("0123456789abcdef0123456789abcdef")
	other = []byte("fedcba9876543210fedcba9876543210")
	now   = time.Unix(1554101853, 0)
)

func claims(mod func(*reftoken.Claims)) reftoken.Claims {
	c := reftoken.Claims{
		ID: "e62f4a1a-abfb-478f-b509-136e38da5ac2", ClientID: "5d4f79a5-459b-429a-970a-7edc2432960c",
		ClientName: "Ekstern testklient", RefToken: "Va4HHwlcsYzi9Y7Y7lJyjL5WgYmuPhuYjCCnZymGFFo",
		RefTokenType: reftoken.RefTypeFull, Zone: "ekstern_internett",
		NotBefore: now.Unix(), ExpiresAt: now.Add(30 * time.Minute).Unix(),
		IssuedAt: now.Unix(), Issuer: "sikkerhet.helsenorge.no",
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func TestSignHasTheSeedShape(t *testing.T) {
	tok, err := reftoken.Sign(key, claims(nil))
	require.NoError(t, err)
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	var header map[string]any
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &header))
	require.Equal(t, map[string]any{"alg": "HS256", "typ": "JWT", "ver": float64(1), "typ_2": "ref"}, header)
	require.Equal(t, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsInZlciI6MSwidHlwXzIiOiJyZWYifQ", parts[0], "the seed's header, byte for byte")

	b, err = base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	// The seed's example token, claim for claim and in the same order.
	require.JSONEq(t, `{"jti":"e62f4a1a-abfb-478f-b509-136e38da5ac2","client_id":"5d4f79a5-459b-429a-970a-7edc2432960c",
		"client_name":"Ekstern testklient","ref_token":"Va4HHwlcsYzi9Y7Y7lJyjL5WgYmuPhuYjCCnZymGFFo","ref_token_type":"Full",
		"zone":"ekstern_internett","nbf":1554101853,"exp":1554103653,"iat":1554101853,"iss":"sikkerhet.helsenorge.no"}`, string(b))
	require.True(t, strings.HasPrefix(string(b), `{"jti":`))
}

func TestVerify(t *testing.T) {
	v := reftoken.Verifier{Issuer: "sikkerhet.helsenorge.no", Zone: "ekstern_internett", Leeway: 5 * time.Second}
	sign := func(k []byte, c reftoken.Claims) string {
		tok, err := reftoken.Sign(k, c)
		require.NoError(t, err)
		return tok
	}
	tests := []struct {
		name  string
		token string
		keys  [][]byte
		at    time.Time
		ok    bool
	}{
		{"valid", sign(key, claims(nil)), [][]byte{key}, now, true},
		{"valid with an older key in the ring", sign(key, claims(nil)), [][]byte{other, key}, now, true},
		{"wrong key", sign(other, claims(nil)), [][]byte{key}, now, false},
		{"other issuer", sign(key, claims(func(c *reftoken.Claims) { c.Issuer = "https://other" })), [][]byte{key}, now, false},
		{"other zone", sign(key, claims(func(c *reftoken.Claims) { c.Zone = "helsenett" })), [][]byte{key}, now, false},
		{"expired", sign(key, claims(nil)), [][]byte{key}, now.Add(31 * time.Minute), false},
		{"not yet valid", sign(key, claims(nil)), [][]byte{key}, now.Add(-time.Minute), false},
		{"no reference", sign(key, claims(func(c *reftoken.Claims) { c.RefToken = "" })), [][]byte{key}, now, false},
		{"garbage", "not.a.jwt", [][]byte{key}, now, false},
		{"alg none", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + strings.Split(sign(key, claims(nil)), ".")[1] + ".", [][]byte{key}, now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.token, tt.keys, tt.at)
			if tt.ok {
				require.NoError(t, err)
				require.Equal(t, claims(nil).RefToken, c.RefToken)
				return
			}
			require.ErrorIs(t, err, reftoken.ErrInvalid)
		})
	}
}
