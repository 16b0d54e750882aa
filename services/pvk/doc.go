// Package pvk is a stand-in for Personvernkomponenten (PVK) v2: privacy setting definitions and citizens'
// settings, with PVK's operation names, JSON fields and error codes.
//
// It owns its database (pvk.db): definitions, settings, the deployment-wide sekvensnummer and the outbox
// of change events, written with each change in one transaction. It checks callers' access tokens through
// the introspection service's gRPC API and operators' through the STS; it never touches another service's
// tables. National identity numbers are data here, never log fields.
package pvk
