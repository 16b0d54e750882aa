package clientauth

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/apierr"
)

func TestParseBasic(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, header, wantID, wantSecret, wantErr string
	}{
		{"plain", "Basic " + b64("id:secret"), "id", "secret", ""},
		{"scheme is case-insensitive", "basic " + b64("id:secret"), "id", "secret", ""},
		{"form-urlencoded parts (RFC 6749 2.3.1)", "Basic " + b64("a%3Ab:s%2Bt+u"), "a:b", "s+t u", ""},
		{"colon in secret", "Basic " + b64("id:a:b"), "id", "a:b", ""},
		{"bearer", "Bearer abc", "", "", "unsupported authorization scheme; use Basic or client_secret in the body"},
		{"not base64", "Basic !!!", "", "", "malformed Basic authorization header"},
		{"no colon", "Basic " + b64("idsecret"), "", "", "malformed Basic authorization header"},
		{"bad escape", "Basic " + b64("id:%zz"), "", "", "malformed Basic authorization header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, secret, err := ParseBasic(tt.header)
			if tt.wantErr != "" {
				var e *apierr.Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, apierr.InvalidClient, e.Kind)
				require.Equal(t, tt.wantErr, e.Description)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantID, id)
			require.Equal(t, tt.wantSecret, secret)
		})
	}
}

func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{"Basic aWQ6c2VjcmV0", "Basic ", "Bearer x", "basic YTpi", "Basic %%%", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		id, secret, err := ParseBasic(h)
		if err != nil {
			require.Empty(t, id)
			require.Empty(t, secret)
		}
	})
}
