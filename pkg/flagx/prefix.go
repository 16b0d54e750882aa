package flagx

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// PrefixList is a repeatable flag of networks in CIDR notation; a comma-separated value appends each part,
// and a bare address stands for itself (a /32 or /128). IPv4-mapped IPv6 forms are stored as IPv4.
type PrefixList []netip.Prefix

// String implements flag.Value.
func (l *PrefixList) String() string {
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// Set implements flag.Value.
func (l *PrefixList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not an address or a network in CIDR notation (like 10.0.0.0/8 or fd00::/8)", s)
		}
		*l = append(*l, p)
	}
	return nil
}

// Contains reports whether a is in one of the networks.
func (l PrefixList) Contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errors.New("not an address")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, errors.New("mapped prefix shorter than ::ffff:0:0/96")
		}
		p = netip.PrefixFrom(a.Unmap(), bits)
	}
	return p.Masked(), nil
}
