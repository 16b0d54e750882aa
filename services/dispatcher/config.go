package dispatcher

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Config is the dispatcher's configuration.
type Config struct {
	// Schedule is the wait before each retry of a change the receiver did not take; when it is exhausted
	// the change becomes a dead letter. Each wait varies by ±20 % (jitter).
	Schedule Schedule
	// Timeout bounds one attempt; success is a 2xx within it.
	Timeout time.Duration
	// Concurrency bounds the attempts in flight for one subscription.
	Concurrency int
	// BreakerFailures consecutive failures spanning at least BreakerPeriod disable a subscription.
	BreakerFailures int
	BreakerPeriod   time.Duration
	// RetryTick is how often parked changes are looked at.
	RetryTick time.Duration
	// LogRetention is how long the delivery log keeps attempts.
	LogRetention time.Duration
	// DeadLetterRetention is how long dead letters (from their death) and parked changes still waiting
	// (from their change) are kept: they hold the citizen's fnr (see retention.go).
	DeadLetterRetention time.Duration
	// LeaseTTL is how long a replica's lease on a subscription lasts unless renewed: a dead replica's
	// subscriptions move to the others after it.
	LeaseTTL time.Duration
	// Replicas is the JetStream replica count of the lease bucket (PVK's stream replicas).
	Replicas int
	// AllowCIDRs and AllowHTTPHosts are PVK's webhook address rules (--webhook-allow-cidr,
	// --webhook-allow-http-host), checked again when dialling.
	AllowCIDRs, AllowHTTPHosts []string
}

// Schedule is a list of retry waits; its flag form is comma-separated durations.
type Schedule []time.Duration

// DefaultSchedule is 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h.
var DefaultSchedule = Schedule{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour}

// String implements flag.Value.
func (s *Schedule) String() string {
	parts := make([]string, len(*s))
	for i, d := range *s {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (s *Schedule) Set(v string) error {
	var out Schedule
	for _, p := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d <= 0 {
			return fmt.Errorf("want comma-separated positive durations, got %q", p)
		}
		out = append(out, d)
	}
	*s = out
	return nil
}

// RegisterFlags registers the dispatcher's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Schedule = append(Schedule(nil), DefaultSchedule...)
	fs.Var(&c.Schedule, "webhook-retry-schedule", "waits before each webhook retry, comma-separated; then the change is dead-lettered")
	fs.DurationVar(&c.Timeout, "webhook-timeout", 10*time.Second, "how long a webhook receiver has to answer 2xx")
	fs.IntVar(&c.Concurrency, "webhook-concurrency", 32, "webhook calls in flight per subscription (each citizen's changes go one at a time)")
	fs.IntVar(&c.BreakerFailures, "webhook-breaker-failures", 50, "consecutive failed calls that, spanning --webhook-breaker-period, disable a subscription")
	fs.DurationVar(&c.BreakerPeriod, "webhook-breaker-period", 10*time.Minute, "see --webhook-breaker-failures")
	fs.DurationVar(&c.RetryTick, "webhook-retry-tick", time.Second, "how often parked webhook changes are looked at")
	fs.DurationVar(&c.LeaseTTL, "dispatcher-lease-ttl", 15*time.Second, "how long a dispatcher replica's lease on a subscription lasts unless renewed (a dead replica's work moves after it)")
	fs.DurationVar(&c.LogRetention, "webhook-log-retention", 7*24*time.Hour, "how long the delivery log keeps attempts")
	fs.DurationVar(&c.DeadLetterRetention, "dead-letter-retention", 14*24*time.Hour, "how long dead letters (after they died) and parked webhook changes (after the change) are kept before they are deleted; they hold the citizen's fnr")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if len(c.Schedule) == 0 || c.Timeout <= 0 || c.Concurrency < 1 || c.BreakerFailures < 1 || c.BreakerPeriod < 0 || c.RetryTick <= 0 ||
		c.LogRetention <= 0 || c.LeaseTTL < time.Second {
		return errors.New("--webhook-retry-schedule needs a wait; --webhook-timeout, --webhook-retry-tick and --webhook-log-retention must be positive, --webhook-concurrency and --webhook-breaker-failures at least 1, --dispatcher-lease-ttl at least 1s")
	}
	if c.DeadLetterRetention <= 0 {
		return errors.New("--dead-letter-retention must be positive")
	}
	return nil
}
