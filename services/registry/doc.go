// Package registry is the client registry, modelled on HelseID self-service: vendors, organisations,
// client systems and client configurations (clients) with their allowed scopes and secrets.
//
// It owns its database (registry.db) and publishes a NATS event whenever a client changes. Other services
// reach it only through its gRPC API (ClientRegistryService): the STS authenticates clients through
// AuthenticateClient, and admin calls are authorised with access tokens resolved through the STS's
// LookupReference. It must not touch the STS's tables or packages.
package registry
