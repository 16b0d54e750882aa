// Package registry is the client registry, modelled on HelseID self-service: vendors, organisations,
// client systems and client configurations (clients) with their allowed scopes and secrets, API resources
// and their scopes, access grants, and the audit trail.
//
// It owns its database (registry.db) and publishes a NATS event whenever a client changes. Other services
// reach it only through its gRPC API (ClientRegistryService): the STS authenticates clients through
// AuthenticateClient, introspection checks clients through LookupClient, and the privileged RPCs of other
// services ask AuthorizeAdmin who their caller is. Admin calls are authorised with access tokens resolved
// through the STS's LookupReference. It must not touch the STS's tables or packages.
//
// # The authorization model
//
// The registry is where hnsec decides who may do what; every service follows the same rules.
//
//   - Principals act for exactly one typed tenant. An admin credential (a client configuration with an
//     admin role) is an operator, or acts for one vendor (vendor id), one organisation (organisation
//     number) or one API (API id); the role names the kind of tenant. Tenants of different kinds never
//     overlap, even when they share an organisation number: an organisation's admins manage the
//     organisation's client configurations, but an admin credential only the admins of its own typed
//     tenant (and operators) may manage. See principal.manages.
//   - Scopes belong to the API that owns their audience: an API registers only "<audience>/<name>", and
//     audiences are unique. The platform APIs (scope.PlatformAPIs: hnsec's own hnsec:* scopes and the PVK
//     scopes) are created at every start, dev or not; only operators administer them, their audiences are
//     reserved, and a platform scope another API registered earlier is moved to its platform API. So only
//     an operator can grant introspection, the admin scope or access to citizens' privacy settings. The
//     citizen login scopes (openid, offline_access, oidcnavn, oidcfodselsdatoinformasjon,
//     oidcfodselsnummer) are OpenID Connect's bare names: they belong to the platform API
//     scope.OIDCAudience, which lists them one by one, and no API owner may register them or their names as
//     audiences.
//   - Every privileged call asks who the caller is, every time: the registry's own admin RPCs load the
//     caller's credential from the store on each call, other services call AuthorizeAdmin (pkg/authz
//     Admins). A scope in the token is necessary, never sufficient: a blocked or deleted admin credential
//     loses its power at once, tokens issued before the block included (they are inactive, as
//     introspection says).
//   - Data to third parties flows only while the receiver is active and holds an approved grant, checked
//     at delivery time (the dispatcher, pull delivery and the STS's IssueSystemToken ask LookupClient).
//
// A client configuration may carry OpenID Connect settings (OIDCSettings, oidc_settings.go: client type,
// redirect URIs, PAR and mTLS, refresh window and cap, logout mode, ...) for citizen login through the OP
// (services/oidc), which reads them with LookupClient. Its organisation's admins and operators set them
// with UpdateClientOidcSettings; they are stored with the client (table client_oidc) and audited with it.
//
// Non-operators asking for something they may not see get PermissionDenied whether or not it exists.
// Every change, and every action another service was allowed through AuthorizeAdmin, is in the audit
// trail with its actor and korrelasjonsId.
package registry
