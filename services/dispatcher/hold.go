package dispatcher

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/subscriber"
)

// classHeld marks an attempt that was not made because the subscriber is cut off; it is never logged as an
// attempt and never counts towards the retry schedule or the circuit breaker.
const classHeld = "held"

// causeUnchecked is the hold cause when the registry could not say whether the subscriber may receive.
const causeUnchecked subscriber.Cause = "unchecked"

// holding reports whether a webhook subscription must not be delivered now because its subscriber is cut
// off (or could not be checked: fail closed), noting the cause in holds.
func (s *Server) holding(ctx context.Context, id, subscriberID string, holds map[string]subscriber.Cause) bool {
	v, err := s.subscribers.Check(ctx, subscriberID, scope.PVKReplication)
	switch {
	case err != nil:
		holds[id] = causeUnchecked
	case !v.OK():
		holds[id] = v.Cause
	default:
		return false
	}
	return true
}

// setHolds records which subscriptions are held now, logging each that starts or stops being held.
func (s *Server) setHolds(holds map[string]subscriber.Cause) {
	s.mu.Lock()
	old := s.holds
	s.holds = holds
	s.mu.Unlock()
	for id, cause := range holds {
		if old[id] != cause {
			s.log.Warn("webhook subscription held: its subscriber may not receive; changes are kept", "subscription_id", id,
				"cause", string(cause))
		}
	}
	for id := range old {
		if _, ok := holds[id]; !ok {
			s.log.Info("webhook subscription no longer held", "subscription_id", id)
		}
	}
	counts := map[subscriber.Cause]float64{subscriber.Blocked: 0, subscriber.Deleted: 0, subscriber.NotGranted: 0, causeUnchecked: 0}
	for _, cause := range holds {
		counts[cause]++
	}
	for cause, n := range counts {
		s.metrics.held.WithLabelValues(string(cause)).Set(n)
	}
}

// mayDeliver checks, before a call, that the subscriber may still receive; when not, the worker holds.
func (w *worker) mayDeliver(ctx context.Context, subscriberID string) bool {
	v, err := w.s.subscribers.Check(ctx, subscriberID, scope.PVKReplication)
	switch {
	case err != nil && ctx.Err() == nil:
		w.s.log.Warn("subscriber check", "subscription_id", w.id, "err", err)
		w.hold("the subscriber could not be checked")
		return false
	case err != nil:
		return false
	case !v.OK():
		w.hold(v.Reason)
		return false
	}
	return true
}

// hold stops the worker without sending anything more: the change in hand and those waiting in lanes go
// back to JetStream unacknowledged, parked changes stay parked with their attempts unchanged, and the next
// sync (woken now) starts the subscription again only once its subscriber may receive.
func (w *worker) hold(why string) {
	if !w.stopping.CompareAndSwap(false, true) {
		return
	}
	w.s.log.Warn("webhook deliveries held", "subscription_id", w.id, "reason", why)
	w.cancel()
	w.s.wakeUp()
}

// refusedSubscriber reports whether the STS refused a SystemToken because the subscriber is cut off.
func refusedSubscriber(err error) bool {
	if err == nil {
		return false
	}
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.Kind.GRPC == codes.FailedPrecondition
	}
	return status.Code(err) == codes.FailedPrecondition
}
