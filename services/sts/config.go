package sts

import (
	"errors"
	"flag"
	"time"
)

// Config is the STS's configuration.
type Config struct {
	// Issuer is the iss of every token ("sikkerhet.helsenorge.no" like the real service, or a URL).
	Issuer string
	// Zone is the zone claim of access tokens.
	Zone string
	// TokenTTL is the access token lifetime (expires_in).
	TokenTTL time.Duration
	// CommitLinger is how long a group commit of token references may wait for more under load.
	CommitLinger time.Duration
}

// RegisterFlags registers the STS flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Issuer, "issuer", "sikkerhet.helsenorge.no", "token issuer (iss); a URL issuer also works for RFC 8414 clients")
	fs.StringVar(&c.Zone, "zone", "ekstern_internett", "zone claim of access tokens")
	fs.DurationVar(&c.TokenTTL, "token-ttl", 30*time.Minute, "access token lifetime (expires_in)")
	fs.DurationVar(&c.CommitLinger, "commit-linger", 0, "how long a group commit of token references may wait for more when requests are concurrent (0: never)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Issuer == "":
		return errors.New("--issuer must not be empty")
	case c.TokenTTL < time.Second || c.TokenTTL > 24*time.Hour || c.TokenTTL%time.Second != 0:
		return errors.New("--token-ttl must be whole seconds between 1s and 24h")
	}
	return nil
}
