package obs

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoggerFormats(t *testing.T) {
	for _, tc := range []struct {
		format, want string
	}{
		{"json", `"msg":"delivered","took":"1.5s"`},
		{"text", `msg=delivered took=1.5s`},
	} {
		var b bytes.Buffer
		log, err := NewFormatLogger(&b, "info", tc.format)
		require.NoError(t, err)
		log.Info("delivered", "took", 1500*time.Millisecond)
		log.Debug("not at info")
		require.Contains(t, b.String(), tc.want)
		require.NotContains(t, b.String(), "not at info")
	}
	_, err := NewFormatLogger(&bytes.Buffer{}, "info", "xml")
	require.EqualError(t, err, `log format "xml": json or text`)
	_, err = NewFormatLogger(&bytes.Buffer{}, "loud", "json")
	require.ErrorContains(t, err, `log level "loud"`)
}
