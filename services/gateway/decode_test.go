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
		{"repeated unknown parameter", "x=1&x=2", nil, "a parameter is repeated"},
		{"repeated unknown parameter named by a secret", "s3cr3t-value&s3cr3t-value", nil, "a parameter is repeated"},
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
		{"wrong type", `{"grant_type": 1}`, nil, "request body is not valid JSON for this endpoint: field grant_type must be a string, not a number"},
		{"wrong type, JSON name", `{"grantType": true}`, nil, "request body is not valid JSON for this endpoint: field grantType must be a string, not a boolean"},
		{"secret sent as a number", `{"grant_type":"client_credentials","client_secret": 31415926535}`, nil,
			"request body is not valid JSON for this endpoint: field client_secret must be a string, not a number"},
		{"secret sent unquoted", `{"client_secret": s3cr3t-value}`, nil, "request body is not valid JSON for this endpoint: syntax error at byte 19"},
		{"secret in an array", `{"client_secret": ["s3cr3t-value"]}`, nil,
			"request body is not valid JSON for this endpoint: field client_secret must be a string, not an array"},
		{"duplicate key", `{"client_id":"a","client_id":"b"}`, nil, `request body is not valid JSON for this endpoint: field client_id is given more than once`},
		{"duplicate key by both names", `{"client_id":"a","clientId":"b"}`, nil, `request body is not valid JSON for this endpoint: field clientId is given more than once`},
		{"too deep", `{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, nil, "request body nests deeper than 32 levels"},
		{"brackets in strings do not count", `{"client_id":"` + strings.Repeat("[", 40) + `"}`, &stsv1.TokenRequest{ClientId: strings.Repeat("[", 40)}, ""},
		{"invalid UTF-8", "{\"client_id\":\"\xff\"}", nil, "request body is not valid UTF-8"},
		{"array instead of object", `[]`, nil, "request body is not valid JSON for this endpoint: the body must be a JSON object, not an array"},
		{"trailing garbage", `{"grant_type":"x"} s3cr3t`, nil, "request body is not valid JSON for this endpoint: syntax error at byte 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got stsv1.TokenRequest
			err := DecodeJSON(opts, []byte(tt.body), &got)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
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
