package gateway

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
)

func TestDecodeForm(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    *stsv1.TokenRequest
		wantErr string
	}{
		{"all fields", "grant_type=client_credentials&client_id=a&client_secret=b%2Bc&scope=x+y",
			&stsv1.TokenRequest{GrantType: "client_credentials", ClientId: "a", ClientSecret: "b+c", Scope: "x y"}, ""},
		{"unknown parameters are ignored", "grant_type=x&foo=bar&&", &stsv1.TokenRequest{GrantType: "x"}, ""},
		{"empty body", "", &stsv1.TokenRequest{}, ""},
		{"placeholder values pass through", "client_id=<Client Id (GUID)>", &stsv1.TokenRequest{ClientId: "<Client Id (GUID)>"}, ""},
		{"repeated parameter", "grant_type=a&grant_type=b", nil, `parameter "grant_type" is repeated`},
		{"repeated unknown parameter", "x=1&x=2", nil, `parameter "x" is repeated`},
		{"bad percent-encoding", "client_id=%zz", nil, "form body has a malformed percent-encoding"},
		{"invalid UTF-8 escaped", "client_id=%ff%fe", nil, "form body is not valid UTF-8"},
		{"invalid UTF-8 raw", "client_id=\xff", nil, "form body is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got stsv1.TokenRequest
			err := DecodeForm([]byte(tt.body), &got)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want.String(), got.String())
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	tests := []struct {
		name    string
		body    string
		want    *stsv1.TokenRequest
		wantErr string
	}{
		{"fields", `{"grant_type":"client_credentials","client_id":"a","client_secret":"b"}`,
			&stsv1.TokenRequest{GrantType: "client_credentials", ClientId: "a", ClientSecret: "b"}, ""},
		{"unknown fields are ignored", `{"grant_type":"x","extra":{"deep":[1,2]}}`, &stsv1.TokenRequest{GrantType: "x"}, ""},
		{"seed example with a missing quote", `{"grant_type": "client_credentials", "client_id": "<Client Id (GUID)>", "client_secret": "<Client Secret>`,
			nil, "request body is not valid JSON for this endpoint: unexpected EOF"},
		{"wrong type", `{"grant_type": 1}`, nil, "request body is not valid JSON for this endpoint: (line 1:16): invalid value for string field grantType: 1"},
		{"duplicate key", `{"client_id":"a","client_id":"b"}`, nil, `request body is not valid JSON for this endpoint: (line 1:18): duplicate field "client_id"`},
		{"too deep", `{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, nil, "request body nests deeper than 32 levels"},
		{"brackets in strings do not count", `{"client_id":"` + strings.Repeat("[", 40) + `"}`, &stsv1.TokenRequest{ClientId: strings.Repeat("[", 40)}, ""},
		{"invalid UTF-8", "{\"client_id\":\"\xff\"}", nil, "request body is not valid UTF-8"},
		{"array instead of object", `[]`, nil, "request body is not valid JSON for this endpoint: syntax error (line 1:1): unexpected token ["},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got stsv1.TokenRequest
			err := DecodeJSON(opts, []byte(tt.body), &got)
			if tt.wantErr != "" {
				require.EqualError(t, err, strings.ReplaceAll(tt.wantErr, "\u00a0", " "))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want.String(), got.String())
		})
	}
}

func FuzzDecodeForm(f *testing.F) {
	for _, s := range []string{"grant_type=client_credentials&client_id=a&client_secret=b", "a=%zz", "x=1&x=2", "=&=", "%ff=\xff", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m stsv1.TokenRequest
		if err := DecodeForm(b, &m); err == nil {
			require.True(t, len(m.GetClientId()) <= len(b))
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"grant_type":"client_credentials"}`, `{"a":[[[[]]]]}`, `{"client_id":"\u0000"}`, `{`, `"\"`, ``} {
		f.Add([]byte(s))
	}
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m stsv1.TokenRequest
		_ = DecodeJSON(opts, b, &m)
	})
}
