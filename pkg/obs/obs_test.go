package obs

import (
	"bytes"
	"strings"
	"sync"
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

// Buffered lines reach the writer within the interval, whole and in order, and on Close.
func TestBufferedWriter(t *testing.T) {
	var out syncBuffer
	b := NewBufferedWriter(&out, 1<<10, 10*time.Millisecond)
	log, err := NewFormatLogger(b, "info", "json")
	require.NoError(t, err)
	log.Info("first")
	log.Info("second")
	require.Eventually(t, func() bool { return strings.Count(out.String(), "\n") == 2 }, time.Second, 5*time.Millisecond)
	require.Less(t, strings.Index(out.String(), "first"), strings.Index(out.String(), "second"))
	log.Info("third")
	require.NoError(t, b.Close())
	require.Contains(t, out.String(), `"msg":"third"`)
}

// syncBuffer is a bytes.Buffer safe for the flusher and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
