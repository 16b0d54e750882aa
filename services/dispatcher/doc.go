// Package dispatcher is the webhook dispatcher: it consumes PVK's change stream for every webhook
// subscription and POSTs each change to the subscriber, with a SystemToken and a Standard Webhooks
// signature, in order for each citizen (by endringsnummer, the change's position in PVK's change stream;
// never by sekvensnummer, which counts one setting's changes only) and in parallel across citizens.
//
// A change the receiver does not take at once is parked in the dispatcher's own database (dispatcher.db)
// before its stream message is acknowledged; later changes for the same citizen queue behind it there, and
// a retry loop works through the parked changes on the backoff schedule until each is delivered or, its
// retries exhausted, becomes a dead letter (which the subscriber can replay). Every attempt is logged
// without payload or fnr. A receiver that keeps failing trips a circuit breaker and 410 Gone disables the
// subscription at once, through PVK; a receiver that asks for time (429, or 503 with Retry-After) is not
// failing: its change waits as asked and the breaker does not count the call. While the database refuses
// writes the retry loop backs off, and a change it delivered is not sent again.
//
// The delivery guarantee: at least once, and in order per citizen. Every change committed in PVK reaches
// each matching active subscription (unless it dies after its retries, when it waits as a dead letter) and
// a receiver never gets an older change of a citizen after a newer one, across NATS failures, lease
// handovers, restarts and crashes (see worker and citizen_marks.go). A change comes more than once only
// after a failure (a call whose answer did not arrive in time, a crash of the dispatcher or of NATS, a
// database that could not record the delivery), with the same webhook-id: receivers drop duplicates by
// webhook-id. Within one process the repeat is the citizen's latest change; after a replica killed
// mid-stream in a cluster, a change delivered shortly before the crash (above the last saved floor and
// mark) can come again after a newer one, which a receiver dropping repeats by webhook-id never acts on
// (the cluster test checks that). Two exceptions are asked for by the subscriber: a
// replayed dead letter and a replay of the subscription from an endringsnummer or a time deliver older
// changes again.
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
// (--pvk-stream-max-age); parked ones stay in dispatcher.db for at most --dead-letter-retention. A deleted
// subscriber's subscriptions stay held until they are deleted.
//
// Parked changes and dead letters hold the citizen's fnr: they are deleted --dead-letter-retention (14
// days) after they died or their change was made, and with their subscription (retention.go). PVK marks each held subscription in its status_reason ("delivery held: ...") and
// its audit trail ("held", "released"); the hnsec_dispatcher_subscriptions_held gauge counts them by cause.
//
// It depends on PVK's internal subscription RPCs, the STS's IssueSystemToken, the registry (through
// pkg/subscriber) and its own database; it never touches another service's tables.
package dispatcher
