package clientauth

import (
	"context"
	"errors"
	"flag"
	"time"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/flagx"
	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/publicurl"
)

// Config tunes client authentication.
type Config struct {
	// CacheTTL bounds how long an authenticated client is trusted without asking the registry.
	CacheTTL time.Duration
	// FailureBurst failed authentications for one client_id from one address are allowed before throttling.
	FailureBurst int
	// FailureRefill is how often one more failed attempt is allowed once the burst is spent.
	FailureRefill time.Duration
	// Issuer and PublicURL say which audiences a client assertion may name: the issuer and the token
	// endpoint URL (both set from the STS flags; never from a request's headers).
	Issuer, PublicURL string
	// TrustedProxies are the networks of proxies whose X-Forwarded-For names the caller (--trusted-proxy).
	TrustedProxies flagx.PrefixList
	// Forwarder is the gateway's forwarder token (ForwarderToken) and IsInternal reports calls from other
	// services: both are believed about the caller's address too (set by the process).
	Forwarder  string
	IsInternal func(context.Context) bool
}

// RegisterFlags registers the client authentication flags with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.CacheTTL, "client-cache-ttl", time.Minute, "how long a cached client authentication is trusted (registry change events drop it sooner)")
	fs.IntVar(&c.FailureBurst, "auth-failure-burst", 10, "failed client authentications per client_id and address before 429")
	fs.DurationVar(&c.FailureRefill, "auth-failure-refill", 6*time.Second, "one more failed authentication is allowed per this interval once throttled")
	fs.Var(&c.TrustedProxies, "trusted-proxy", "network (CIDR) or address of a proxy in front of the REST gateway or the gRPC port whose X-Forwarded-For names the client, for the failed-authentication throttle; repeatable or comma-separated (default: none, the client is the connection's peer). Read where sts and introspection run; the gateway itself is believed by a token derived from the shared internal credential (name it here too when its processes have credentials of their own)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.FailureBurst < 1 || c.FailureRefill <= 0 || c.CacheTTL < 0 {
		return errors.New("--auth-failure-burst and --auth-failure-refill must be positive, --client-cache-ttl not negative")
	}
	return nil
}

// Authenticator authenticates the client of one request: credentials from the request, the throttle, and
// the cached registry check.
type Authenticator struct {
	cfg      Config
	registry registryv1.ClientRegistryServiceClient
	cache    *Cache
	throttle *Throttle
	proxies  Proxies
}

// New returns an Authenticator asking registry. Run must be running for change events to reach it.
func New(cfg Config, registry registryv1.ClientRegistryServiceClient) *Authenticator {
	return &Authenticator{cfg: cfg, registry: registry, cache: NewCache(registry, cfg.CacheTTL),
		throttle: NewThrottle(cfg.FailureBurst, cfg.FailureRefill),
		proxies:  Proxies{Trusted: cfg.TrustedProxies, Forwarder: cfg.Forwarder, IsInternal: cfg.IsInternal}}
}

// Authenticate returns the authenticated client and its credentials, taken from the authorization
// metadata or the request body.
func (a *Authenticator) Authenticate(ctx context.Context, body Body) (*registryv1.Client, Credentials, error) {
	creds, err := FromRequest(ctx, body)
	if err != nil {
		return nil, creds, err
	}
	now := time.Now()
	key := creds.ID + "|" + ThrottleAddress(a.proxies.CallerAddress(ctx))
	if wait := a.throttle.Wait(key, now); wait > 0 {
		e := apierr.New(apierr.TooManyRequests, "too many failed authentications for this client; retry later")
		e.RetryAfter = wait
		return nil, creds, e
	}
	client, err := a.check(ctx, creds)
	if err != nil {
		if apierr.FromGRPC(err).Kind == apierr.InvalidClient {
			a.throttle.Failed(key, now)
		}
		return nil, creds, err
	}
	return client, creds, nil
}

// check asks the registry: a secret through the cache, an assertion every time (its jti is single use).
func (a *Authenticator) check(ctx context.Context, creds Credentials) (*registryv1.Client, error) {
	if creds.Assertion == "" {
		return a.cache.Authenticate(ctx, creds.ID, creds.Secret)
	}
	base := publicurl.Base(a.cfg.Issuer, a.cfg.PublicURL)
	resp, err := a.registry.AuthenticateClient(ctx, &registryv1.AuthenticateClientRequest{ClientId: creds.ID, ClientAssertion: creds.Assertion,
		Audiences: []string{a.cfg.Issuer, base + "/sts/Token", base + "/sts/token"}})
	if apierr.Hidden(err) {
		return nil, err // the server's interceptor logs it and answers the documented error
	}
	if err != nil {
		return nil, apierr.FromGRPC(err)
	}
	return resp.GetClient(), nil
}

// Run follows registry change events and sweeps expired state every minute until ctx ends.
func (a *Authenticator) Run(ctx context.Context, bus *natsbus.Bus) error {
	stop, err := a.cache.Follow(bus)
	if err != nil {
		return err
	}
	defer stop()
	loop.Every(ctx, time.Minute, func(now time.Time) {
		a.cache.Sweep(now)
		a.throttle.Sweep(now)
	})
	return nil
}
