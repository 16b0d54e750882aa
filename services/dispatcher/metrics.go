package dispatcher

import "github.com/prometheus/client_golang/prometheus"

// metrics are the dispatcher's Prometheus metrics; none carries a payload or an fnr.
type metrics struct {
	deliveries *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	latency    prometheus.Histogram
	lag        *prometheus.GaugeVec
	disabled   *prometheus.CounterVec
	held       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hnsec_dispatcher_deliveries_total",
			Help: "Changes by outcome: delivered, parked (first attempt failed), dead_lettered.",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hnsec_dispatcher_attempts_total",
			Help: "Webhook calls by result: ok or the error class.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hnsec_dispatcher_delivery_latency_seconds",
			Help:    "End-to-end latency of delivered changes: from the change's commit in PVK to the receiver's 2xx.",
			Buckets: []float64{.002, .005, .01, .015, .02, .03, .05, .075, .1, .2, .5, 1, 5, 30, 300, 3600},
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hnsec_dispatcher_lag_changes",
			Help: "Changes of a subscription not delivered yet: waiting in the stream, in flight or parked.",
		}, []string{"subscription"}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hnsec_dispatcher_subscriptions_disabled_total",
			Help: "Subscriptions the dispatcher disabled, by reason: gone (410) or breaker.",
		}, []string{"reason"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hnsec_dispatcher_subscriptions_held",
			Help: "Webhook subscriptions held (nothing sent, changes kept) because their subscriber is cut off, by cause: blocked, deleted, not_granted, unchecked (the registry did not answer).",
		}, []string{"cause"}),
	}
	reg.MustRegister(m.deliveries, m.attempts, m.latency, m.lag, m.disabled, m.held)
	return m
}
