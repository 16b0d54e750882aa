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
	// PublicURL is where clients reach the REST gateway, for the RFC 8414 metadata and client assertion
	// audiences (the process fills in its default; see package publicurl).
	PublicURL string
	// TokenTTL is the access token lifetime (expires_in).
	TokenTTL time.Duration
	// CommitLinger is how long a group commit of token references may wait for more under load.
	CommitLinger time.Duration
	// SystemTokenTTL is the lifetime of SystemTokens.
	SystemTokenTTL time.Duration
	// Keys says how signing keys rotate.
	Keys KeyConfig
}

// KeyConfig says how signing keys rotate.
type KeyConfig struct {
	// Rotation is how long a key signs before the next one takes over.
	Rotation time.Duration
	// Prepublish is how long a new key is known (and, for SystemTokens, published) before it signs.
	Prepublish time.Duration
	// SystemAlg is the SystemToken algorithm: RS256, ES256 or EdDSA.
	SystemAlg string
}

// maxJWKSAge bounds how long HTTP caches may keep the JWKS.
const maxJWKSAge = 5 * time.Minute

// refreshInterval is how often the key ring is reloaded and rotated: often enough that every replica
// knows a new key well before it signs.
func (c KeyConfig) refreshInterval() time.Duration {
	return min(max(c.Prepublish/4, 50*time.Millisecond), 30*time.Second)
}

// RegisterFlags registers the STS flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Issuer, "issuer", "sikkerhet.helsenorge.no", "token issuer (iss); a URL issuer also works for RFC 8414 clients")
	fs.StringVar(&c.Zone, "zone", "ekstern_internett", "zone claim of access tokens")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL clients reach the REST gateway at, for the RFC 8414 metadata and the audiences of private_key_jwt assertions (default: the issuer when it is a URL, else --http-addr's address, https with --http-tls-cert; set it in production)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", 30*time.Minute, "access token lifetime (expires_in)")
	fs.DurationVar(&c.SystemTokenTTL, "system-token-ttl", 5*time.Minute, "SystemToken lifetime")
	fs.DurationVar(&c.Keys.Rotation, "key-rotation", 30*24*time.Hour, "how long a signing key signs before the next one takes over")
	fs.DurationVar(&c.Keys.Prepublish, "key-prepublish", 24*time.Hour, "how long a new signing key is published before it signs")
	fs.StringVar(&c.Keys.SystemAlg, "system-token-alg", "RS256", "SystemToken signing algorithm: RS256, ES256 or EdDSA")
	fs.DurationVar(&c.CommitLinger, "commit-linger", time.Millisecond, "how long a group commit of token references may wait for more when requests are concurrent (0: never)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Keys.Prepublish <= 0 || c.Keys.Rotation <= c.Keys.Prepublish:
		return errors.New("--key-rotation must be longer than --key-prepublish, and both positive")
	case c.Keys.SystemAlg != "RS256" && c.Keys.SystemAlg != "ES256" && c.Keys.SystemAlg != "EdDSA":
		return errors.New("--system-token-alg must be RS256, ES256 or EdDSA")
	case c.SystemTokenTTL < time.Second || c.SystemTokenTTL > time.Hour:
		return errors.New("--system-token-ttl must be between 1s and 1h")
	case c.Issuer == "":
		return errors.New("--issuer must not be empty")
	case c.TokenTTL < time.Second || c.TokenTTL > 24*time.Hour || c.TokenTTL%time.Second != 0:
		return errors.New("--token-ttl must be whole seconds between 1s and 24h")
	}
	return nil
}
