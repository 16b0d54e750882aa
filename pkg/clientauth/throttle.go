package clientauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/hnsec/hnsec/pkg/flagx"
)

// Throttle slows down guessing of client secrets (RFC 6749 2.3.1): each client_id and caller address has a
// token bucket of failed authentications. Once it is empty, requests for that pair get 429 with
// Retry-After until the bucket refills one attempt. Successful authentications cost nothing, and the key
// includes the caller's address (Proxies.CallerAddress, which a client cannot choose by sending a header),
// so an attacker elsewhere cannot lock the real client out; from the same address the real client waits at
// most one refill interval.
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

// ForwarderMetadataKey carries the gateway's forwarder token (ForwarderToken): a call that presents it
// comes from a gateway, whose x-forwarded-for ends with the address of the gateway's own peer.
const ForwarderMetadataKey = "x-hnsec-forwarder"

// ForwarderToken is the token the gateway presents with the addresses it forwards: the HMAC-SHA256 of a
// fixed label under the internal credential, so every process sharing the credential knows it, while
// presenting it grants no internal RPC and reveals nothing of the credential.
func ForwarderToken(internalCredential string) string {
	m := hmac.New(sha256.New, []byte(internalCredential))
	m.Write([]byte("hnsec forwarder token v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// maxForwardedHops bounds how many x-forwarded-for entries CallerAddress reads, from the right.
const maxForwardedHops = 16

// Proxies says whose x-forwarded-for to believe: a caller's address is its gRPC peer's unless that peer
// forwards for others and is trusted to.
type Proxies struct {
	// Trusted are the networks of proxies whose x-forwarded-for is believed (--trusted-proxy).
	Trusted flagx.PrefixList
	// Forwarder is the gateway's forwarder token (ForwarderToken); empty trusts no call by its token.
	Forwarder string
	// IsInternal reports calls from other services, whose x-forwarded-for is believed; nil trusts none.
	IsInternal func(context.Context) bool
}

// CallerAddress is the client's address. A call from a trusted forwarder (a gateway presenting the
// forwarder token, another service, or a peer in Trusted) has it in x-forwarded-for: read from the right,
// the first entry that is not itself a trusted proxy (the gateway appends its own peer's address, so a
// client's own X-Forwarded-For is only believed when the client is a trusted proxy). Any other call is the
// gRPC peer's address, whatever x-forwarded-for it carries. The zero Addr means unknown (an in-process
// call with nothing forwarded).
func (p Proxies) CallerAddress(ctx context.Context) netip.Addr {
	var addr netip.Addr
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		if tcp, ok := pr.Addr.(*net.TCPAddr); ok {
			addr = tcp.AddrPort().Addr().WithZone("").Unmap()
		} else {
			addr = parseAddr(pr.Addr.String()) // the in-process channel's is no address
		}
	}
	if !p.forwards(ctx, addr) {
		return addr
	}
	xff := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for")
	hops := 0
	for i := len(xff) - 1; i >= 0; i-- {
		rest := xff[i]
		for rest != "" {
			entry := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			if hops++; hops > maxForwardedHops {
				return addr
			}
			next := parseAddr(strings.TrimSpace(entry))
			if !next.IsValid() {
				return addr // what a trusted hop did not write cleanly: keep the nearest address it vouched for
			}
			addr = next
			if !p.Trusted.Contains(addr) {
				return addr
			}
		}
	}
	return addr
}

// forwards reports whether the call comes from a forwarder whose x-forwarded-for is believed.
func (p Proxies) forwards(ctx context.Context, peerAddr netip.Addr) bool {
	if peerAddr.IsValid() && p.Trusted.Contains(peerAddr) {
		return true
	}
	if p.Forwarder != "" {
		for _, v := range metadata.ValueFromIncomingContext(ctx, ForwarderMetadataKey) {
			if subtle.ConstantTimeCompare([]byte(v), []byte(p.Forwarder)) == 1 {
				return true
			}
		}
	}
	return p.IsInternal != nil && p.IsInternal(ctx)
}

// parseAddr parses an address, with or without a port, as IPv4 when it is IPv4-mapped; else the zero Addr.
func parseAddr(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap()
}

// ThrottleAddress is the part of a caller's address the throttle keys on: an IPv4 address, or the /64
// network of an IPv6 address (one host or site commonly holds a whole /64, so its single addresses would
// give an attacker endless fresh buckets).
func ThrottleAddress(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is6():
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}
