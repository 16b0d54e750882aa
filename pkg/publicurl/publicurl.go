// Package publicurl says where clients reach this deployment's REST gateway, for URLs in metadata and for
// the audiences client assertions may name. The answer comes from configuration only, never from a
// request: a client chooses its Host and X-Forwarded-Host headers, and an audience or endpoint taken from
// them would let it name any server it likes.
package publicurl

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// Base is the base URL of the REST gateway: publicURL (--public-url) when set, else the issuer when it is
// a URL, else https://issuer.
func Base(issuer, publicURL string) string {
	switch {
	case publicURL != "":
		return strings.TrimRight(publicURL, "/")
	case IsURL(issuer):
		return strings.TrimRight(issuer, "/")
	}
	return "https://" + issuer
}

// IsURL reports whether an issuer is a URL (and so the base of the endpoints) rather than a bare name.
func IsURL(issuer string) bool {
	return strings.HasPrefix(issuer, "https://") || strings.HasPrefix(issuer, "http://")
}

// Listen is the base URL of a REST gateway listening on addr (host:port, as bound): http://addr, or
// https://addr when it serves TLS. An unspecified host (0.0.0.0, ::) is named localhost. It is the default
// of --public-url when the issuer is no URL: right on loopback, and for nothing else.
func Listen(addr string, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + net.JoinHostPort(host, port)
}

// Check validates a --public-url: an absolute http or https URL with a host, and no user information,
// query or fragment.
func Check(publicURL string) error {
	u, err := url.Parse(publicURL)
	switch {
	case err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.Opaque != "":
		return errors.New("--public-url must be an absolute http or https URL, like https://sikkerhet.helsenorge.no")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(publicURL, "?") || strings.HasSuffix(publicURL, "#"):
		return errors.New("--public-url must not have user information, a query or a fragment")
	}
	return nil
}
