package natsbus

import "time"

// SetupTimeout bounds creating a stream or bucket at start: in a cluster that is busy or electing a
// leader it takes longer than JetStream's default API timeout of 5 seconds.
const SetupTimeout = 30 * time.Second

// Subjects of the events services publish for each other. Payloads are documented beside each.
const (
	// SubjectClientChanged carries a client_id (plain text) whenever a client configuration, its status or
	// its credentials change; holders of cached client data drop it.
	SubjectClientChanged = "hnsec.registry.client.changed"
	// SubjectRegistryChanged carries {"object_type","object_id"} (JSON) for every other registry change
	// (vendors, client systems, organisations, APIs).
	SubjectRegistryChanged = "hnsec.registry.changed"
	// SubjectTokenRevoked carries the jti (plain text) of a revoked access token.
	SubjectTokenRevoked = "hnsec.sts.token.revoked"
	// SubjectClientTokensRevoked carries a client_id (plain text) whose every outstanding token was revoked.
	SubjectClientTokensRevoked = "hnsec.sts.client.tokens_revoked"
	// SubjectSubscriptionChanged carries a PVK subscription id (plain text) whenever the subscription is
	// created, changed or deleted; the dispatcher reloads its webhook targets. A deletion's event has the
	// header HeaderSubscriptionDeleted.
	SubjectSubscriptionChanged = "hnsec.pvk.subscription.changed"
)

// HeaderSubscriptionDeleted ("true") marks the SubjectSubscriptionChanged event of a deleted subscription:
// the dispatcher deletes the subscription's parked changes, dead letters and delivery log.
const HeaderSubscriptionDeleted = "Hnsec-Subscription-Deleted"
