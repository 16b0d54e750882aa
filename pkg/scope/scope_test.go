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
