package clientauth

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Throttle slows down guessing of client secrets (RFC 6749 2.3.1): each client_id and caller address has a
// token bucket of failed authentications. Once it is empty, requests for that pair get 429 with
// Retry-After until the bucket refills one attempt. Successful authentications cost nothing, and the key
// includes the caller's address, so an attacker elsewhere cannot lock the real client out; from the same
// address the real client waits at most one refill interval.
type Throttle struct {
	burst int
	every time.Duration
	mu    sync.Mutex
	lims  map[string]*rate.Limiter
}

// maxThrottled bounds the number of tracked pairs; full buckets are swept first.
const maxThrottled = 100_000

// NewThrottle allows burst failures per key, then one more per every.
func NewThrottle(burst int, every time.Duration) *Throttle {
	return &Throttle{burst: burst, every: every, lims: map[string]*rate.Limiter{}}
}

// Wait returns how long key must wait before its next attempt; 0 when it may go ahead.
func (t *Throttle) Wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	lim := t.lims[key]
	t.mu.Unlock()
	if lim == nil {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(t.every))
}

// Failed records a failed authentication for key.
func (t *Throttle) Failed(key string, now time.Time) {
	t.mu.Lock()
	lim := t.lims[key]
	if lim == nil {
		if len(t.lims) >= maxThrottled {
			t.sweepLocked(now)
		}
		lim = rate.NewLimiter(rate.Every(t.every), t.burst)
		t.lims[key] = lim
	}
	t.mu.Unlock()
	lim.AllowN(now, 1)
}

// Sweep forgets pairs whose bucket is full again.
func (t *Throttle) Sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
}

func (t *Throttle) sweepLocked(now time.Time) {
	for k, lim := range t.lims {
		if lim.TokensAt(now) >= float64(t.burst) {
			delete(t.lims, k)
		}
	}
}

// CallerAddress is the client's IP: the last X-Forwarded-For entry (the one the gateway appended from the
// connection's address) or the gRPC peer's address.
func CallerAddress(ctx context.Context) string {
	if xff := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for"); len(xff) > 0 {
		last := xff[len(xff)-1]
		return strings.TrimSpace(last[strings.LastIndexByte(last, ',')+1:])
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			return host
		}
		return p.Addr.String()
	}
	return ""
}
