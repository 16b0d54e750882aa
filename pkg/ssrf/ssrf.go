// Package ssrf decides which webhook addresses hnsec may call: https only (http only for listed hosts),
// and never loopback, private, link-local, unspecified, multicast, reserved, benchmarking, documentation
// or cloud metadata addresses, nor IPv6 addresses that carry such an IPv4 address (NAT64, 6to4, Teredo,
// IPv4-compatible and -mapped), unless an allowed network admits them. The same rules run when a URL is registered and again when it is dialled,
// against the address actually dialled, so DNS rebinding cannot slip past them.
package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
)

// Policy is what a deployment allows.
type Policy struct {
	// AllowHTTPHosts may be called over plain http (host names or IPs, without port).
	AllowHTTPHosts []string
	// AllowNetworks admits addresses that the rules would refuse (e.g. 127.0.0.0/8 in tests).
	AllowNetworks []netip.Prefix
	// Resolver looks host names up (default net.DefaultResolver).
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
}

// Errors CheckURL returns (wrapped with detail).
var (
	ErrURL     = errors.New("webhook URL is not valid")
	ErrScheme  = errors.New("webhook URL must use https")
	ErrAddress = errors.New("webhook URL resolves to an address that may not be called")
)

// ParseCIDRs parses a list of networks (for --webhook-allow-cidr).
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("network %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CheckURL checks a webhook URL: its form, scheme, and every address its host resolves to.
func (p Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Fragment != "" || len(raw) > 2000 {
		return fmt.Errorf("%w: an absolute http(s) URL without credentials or fragment, at most 2000 characters", ErrURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !slices.Contains(p.AllowHTTPHosts, strings.ToLower(u.Hostname())) {
			return fmt.Errorf("%w (http is allowed only for listed hosts)", ErrScheme)
		}
	default:
		return fmt.Errorf("%w, not %q", ErrScheme, u.Scheme)
	}
	addrs, err := p.resolve(ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("%w: %s does not resolve", ErrURL, u.Hostname())
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return err
		}
	}
	return nil
}

func (p Policy) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	return r.LookupNetIP(ctx, "ip", host)
}

// metadata are cloud instance metadata addresses (also caught as link-local, but named for clarity).
var metadata = []netip.Addr{netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254")}

// reserved are special-purpose networks (RFC 6890 and the IANA registries) that no webhook receiver lives
// in: shared address space, IETF protocol assignments, benchmarking, the documentation ranges, IPv6
// discard-only, and the local-use NAT64 prefix (RFC 8215; where it embeds an IPv4 address depends on the
// operator's prefix length, so it is refused whole).
var reserved = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("3fff::/20"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// CheckAddr applies the address rules to one address. An IPv6 address that carries an IPv4 address
// (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4, Teredo) must also pass with that address.
func (p Policy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	for _, n := range p.AllowNetworks {
		if n.Contains(a) {
			return nil
		}
	}
	switch {
	case slices.Contains(metadata, a):
		return fmt.Errorf("%w: %s is a cloud metadata address", ErrAddress, a)
	case a.IsLoopback(), a.IsPrivate(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(),
		a.IsMulticast(), a.IsUnspecified(), !a.IsValid():
		return fmt.Errorf("%w: %s is loopback, private, link-local, multicast or unspecified", ErrAddress, a)
	case a.Is4() && (a.As4()[0] == 0 || a.As4()[0] >= 240):
		return fmt.Errorf("%w: %s is a reserved address", ErrAddress, a)
	case slices.ContainsFunc(reserved, func(n netip.Prefix) bool { return n.Contains(a) }):
		return fmt.Errorf("%w: %s is a reserved, shared or documentation address", ErrAddress, a)
	}
	for _, v4 := range embeddedIPv4(a) {
		if err := p.CheckAddr(v4); err != nil {
			return fmt.Errorf("%w: %s carries the IPv4 address %s, which may not be called", ErrAddress, a, v4)
		}
	}
	return nil
}

// Prefixes of IPv6 addresses that carry IPv4 addresses.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")           // RFC 4291 2.5.5.1, deprecated
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 (SIIT)
	nat64          = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052, the well-known prefix
	sixToFour      = netip.MustParsePrefix("2002::/16")       // RFC 3056
	teredo         = netip.MustParsePrefix("2001::/32")       // RFC 4380
)

// embeddedIPv4 returns the IPv4 addresses an IPv6 address carries: the last 32 bits of an
// IPv4-compatible, IPv4-translated or NAT64 address, bits 16–47 of a 6to4 address, and a Teredo
// address's server and (inverted) client addresses.
func embeddedIPv4(a netip.Addr) []netip.Addr {
	if !a.Is6() {
		return nil
	}
	b := a.As16()
	v4 := func(x [4]byte) netip.Addr { return netip.AddrFrom4(x) }
	switch {
	case ipv4Compatible.Contains(a), ipv4Translated.Contains(a), nat64.Contains(a):
		return []netip.Addr{v4([4]byte(b[12:16]))}
	case sixToFour.Contains(a):
		return []netip.Addr{v4([4]byte(b[2:6]))}
	case teredo.Contains(a):
		return []netip.Addr{v4([4]byte(b[4:8])), v4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})}
	}
	return nil
}

// Control is a net.Dialer.Control function that refuses, at dial time, any address the rules refuse.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrAddress, address)
	}
	return p.CheckAddr(ap.Addr())
}
