// Package obs sets up logging (log/slog, JSON) and metrics (Prometheus) the same way for every service.
// Log lines carry a "service" attribute; secrets, tokens and national identity numbers never go in them.
package obs

import (
	"github.com/hnsec/hnsec/pkg/version"

	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewLogger returns a JSON logger writing to w at the named level (debug, info, warn, error).
func NewLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
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
