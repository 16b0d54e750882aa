package scope_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/scope"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"a", []string{"a"}, ""},
		{"a/b c a/b", []string{"a/b", "c"}, ""},
		{"a  b", nil, "scope has an empty entry (double or edge space)"},
		{" a", nil, "scope has an empty entry (double or edge space)"},
		{`a"b`, nil, `scope "a\"b" has a character not allowed in a scope`},
		{"a\\b", nil, `scope "a\\b" has a character not allowed in a scope`},
		{"æ", nil, `scope "æ" has a character not allowed in a scope`},
		{strings.Repeat("x", 201), nil, "scope must be 1 to 200 characters"},
		{manyScopes(51), nil, "more than 50 scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := scope.Parse(tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func manyScopes(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "s" + strings.Repeat("x", i)
	}
	return strings.Join(parts, " ")
}

func TestAudiences(t *testing.T) {
	require.Equal(t, []string{"nhn:helsenorge.eksternapi", "hnsec:registry.admin"}, scope.Audiences([]string{
		"nhn:helsenorge.eksternapi/personverninnstilling_read",
		"nhn:helsenorge.eksternapi/personverninnstilling_write",
		"hnsec:registry.admin",
	}))
}

func TestPlatformScopes(t *testing.T) {
	for _, tc := range []struct {
		audience string
		reserved bool
	}{
		{"hnsec", true},
		{"hnsec:registry.admin", true},
		{"hnsec.internal", true},
		{"nhn:helsenorge.eksternapi", true},
		{"nhn:helsenorge.eksternapi/x", true},
		{"nhn:test.api", false},
		{"hnsecure", false},
		{"nhn:helsenorge.eksternapi2", false},
		{scope.OIDCAudience, true},
		{"openid", true},
		{"oidcfodselsnummer", true},
		{"nhn:helsenorge.oidc2", false},
	} {
		require.Equal(t, tc.reserved, scope.Reserved(tc.audience), tc.audience)
	}
	for _, tc := range []struct {
		sc, audience      string
		belongs, platform bool
	}{
		{"nhn:test.api/read", "nhn:test.api", true, false},
		{"nhn:test.api/", "nhn:test.api", false, false},
		{"nhn:test.api", "nhn:test.api", false, false},
		{"nhn:test.apiX/read", "nhn:test.api", false, false},
		{"nhn:other.api/read", "nhn:test.api", false, false},
		{scope.PVKWrite, "nhn:test.api", false, true},
		{scope.PVKWrite, "nhn:helsenorge.eksternapi", true, true},
		{"nhn:helsenorge.eksternapi/ny", "nhn:helsenorge.eksternapi", true, true},
		{scope.RegistryAdmin, scope.PlatformAudience, true, true},
		{scope.Introspect, scope.PlatformAudience, true, true},
		{"hnsec/x", scope.PlatformAudience, false, true},
		{scope.Introspect, "nhn:test.api", false, true},
		// The citizen login scopes are bare names that belong only to the OIDC platform API, which holds
		// no other scope.
		{scope.OpenID, scope.OIDCAudience, true, true},
		{scope.OfflineAccess, scope.OIDCAudience, true, true},
		{scope.OIDCName, scope.OIDCAudience, true, true},
		{scope.OIDCBirthdate, scope.OIDCAudience, true, true},
		{scope.OIDCPid, scope.OIDCAudience, true, true},
		{scope.OpenID, "nhn:test.api", false, true},
		{scope.OIDCPid, scope.PlatformAudience, false, true},
		{scope.OIDCAudience + "/read", scope.OIDCAudience, false, true},
		{"profile", scope.OIDCAudience, false, false},
		{"openid2", "nhn:test.api", false, false},
		{"nhn:test.api/openid", "nhn:test.api", true, false},
	} {
		require.Equal(t, tc.belongs, scope.Belongs(tc.sc, tc.audience), "%s under %s", tc.sc, tc.audience)
		require.Equal(t, tc.platform, scope.IsPlatform(tc.sc), tc.sc)
	}
	// Every platform API's scopes belong to it, and are platform scopes.
	for _, api := range scope.PlatformAPIs {
		require.True(t, scope.Reserved(api.Audience))
		for _, sc := range api.Scopes {
			require.True(t, scope.Belongs(sc, api.Audience), sc)
			require.True(t, scope.IsPlatform(sc), sc)
		}
	}
}
