// Package subscriber decides, at delivery time, whether a subscriber may still receive citizens' data: its
// client configuration exists, is not blocked, and holds an APPROVED grant of the scope the data travels
// under (PVK's replication scope for webhook and pull deliveries and for the SystemTokens sent with them).
//
// It asks the registry's internal LookupClient RPC, caches each client's answer for at most a TTL, and drops
// it at once when the registry announces a change of the client (natsbus.SubjectClientChanged: status,
// grants, deletion), and every answer when the NATS connection comes back (events may have been missed);
// watchers registered with OnChange hear of the change after the drop, so a check they make then sees the
// registry's new answer. A lookup that was under way when its client changed is used once but never
// cached. It owns no data, never reads registry tables, and logs nothing.
package subscriber

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/natsbus"
)

// Cause says why a subscriber may not receive; the zero Cause means it may.
type Cause string

// The causes, usable as metric labels.
const (
	// Allowed: the client configuration is active (or limited) and holds an approved grant of the scope.
	Allowed Cause = ""
	// Blocked: the client configuration is blocked.
	Blocked Cause = "blocked"
	// Deleted: there is no such client configuration (any more).
	Deleted Cause = "deleted"
	// NotGranted: the client configuration holds no approved grant of the scope (revoked, pending, rejected
	// or never requested).
	NotGranted Cause = "not_granted"
)

// Verdict is the answer for one subscriber and scope.
type Verdict struct {
	// Cause is Allowed, or why not.
	Cause Cause
	// Reason says why not in words fit for a subscription's status, an error message and a log: it names
	// the scope and the grant's status, never a secret or a national identity number.
	Reason string
}

// OK reports whether the subscriber may receive.
func (v Verdict) OK() bool { return v.Cause == Allowed }

// Checker answers whether subscribers may receive, from a cache in front of the registry.
type Checker struct {
	registry registryv1.ClientRegistryServiceClient
	ttl      time.Duration
	// epoch counts drops: a lookup stores its answer only when no drop happened while it ran.
	epoch atomic.Uint64

	mu       sync.RWMutex
	entries  map[string]entry
	flights  map[string]*flight
	watchers []func(clientID string)
}

// entry is what the registry said of one client: nil client for none.
type entry struct {
	client  *registryv1.Client
	expires time.Time
}

// flight is a lookup under way that concurrent checks of the same client share.
type flight struct {
	done   chan struct{}
	client *registryv1.Client
	err    error
}

// NewChecker returns a checker asking registry (an internal connection: LookupClient is internal) and
// trusting an answer for at most ttl; 0 asks the registry on every check. Run must be running for the
// registry's change events to reach it.
func NewChecker(registry registryv1.ClientRegistryServiceClient, ttl time.Duration) *Checker {
	return &Checker{registry: registry, ttl: ttl, entries: map[string]entry{}, flights: map[string]*flight{}}
}

// Check returns whether the client clientID may receive data of scope sc now. An error means the registry
// could not answer: the caller must not deliver (fail closed) but need not treat the subscriber as cut off.
func (c *Checker) Check(ctx context.Context, clientID, sc string) (Verdict, error) {
	now := time.Now()
	c.mu.RLock()
	e, ok := c.entries[clientID]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		client, err := c.lookup(ctx, clientID)
		if err != nil {
			return Verdict{}, err
		}
		e.client = client
	}
	return verdict(e.client, sc), nil
}

// verdict judges a client configuration (nil: none) for scope sc.
func verdict(client *registryv1.Client, sc string) Verdict {
	if client == nil {
		return Verdict{Cause: Deleted, Reason: "the subscriber's client configuration does not exist (deleted)"}
	}
	if client.GetStatus() == registryv1.ClientStatus_CLIENT_STATUS_BLOCKED {
		return Verdict{Cause: Blocked, Reason: "the subscriber's client configuration is blocked"}
	}
	grant := "it was never requested"
	for _, g := range client.GetGrants() {
		if g.GetScope() != sc {
			continue
		}
		if g.GetStatus() == registryv1.GrantStatus_GRANT_STATUS_APPROVED {
			return Verdict{}
		}
		grant = "the grant is " + grantStatusText(g.GetStatus())
	}
	return Verdict{Cause: NotGranted, Reason: fmt.Sprintf("the subscriber's client configuration holds no approved grant of scope %s (%s)", sc, grant)}
}

func grantStatusText(s registryv1.GrantStatus) string {
	switch s {
	case registryv1.GrantStatus_GRANT_STATUS_PENDING:
		return "pending"
	case registryv1.GrantStatus_GRANT_STATUS_REJECTED:
		return "rejected"
	case registryv1.GrantStatus_GRANT_STATUS_REVOKED:
		return "revoked"
	}
	return "not approved"
}

// lookup asks the registry, sharing a lookup under way for the same client, and caches the answer unless
// the client changed meanwhile.
func (c *Checker) lookup(ctx context.Context, clientID string) (*registryv1.Client, error) {
	c.mu.Lock()
	f, joined := c.flights[clientID]
	if !joined {
		f = &flight{done: make(chan struct{})}
		c.flights[clientID] = f
	}
	c.mu.Unlock()
	if joined {
		select {
		case <-f.done:
			return f.client, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	epoch := c.epoch.Load()
	now := time.Now()
	f.client, f.err = c.ask(ctx, clientID)
	c.mu.Lock()
	if c.flights[clientID] == f {
		delete(c.flights, clientID)
	}
	if f.err == nil && c.ttl > 0 && c.epoch.Load() == epoch {
		c.entries[clientID] = entry{client: f.client, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	close(f.done)
	return f.client, f.err
}

// lookupTimeout bounds one registry call: a stuck registry must not stall deliveries without an answer.
const lookupTimeout = 5 * time.Second

// ask calls LookupClient: a client that does not exist (or whose id is no GUID) is nil.
func (c *Checker) ask(ctx context.Context, clientID string) (*registryv1.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	resp, err := c.registry.LookupClient(ctx, &registryv1.LookupClientRequest{ClientId: clientID})
	switch status.Code(err) {
	case codes.OK:
		return resp.GetClient(), nil
	case codes.NotFound, codes.InvalidArgument:
		return nil, nil
	}
	return nil, err
}

// Flush forgets what the checker knows of every client, then tells the watchers with clientID "" (every
// client).
func (c *Checker) Flush() {
	c.mu.Lock()
	c.epoch.Add(1)
	clear(c.entries)
	clear(c.flights) // later checks start lookups of their own
	watchers := c.watchers
	c.mu.Unlock()
	for _, w := range watchers {
		w("")
	}
}

// Drop forgets what the checker knows of a client, then tells the watchers.
func (c *Checker) Drop(clientID string) {
	c.mu.Lock()
	c.epoch.Add(1)
	delete(c.entries, clientID)
	delete(c.flights, clientID) // later checks start a lookup of their own
	watchers := c.watchers
	c.mu.Unlock()
	for _, w := range watchers {
		w(clientID)
	}
}

// OnChange registers f to hear of each changed client after its answer was dropped, and of "" (every
// client) after a flush. f runs on the event's goroutine and must not block.
func (c *Checker) OnChange(f func(clientID string)) {
	c.mu.Lock()
	c.watchers = append(c.watchers, f)
	c.mu.Unlock()
}

// sweep forgets expired answers.
func (c *Checker) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, id)
		}
	}
}

// Run follows the registry's client change events, flushes when the NATS connection comes back, and sweeps
// expired answers until ctx ends.
func (c *Checker) Run(ctx context.Context, bus *natsbus.Bus) error {
	sub, err := bus.Conn.Subscribe(bus.Subject(natsbus.SubjectClientChanged), func(m *nats.Msg) { c.Drop(string(m.Data)) })
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	defer bus.OnReconnect(c.Flush)()
	loop.Every(ctx, max(c.ttl, time.Second), c.sweep)
	return nil
}
