package pvk

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/hnsec/hnsec/pkg/flagx"
	"github.com/hnsec/hnsec/pkg/ssrf"
)

// Config is PVK's configuration.
type Config struct {
	// StreamReplicas is the JetStream replica count of the change stream (3 in a 3-node cluster).
	StreamReplicas int
	// StreamMaxAge is how long changes stay in the stream for replay.
	StreamMaxAge time.Duration
	// DuplicateWindow is how long JetStream remembers message ids: a change published again within it
	// (after a crash between publishing and clearing the outbox) is stored once.
	DuplicateWindow time.Duration
	// OutboxRetention is how long an event stays in the outbox after the stream acknowledged it: 0 when
	// JetStream syncs each write, else longer than its sync interval, so that a change the stream loses
	// with the power is still there to publish again.
	OutboxRetention time.Duration
	// Relay runs the outbox relay in this process; replicas that only serve the API may leave it to one.
	Relay bool
	// AckWait is how long a pulled change waits for its acknowledgement before it is handed out again.
	AckWait time.Duration
	// WebhookAllowCIDRs admit webhook addresses the rules would refuse (loopback, private, ...).
	WebhookAllowCIDRs flagList
	// WebhookAllowHTTPHosts may be called over plain http.
	WebhookAllowHTTPHosts flagList
	// MaxSubscriptionsPerSubscriber bounds one subscriber's subscriptions, whatever their status.
	MaxSubscriptionsPerSubscriber int
	// AcceptSyntheticFnr accepts synthetic test persons (H-numbers and Tenor's numbers) as innbyggerFnr,
	// as PVK's test environments do; dev mode turns it on.
	AcceptSyntheticFnr bool
}

// flagList is a repeatable, comma-separable string flag.
type flagList = flagx.StringList

// RegisterFlags registers PVK's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.StreamReplicas, "pvk-stream-replicas", 1, "replicas of PVK's change stream (3 in a 3-node NATS cluster)")
	fs.DurationVar(&c.StreamMaxAge, "pvk-stream-max-age", 7*24*time.Hour, "how long changes stay in the stream for replay")
	fs.DurationVar(&c.DuplicateWindow, "pvk-duplicate-window", 10*time.Minute, "how long the stream de-duplicates a change published twice")
	fs.DurationVar(&c.AckWait, "pvk-ack-wait", 30*time.Second, "how long a pulled change waits for its acknowledgement before it comes back")
	fs.Var(&c.WebhookAllowCIDRs, "webhook-allow-cidr", "network whose addresses webhooks may use although private, loopback or link-local (repeatable)")
	fs.Var(&c.WebhookAllowHTTPHosts, "webhook-allow-http-host", "host webhooks may call over plain http (repeatable)")
	fs.IntVar(&c.MaxSubscriptionsPerSubscriber, "max-subscriptions-per-subscriber", 20, "subscriptions one subscriber (client configuration) may have, whatever their status")
	fs.BoolVar(&c.AcceptSyntheticFnr, "accept-synthetic-fnr", false, "accept synthetic test persons as innbyggerFnr: H-numbers (month + 40) and Tenor's (month + 80), as PVK's test environments do (dev mode turns it on unless given)")
	fs.BoolVar(&c.Relay, "pvk-relay", true, "relay PVK's outbox to the change stream in this process (changes wait in the outbox without one)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, err := ssrf.ParseCIDRs(c.WebhookAllowCIDRs); err != nil {
		return fmt.Errorf("--webhook-allow-cidr: %w", err)
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 || c.StreamMaxAge <= 0 || c.DuplicateWindow <= 0 || c.AckWait < time.Second {
		return errors.New("--pvk-stream-replicas must be 1 to 5, --pvk-stream-max-age and --pvk-duplicate-window positive, --pvk-ack-wait at least 1s")
	}
	if c.MaxSubscriptionsPerSubscriber < 1 {
		return errors.New("--max-subscriptions-per-subscriber must be at least 1")
	}
	return nil
}
