package pvk

import (
	"errors"
	"flag"
	"time"
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
	// Relay runs the outbox relay in this process; replicas that only serve the API may leave it to one.
	Relay bool
}

// RegisterFlags registers PVK's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.StreamReplicas, "pvk-stream-replicas", 1, "replicas of PVK's change stream (3 in a 3-node NATS cluster)")
	fs.DurationVar(&c.StreamMaxAge, "pvk-stream-max-age", 7*24*time.Hour, "how long changes stay in the stream for replay")
	fs.DurationVar(&c.DuplicateWindow, "pvk-duplicate-window", 10*time.Minute, "how long the stream de-duplicates a change published twice")
	fs.BoolVar(&c.Relay, "pvk-relay", true, "relay PVK's outbox to the change stream in this process (changes wait in the outbox without one)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 || c.StreamMaxAge <= 0 || c.DuplicateWindow <= 0 {
		return errors.New("--pvk-stream-replicas must be 1 to 5, --pvk-stream-max-age and --pvk-duplicate-window positive")
	}
	return nil
}
