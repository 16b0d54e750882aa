package gateway

import "net/http"

// hstsValue is the Strict-Transport-Security answer over TLS: one year, this host only (the deployment
// knows whether its subdomains are all on HTTPS; the gateway does not).
const hstsValue = "max-age=31536000"

// publicPaths are the answers that carry neither secrets nor personal data and that clients and caches may
// keep: the JWK Sets (whose handler sets its own max-age), the server metadata, the OpenAPI document and
// the operations endpoints. Every other answer is no-store.
var publicPaths = map[string]bool{
	"/sts/.well-known/jwks.json":              true,
	"/.well-known/jwks.json":                  true,
	"/.well-known/oauth-authorization-server": true,
	"/.well-known/openid-configuration":       true,
	"/openapi.json":                           true,
	"/healthz":                                true,
	"/readyz":                                 true,
	"/metrics":                                true,
}

// Headers wraps every HTTP answer of the REST port (the gateway, or the operations endpoints of a process
// without it) with the headers every answer needs: X-Content-Type-Options: nosniff; Cache-Control:
// no-store on every answer outside publicPaths (tokens, client secrets, webhook secrets, citizens' privacy
// settings, and every error); and Strict-Transport-Security on answers over TLS (--http-tls-cert).
func Headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if !publicPaths[r.URL.Path] {
			h.Set("Cache-Control", "no-store")
		}
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", hstsValue)
		}
		next.ServeHTTP(w, r)
	})
}
