package clientauth

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/hnsec/hnsec/pkg/flagx"
)

// inprocAddr stands for the in-process channel's peer address.
type inprocAddr struct{}

func (inprocAddr) Network() string { return "inproc" }
func (inprocAddr) String() string  { return "inproc" }

func TestCallerAddress(t *testing.T) {
	var trusted flagx.PrefixList
	require.NoError(t, trusted.Set("10.0.0.0/8,2001:db8:aaaa::/48"))
	token := ForwarderToken("an internal credential of at least 32 characters")
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	tests := []struct {
		name     string
		peer     net.Addr
		md       metadata.MD
		internal bool
		want     string
	}{
		{name: "the peer", peer: tcp("192.0.2.7:5000"), want: "192.0.2.7"},
		{name: "an untrusted peer's x-forwarded-for is ignored", peer: tcp("192.0.2.7:5000"),
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1"}}, want: "192.0.2.7"},
		{name: "a wrong forwarder token is ignored", peer: tcp("192.0.2.7:5000"),
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1"}, ForwarderMetadataKey: {"guess"}}, want: "192.0.2.7"},
		{name: "a trusted proxy's x-forwarded-for is believed", peer: tcp("10.1.2.3:5000"),
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1"}}, want: "203.0.113.1"},
		{name: "the first untrusted entry from the right", peer: tcp("10.1.2.3:5000"),
			md: metadata.MD{"x-forwarded-for": {"198.51.100.9, 203.0.113.1, 10.9.9.9"}}, want: "203.0.113.1"},
		{name: "the gateway's token, its peer last", peer: inprocAddr{},
			md: metadata.MD{"x-forwarded-for": {"198.51.100.9, 203.0.113.1"}, ForwarderMetadataKey: {token}}, want: "203.0.113.1"},
		{name: "the gateway's token among a client's guesses", peer: inprocAddr{},
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1"}, ForwarderMetadataKey: {"guess", token}}, want: "203.0.113.1"},
		{name: "the gateway behind a trusted proxy", peer: inprocAddr{},
			md: metadata.MD{"x-forwarded-for": {"198.51.100.9, 10.0.0.5"}, ForwarderMetadataKey: {token}}, want: "198.51.100.9"},
		{name: "an internal caller", peer: tcp("192.0.2.7:5000"), internal: true,
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1"}}, want: "203.0.113.1"},
		{name: "an internal caller without x-forwarded-for", peer: tcp("192.0.2.7:5000"), internal: true, want: "192.0.2.7"},
		{name: "several x-forwarded-for values read as one list", peer: tcp("10.1.2.3:5000"),
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1", "10.2.2.2"}}, want: "203.0.113.1"},
		{name: "only trusted proxies: the leftmost", peer: tcp("10.1.2.3:5000"),
			md: metadata.MD{"x-forwarded-for": {"10.3.3.3, 10.2.2.2"}}, want: "10.3.3.3"},
		{name: "garbage stops the walk at the last vouched address", peer: tcp("10.1.2.3:5000"),
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1, unknown, 10.2.2.2"}}, want: "10.2.2.2"},
		{name: "entries with ports and mapped forms", peer: tcp("10.1.2.3:5000"),
			md: metadata.MD{"x-forwarded-for": {"[2001:db8::1]:443, ::ffff:10.2.2.2"}}, want: "2001:db8::1"},
		{name: "an IPv6 trusted proxy", peer: tcp("[2001:db8:aaaa::1]:5000"),
			md: metadata.MD{"x-forwarded-for": {"2001:db8:bbbb::7"}}, want: "2001:db8:bbbb::7"},
		{name: "an IPv4-mapped peer is IPv4", peer: tcp("[::ffff:10.1.2.3]:5000"),
			md: metadata.MD{"x-forwarded-for": {"203.0.113.1"}}, want: "203.0.113.1"},
		{name: "in-process and nothing forwarded: unknown", peer: inprocAddr{}, md: metadata.MD{ForwarderMetadataKey: {token}}, want: "invalid IP"},
		{name: "in-process without the token: unknown", peer: inprocAddr{}, md: metadata.MD{"x-forwarded-for": {"203.0.113.1"}}, want: "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: tt.peer})
			if tt.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tt.md)
			}
			p := Proxies{Trusted: trusted, Forwarder: token, IsInternal: func(context.Context) bool { return tt.internal }}
			require.Equal(t, tt.want, p.CallerAddress(ctx).String())
		})
	}
}

func TestCallerAddressBoundsTheWalk(t *testing.T) {
	var trusted flagx.PrefixList
	require.NoError(t, trusted.Set("10.0.0.0/8"))
	xff := "203.0.113.1"
	for range maxForwardedHops {
		xff += ", 10.0.0.1"
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("10.1.1.1:1"))})
	ctx = metadata.NewIncomingContext(ctx, metadata.MD{"x-forwarded-for": {xff}})
	require.Equal(t, "10.0.0.1", Proxies{Trusted: trusted}.CallerAddress(ctx).String())
}

func TestForwarderToken(t *testing.T) {
	a, b := ForwarderToken("credential one, at least 32 characters"), ForwarderToken("credential two, at least 32 characters")
	require.Len(t, a, 43)
	require.NotEqual(t, a, b)
	require.Equal(t, a, ForwarderToken("credential one, at least 32 characters"))
	require.NotContains(t, a, "credential")
}

func TestThrottleAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::9":      "2001:db8:1:2::/64",
	} {
		require.Equal(t, want, ThrottleAddress(netip.MustParseAddr(in)), in)
	}
	require.Equal(t, "unknown", ThrottleAddress(netip.Addr{}))
}

func TestThrottle(t *testing.T) {
	now := time.Now()
	th := NewThrottle(2, time.Second)
	require.Zero(t, th.Wait("a", now))
	th.Failed("a", now)
	th.Failed("a", now)
	require.Equal(t, time.Second, th.Wait("a", now))
	require.Zero(t, th.Wait("b", now), "another key is not affected")
	require.Zero(t, th.Wait("a", now.Add(time.Second)), "one refill later")
	th.Sweep(now.Add(3 * time.Second))
	th.mu.Lock()
	defer th.mu.Unlock()
	require.Empty(t, th.lims, "full buckets are forgotten")
}
