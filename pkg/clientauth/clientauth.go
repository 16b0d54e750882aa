// Package clientauth authenticates OAuth2 clients for the services that accept client credentials (the STS
// token and revocation endpoints, the introspection endpoint): it takes the credentials from a Basic
// authorization header or the request body, checks them through the registry's gRPC AuthenticateClient
// (with a cache the registry's NATS change events invalidate), and throttles repeated failures. It never
// reads registry tables.
package clientauth

import (
	"context"
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/metadata"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/secrets"
)

// AssertionType is the client_assertion_type of private_key_jwt (RFC 7523 2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionAlgorithms are the signature algorithms a private_key_jwt client assertion may use (the
// registry checks them; the server metadata lists them). RS384 and RS512 are what NORPREG's PVK broker
// signs with for 3072- and 4096-bit keys.
var AssertionAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS512", "ES256"}

// AssertionAlgorithmsText lists AssertionAlgorithms for messages: "RS256, ..., PS512 or ES256".
func AssertionAlgorithmsText() string {
	n := len(AssertionAlgorithms)
	return strings.Join(AssertionAlgorithms[:n-1], ", ") + " or " + AssertionAlgorithms[n-1]
}

// Body holds the client authentication parameters of a request body.
type Body struct {
	ClientID, ClientSecret, AssertionType, Assertion string
}

// Credentials are the client credentials of one request.
type Credentials struct {
	ID     string
	Secret string
	// Assertion is a private_key_jwt client assertion (instead of Secret).
	Assertion string
	// Basic is true when they came in an Authorization: Basic header (client_secret_basic).
	Basic bool
}

// FromRequest takes the client credentials from the Basic authorization metadata or the request body,
// refusing more than one method at once (RFC 6749 2.3).
func FromRequest(ctx context.Context, body Body) (Credentials, error) {
	auth := metadata.ValueFromIncomingContext(ctx, "authorization")
	bodyID, bodySecret := body.ClientID, body.ClientSecret
	if body.Assertion != "" || body.AssertionType != "" {
		if len(auth) > 0 || bodySecret != "" {
			return Credentials{}, apierr.New(apierr.InvalidRequest, "client authenticated by more than one method (client_assertion and a secret)")
		}
		return fromAssertion(body)
	}
	var c Credentials
	switch {
	case len(auth) > 1:
		return c, apierr.New(apierr.InvalidRequest, "more than one Authorization header")
	case len(auth) == 1:
		id, secret, err := ParseBasic(auth[0])
		if err != nil {
			return c, err
		}
		if bodySecret != "" {
			return c, apierr.New(apierr.InvalidRequest, "client authenticated by more than one method (Basic header and client_secret)")
		}
		if bodyID != "" && bodyID != id {
			return c, apierr.New(apierr.InvalidRequest, "client_id in the body differs from the Basic header")
		}
		c = Credentials{ID: id, Secret: secret, Basic: true}
	default:
		c = Credentials{ID: bodyID, Secret: bodySecret}
	}
	switch {
	case c.ID == "":
		return c, apierr.New(apierr.InvalidClient, "client authentication is missing (client_id and client_secret, or a Basic header)")
	case !guid.Valid(c.ID):
		return c, apierr.New(apierr.InvalidRequest, "client_id must be a GUID")
	case c.Secret == "":
		return c, apierr.New(apierr.InvalidClient, "client_secret is missing")
	}
	return c, nil
}

// fromAssertion takes the client_id from a private_key_jwt assertion's iss (verified later, with the
// client's keys, by the registry).
func fromAssertion(body Body) (Credentials, error) {
	switch {
	case body.AssertionType != AssertionType:
		return Credentials{}, apierr.New(apierr.InvalidRequest, "client_assertion_type must be %s", AssertionType)
	case body.Assertion == "":
		return Credentials{}, apierr.New(apierr.InvalidRequest, "client_assertion is missing")
	}
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(body.Assertion, &claims); err != nil {
		return Credentials{}, apierr.New(apierr.InvalidClient, "client assertion is not a JWT")
	}
	switch {
	case !guid.Valid(claims.Issuer):
		return Credentials{}, apierr.New(apierr.InvalidClient, "client assertion iss must be the client_id (a GUID)")
	case body.ClientID != "" && body.ClientID != claims.Issuer:
		return Credentials{}, apierr.New(apierr.InvalidRequest, "client_id differs from the client assertion's iss")
	}
	return Credentials{ID: claims.Issuer, Assertion: body.Assertion}, nil
}

// ParseBasic decodes an RFC 6749 2.3.1 Basic authorization value: base64 of the form-urlencoded client_id,
// a colon and the form-urlencoded client_secret.
func ParseBasic(v string) (id, secret string, err error) {
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", apierr.New(apierr.InvalidClient, "unsupported authorization scheme; use Basic or client_secret in the body")
	}
	raw, decErr := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if decErr != nil {
		return "", "", apierr.New(apierr.InvalidClient, "malformed Basic authorization header")
	}
	encID, encSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", apierr.New(apierr.InvalidClient, "malformed Basic authorization header")
	}
	if id, err = url.QueryUnescape(encID); err == nil {
		secret, err = url.QueryUnescape(encSecret)
	}
	if err != nil {
		return "", "", apierr.New(apierr.InvalidClient, "malformed Basic authorization header")
	}
	return id, secret, nil
}

// Cache remembers, per client, the digest of the last secret the registry accepted, so that repeat
// requests need no registry call. Entries expire after ttl, are dropped at once on a registry change
// event for the client, and all of them when the NATS connection comes back (events may have been
// missed). A lookup under way when its client changed answers its caller but is not cached.
type Cache struct {
	registry registryv1.ClientRegistryServiceClient
	ttl      time.Duration
	mu       sync.RWMutex
	entries  map[string]cacheEntry
	// generation counts drops and flushes (under mu): a lookup stores its answer only when none happened
	// while it ran.
	generation uint64
}

type cacheEntry struct {
	digest  []byte
	client  *registryv1.Client
	expires time.Time
}

// NewCache returns a cache in front of the registry trusting an authentication for at most ttl.
func NewCache(registry registryv1.ClientRegistryServiceClient, ttl time.Duration) *Cache {
	return &Cache{registry: registry, ttl: ttl, entries: map[string]cacheEntry{}}
}

// Authenticate returns the client when the secret is right, from the cache or the registry.
func (c *Cache) Authenticate(ctx context.Context, id, secret string) (*registryv1.Client, error) {
	digest := secrets.Digest(secret)
	now := time.Now()
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) && secrets.Equal(e.digest, digest) {
		return e.client, nil
	}
	c.mu.RLock()
	generation := c.generation
	c.mu.RUnlock()
	resp, err := c.registry.AuthenticateClient(ctx, &registryv1.AuthenticateClientRequest{ClientId: id, ClientSecret: secret})
	if apierr.Hidden(err) {
		return nil, err // the server's interceptor logs it and answers the documented error
	}
	if err != nil {
		return nil, apierr.FromGRPC(err)
	}
	expires := now.Add(c.ttl)
	if t := resp.GetSecretExpireTime(); t != nil && t.AsTime().Before(expires) {
		expires = t.AsTime() // never trust a secret past its own expiry
	}
	c.mu.Lock()
	if c.generation == generation { // else the client changed (or events were missed) while the registry answered
		c.entries[id] = cacheEntry{digest: digest, client: resp.GetClient(), expires: expires}
	}
	c.mu.Unlock()
	return resp.GetClient(), nil
}

// Drop forgets the client, and keeps lookups under way from caching their answers.
func (c *Cache) Drop(id string) {
	c.mu.Lock()
	c.generation++
	delete(c.entries, id)
	c.mu.Unlock()
}

// Flush forgets every client, and keeps lookups under way from caching their answers.
func (c *Cache) Flush() {
	c.mu.Lock()
	c.generation++
	clear(c.entries)
	c.mu.Unlock()
}

// Sweep removes expired entries.
func (c *Cache) Sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, id)
		}
	}
}

// Follow drops cached clients when the registry announces a change, and every one when the NATS
// connection comes back, until the returned stop is called.
func (c *Cache) Follow(bus *natsbus.Bus) (stop func(), err error) {
	sub, err := bus.Conn.Subscribe(bus.Subject(natsbus.SubjectClientChanged), func(m *nats.Msg) { c.Drop(string(m.Data)) })
	if err != nil {
		return nil, err
	}
	remove := bus.OnReconnect(c.Flush)
	return func() {
		remove()
		_ = sub.Unsubscribe()
	}, nil
}
