// Package publicurl says where clients reach this deployment's REST gateway, for URLs in metadata and for
// the audiences client assertions may name.
package publicurl

import (
	"context"
	"strings"

	"google.golang.org/grpc/metadata"
)

// Base is the base URL of the REST gateway: override (--public-url) when set, else the issuer when it is a
// URL, else the request's host (the gateway forwards it as x-forwarded-host), else https://issuer.
func Base(ctx context.Context, issuer, override string) string {
	switch {
	case override != "":
		return strings.TrimRight(override, "/")
	case strings.HasPrefix(issuer, "https://") || strings.HasPrefix(issuer, "http://"):
		return strings.TrimRight(issuer, "/")
	}
	if host := metadata.ValueFromIncomingContext(ctx, "x-forwarded-host"); len(host) > 0 {
		return "http://" + host[0]
	}
	return "https://" + issuer
}
