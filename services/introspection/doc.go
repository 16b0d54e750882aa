// Package introspection is the token introspection service (RFC 7662) for the APIs that receive access
// tokens.
//
// It owns no durable data. It authenticates its callers through pkg/clientauth, resolves tokens through
// the STS's gRPC LookupReference (which verifies the JWT against the key ring and finds the stored rights)
// and checks the client through the registry's gRPC LookupClient, then caches the answer until the token
// expires. NATS events (token revoked, all of a client's tokens revoked, client changed) drop cached
// answers at once, on every replica. It must not touch the STS's or the registry's tables.
package introspection
