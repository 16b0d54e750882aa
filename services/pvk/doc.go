// Package pvk is a stand-in for Personvernkomponenten (PVK) v2: privacy setting definitions and citizens'
// settings, with PVK's operation names, JSON fields and error codes, and citizens' inclusions with a party.
//
// It owns its database (pvk.db): definitions, settings and inclusions (each with its own sekvensnummer,
// counted from 1), the deployment-wide endringsnummer (the change stream position that orders, replays and
// pages) and the outbox of change events, written with each change in one transaction. It checks callers'
// access tokens through the introspection service's gRPC API and operators' through the STS; it never
// touches another service's tables. National identity numbers are data here, never log fields.
package pvk
