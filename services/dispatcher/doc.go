// Package dispatcher is the webhook dispatcher: it consumes PVK's change stream for every webhook
// subscription and POSTs each change to the subscriber, with a SystemToken and a Standard Webhooks
// signature, in sekvensnummer order for each citizen and in parallel across citizens.
//
// A change the receiver does not take at once is parked in the dispatcher's own database (dispatcher.db)
// before its stream message is acknowledged; later changes for the same citizen queue behind it there, and
// a retry loop works through the parked changes on the backoff schedule until each is delivered or, its
// retries exhausted, becomes a dead letter (which the subscriber can replay). Every attempt is logged
// without payload or fnr. A receiver that keeps failing trips a circuit breaker and 410 Gone disables the
// subscription at once, through PVK.
//
// Cutting off a subscriber stops the data. Before every call (first attempts and retries alike), and at
// every sync, the dispatcher asks pkg/subscriber whether the subscriber's client configuration still
// exists, is not blocked and holds an APPROVED grant of the replication scope; the STS asks the same before
// it issues the SystemToken. The answer is cached for at most --client-cache-ttl and dropped at once on the
// registry's client-changed event, which also wakes the sync, so blocking, deleting or revoking the grant
// stops deliveries within moments. When the answer is no (or the registry cannot answer: fail closed),
// the subscription is HELD, never dropped: nothing is sent, the worker stops, the change in hand and those
// behind it go back to the stream unacknowledged, and parked changes keep their place and attempt count
// (a hold never counts towards the retry schedule, the circuit breaker or the delivery log). When the
// subscriber is reinstated (unblocked, the grant approved again) the next sync starts the worker and every
// held change is delivered, in order. Changes are held as long as the stream keeps them
// (--pvk-stream-max-age); parked ones stay in dispatcher.db. A deleted subscriber's subscriptions stay held
// until they are deleted. PVK marks each held subscription in its status_reason ("delivery held: ...") and
// its audit trail ("held", "released"); the hnsec_dispatcher_subscriptions_held gauge counts them by cause.
//
// It depends on PVK's internal subscription RPCs, the STS's IssueSystemToken, the registry (through
// pkg/subscriber) and its own database; it never touches another service's tables.
package dispatcher
