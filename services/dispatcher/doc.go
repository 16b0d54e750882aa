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
package dispatcher
