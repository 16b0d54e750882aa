// Package ssrf decides which webhook addresses hnsec may call: https only (http only for listed hosts),
// and never loopback, private, link-local, unspecified, multicast or cloud metadata addresses unless an
// allowed network admits them. The same rules run when a URL is registered and again when it is dialled,
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

// CheckAddr applies the address rules to one address.
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
	case a.Is4() && (a.As4()[0] == 0 || a.As4()[0] >= 240 || netip.MustParsePrefix("100.64.0.0/10").Contains(a)):
		return fmt.Errorf("%w: %s is a reserved or shared address", ErrAddress, a)
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
