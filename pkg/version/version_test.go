package version

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestString(t *testing.T) {
	require.Equal(t, "hnsec v1.2.3, commit abc123, go1.26.8", Info{"v1.2.3", "abc123", "go1.26.8", false}.String())
	require.Equal(t, "hnsec devel, commit abc123 (modified), go1.26.8", Info{"devel", "abc123", "go1.26.8", true}.String())
	got := Get()
	require.NotEmpty(t, got.GoVersion)
	require.NotEqual(t, "unknown", got.GoVersion, "a test binary has build information")
}
