package sts

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hnsec/hnsec/pkg/apierr"
)

// metrics are the token endpoint's Prometheus metrics.
type metrics struct {
	tokens  *prometheus.CounterVec
	latency prometheus.Histogram
	batch   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hnsec_sts_token_requests_total",
			Help: "Token requests by outcome: issued, or the error kind.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hnsec_sts_token_duration_seconds",
			Help:    "Time to answer a token request in the STS, reference storage included.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hnsec_sts_reference_batch_size",
			Help:    "Token references written per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
	}
	reg.MustRegister(m.tokens, m.latency, m.batch)
	return m
}

func (m *metrics) observe(err error, d time.Duration) {
	outcome := "issued"
	if err != nil {
		outcome = apierr.FromGRPC(err).Kind.Name
	}
	m.tokens.WithLabelValues(outcome).Inc()
	m.latency.Observe(d.Seconds())
}
