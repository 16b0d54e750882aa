// Package obs sets up logging (log/slog, JSON) and metrics (Prometheus) the same way for every service.
// Log lines carry a "service" attribute; secrets, tokens and national identity numbers never go in them.
package obs

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hnsec/hnsec/pkg/version"
)

// NewLogger returns a JSON logger writing to w at the named level (debug, info, warn, error).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	return NewFormatLogger(w, level, "json")
}

// NewFormatLogger returns a logger writing to w at the named level in format json (one object a line) or
// text (slog's key=value lines, for people at a terminal). Durations are written as strings ("1.5s").
func NewFormatLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: durationStrings}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: json or text", format)
}

// durationStrings writes durations as Go duration strings rather than nanoseconds.
func durationStrings(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// NewRegistry returns a Prometheus registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	v := version.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hnsec_build_info",
		Help: "The running build: always 1, with the version, commit and Go version as labels."}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(v.Version, v.Commit, v.GoVersion).Set(1)
	r.MustRegister(build)
	return r
}
