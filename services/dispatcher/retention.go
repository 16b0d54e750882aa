package dispatcher

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/natsbus"
)

// Personal data retention in the dispatcher's store.
//
// Parked changes and dead letters hold the whole change event, the citizen's fnr included. Besides
// leaving when delivered (or replayed and delivered), they are deleted
//   - --dead-letter-retention (14 days) after they died (dead letters), or after their change was made
//     (parked changes still waiting: a subscription held that long, or one that lost its webhook);
//   - when their subscription is deleted, with its delivery log: PVK's change event for the deletion
//     carries natsbus.HeaderSubscriptionDeleted, and the dispatcher deletes once PVK no longer lists the
//     subscription and no worker of this replica delivers it. A missed event leaves the rows to the
//     retention.
//
// Every deletion is logged with the subscription and the counts, never an fnr or a payload.

// retentionEvery bounds how often the retention runs: hourly, or more often for a short retention.
const retentionEvery = time.Hour

// purgeWindow is how long after a deletion event the dispatcher keeps deleting the subscription's rows,
// in case a worker (of this replica or another) parked a change after the first deletion.
const purgeWindow = 30 * time.Second

// purgeRetry is how often announced deletions are tried again within purgeWindow.
const purgeRetry = 2 * time.Second

// runRetention applies the retention at once and then every retentionEvery (or a tenth of the retention
// when that is shorter, but at most once a second), and deletes the rows of each subscription PVK
// announces deleted, until ctx ends.
func (s *Server) runRetention(ctx context.Context) {
	deletions := make(chan string, 256)
	sub, err := s.bus.Conn.Subscribe(s.bus.Subject(natsbus.SubjectSubscriptionChanged), func(m *nats.Msg) {
		if m.Header.Get(natsbus.HeaderSubscriptionDeleted) != "true" || !guid.Valid(string(m.Data)) {
			return
		}
		select {
		case deletions <- string(m.Data):
		default:
			s.log.Warn("subscription deletion not followed (too many at once); the retention deletes its rows", "subscription_id", string(m.Data))
		}
	})
	if err != nil {
		s.log.Error("follow subscription deletions; the retention deletes their rows", "err", err)
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	prune := time.NewTimer(0)
	defer prune.Stop()
	retry := time.NewTicker(purgeRetry)
	defer retry.Stop()
	pending := map[string]time.Time{} // announced deletions, by when they were announced
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-prune.C:
			s.applyRetention(ctx, now)
			prune.Reset(min(retentionEvery, max(s.cfg.DeadLetterRetention/10, time.Second)))
		case id := <-deletions:
			pending[id] = time.Now()
			s.purgeDeleted(ctx, pending)
		case <-retry.C:
			if len(pending) > 0 {
				s.purgeDeleted(ctx, pending)
			}
		}
	}
}

// applyRetention deletes the dead letters and waiting parked changes older than the retention at now.
func (s *Server) applyRetention(ctx context.Context, now time.Time) {
	deleted, err := s.store.pruneParked(ctx, now.Add(-s.cfg.DeadLetterRetention))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("dead letter retention", "err", err)
		}
		return
	}
	for _, p := range deleted {
		s.log.Info("dead letter retention: personal data deleted", "subscription_id", p.Subscription, "dead_letters", p.DeadLetters,
			"parked_changes", p.Parked, "retention", s.cfg.DeadLetterRetention.String())
	}
}

// purgeDeleted deletes the rows of each announced deletion that PVK confirms (it no longer lists the
// subscription) and that no worker here delivers any more, and forgets the announcements purged more than
// purgeWindow after they came. An announcement of a subscription PVK still lists is dropped.
func (s *Server) purgeDeleted(ctx context.Context, pending map[string]time.Time) {
	resp, err := s.pvk.ListWebhookTargets(ctx, &pvkv1.ListWebhookTargetsRequest{})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("subscription deletions: webhook targets", "err", err)
		}
		return
	}
	listed := map[string]bool{}
	for _, t := range resp.GetTargets() {
		listed[t.GetSubscription().GetSubscriptionId()] = true
	}
	for id, announced := range pending {
		switch {
		case listed[id] || time.Since(announced) > 10*purgeWindow:
			delete(pending, id) // not deleted after all, or its worker never stopped: left to the retention
			continue
		case s.worker(id) != nil:
			continue // the next sync stops it
		}
		p, err := s.store.purgeSubscription(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("delete a deleted subscription's rows", "subscription_id", id, "err", err)
			}
			continue
		}
		if p.DeadLetters+p.Parked+p.Attempts+p.Marks > 0 {
			s.log.Info("subscription deleted: its personal data deleted", "subscription_id", id, "dead_letters", p.DeadLetters,
				"parked_changes", p.Parked, "delivery_log_entries", p.Attempts, "citizen_marks", p.Marks)
		}
		if time.Since(announced) > purgeWindow {
			delete(pending, id)
		}
	}
}
