package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hnsec/hnsec/pkg/loop"
	"github.com/hnsec/hnsec/pkg/store"
)

// worker delivers one webhook subscription's changes. Changes come from the subscription's durable
// consumer in stream order and go into a lane per citizen: a lane delivers one change at a time, lanes run
// in parallel up to the concurrency limit, so a slow citizen holds up only its own changes.
//
// A change whose first attempt fails is parked in the database, and only then is its message
// acknowledged; while a citizen has parked changes, its newer ones are parked behind them. The retry loop
// delivers each citizen's parked changes in endringsnummer order on the backoff schedule.
//
// A citizen's changes reach the receiver in stream order, and a change once delivered is never followed by
// an older one of its citizen: not after a failed read of skipped messages (handle), nor when the worker
// attaches again (recover and citizen_marks.go). After a crash the change a citizen was last sent may come
// again, with the same webhook-id.
type worker struct {
	s        *Server
	id       string
	consumer string
	target   atomic.Pointer[target]
	cancel   context.CancelFunc
	// unsubscribe ends the replay subscription.
	unsubscribe func()
	wg          sync.WaitGroup
	sem         chan struct{}
	breaker     breaker
	stopping    atomic.Bool

	mu sync.Mutex
	// lanes hold the changes in memory per citizen key, while there are any.
	lanes map[string][]laneItem
	// held is the latest delivery of each message being handled, by stream sequence: JetStream may hand a
	// message out again while it waits in a lane, and the newest delivery is the one to acknowledge.
	held map[uint64]jetstream.Msg
	// parked are the citizens with changes waiting in the database. The set and the database change
	// together under mu (a replay adds to the database first; see ReplayDeadLetters and retryLoop).
	parked map[string]bool
	// next is the stream sequence the worker expects from the consumer: every message before it was handled
	// or lies in a lane (held), except, while the worker attaches, those recover has yet to read (see
	// handle and recover); 0 until the worker attached.
	next uint64
	// epoch is the creation time (unix nanoseconds) of the consumer the worker attached to: a replay
	// recreates it. The rest is citizen_marks.go's: floorMark is the handled floor on record; done is, per
	// citizen, the stream sequence of the last change handled while that lies above floorMark; marks are
	// the citizens' marks read when attaching, above floorMark; marksSince counts the marks saved or read
	// since they were last pruned, at prunedAt.
	epoch      int64
	floorMark  uint64
	done       map[string]doneMark
	marks      map[string]uint64
	marksSince int
	prunedAt   time.Time
	// unsaved are parked changes delivered whose removal from the database failed: they are not sent
	// again while the retry loop tries the removal once more.
	unsaved map[string]bool
	// pauseUntil is when the retry loop may work again after a database write failed; pauses counts the
	// failures in a row (the wait doubles).
	pauseUntil time.Time
	pauses     int
}

// laneItem is a change waiting in a citizen's lane.
type laneItem struct {
	seq uint64
	// epoch is the consumer's (see worker.epoch).
	epoch int64
	c     change
}

func newWorker(s *Server, t *target, consumer string) *worker {
	w := &worker{s: s, id: t.ID, consumer: consumer, sem: make(chan struct{}, s.cfg.Concurrency), lanes: map[string][]laneItem{},
		held: map[uint64]jetstream.Msg{}, parked: map[string]bool{}, done: map[string]doneMark{}, marks: map[string]uint64{},
		unsaved: map[string]bool{}}
	w.target.Store(t)
	return w
}

// start runs the worker until stop. It also answers, on its subscription's replay subject, a replica that
// replayed dead letters (see ReplayDeadLetters).
func (w *worker) start(ctx context.Context) {
	w.s.log.Info("webhook worker started", "subscription_id", w.id, "replica", w.s.replica)
	ctx, w.cancel = context.WithCancel(ctx)
	sub, err := w.s.bus.Conn.Subscribe(w.s.replayedSubject(w.id), func(m *nats.Msg) {
		answer := "ok"
		if err := w.refreshParked(ctx); err != nil {
			w.s.log.Error("replayed dead letters", "subscription_id", w.id, "err", err)
			answer = "failed"
		}
		_ = m.Respond([]byte(answer))
	})
	if err != nil {
		w.s.log.Warn("replay subject", "subscription_id", w.id, "err", err) // the retry loop still finds replayed changes
	} else {
		w.unsubscribe = func() { _ = sub.Unsubscribe() }
	}
	w.wg.Add(3)
	go func() {
		defer w.wg.Done()
		w.consume(ctx)
	}()
	go func() {
		defer w.wg.Done()
		w.retryLoop(ctx)
	}()
	go func() {
		defer w.wg.Done()
		loop.Every(ctx, trimEvery, func(now time.Time) { w.trimMarks(ctx, now) })
	}()
}

// stop ends the worker and hands the messages it still holds back to JetStream, in stream order.
func (w *worker) stop() {
	if w.unsubscribe != nil {
		w.unsubscribe()
	}
	w.cancel()
	w.wg.Wait()
	w.saveMarksAtStop()
	w.s.log.Info("webhook worker stopped", "subscription_id", w.id, "replica", w.s.replica)
	w.mu.Lock()
	defer w.mu.Unlock()
	seqs := slices.Sorted(maps.Keys(w.held))
	for _, seq := range seqs {
		if m := w.held[seq]; m != nil {
			_ = m.Nak()
		}
		delete(w.held, seq)
	}
}

// consume reads the consumer until ctx ends, attaching again after errors (a replay recreates it).
func (w *worker) consume(ctx context.Context) {
	for ctx.Err() == nil {
		if err := w.consumeOnce(ctx); err != nil && ctx.Err() == nil {
			w.s.log.Warn("webhook consumer", "subscription_id", w.id, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (w *worker) consumeOnce(ctx context.Context) error {
	if err := w.refreshParked(ctx); err != nil {
		return err
	}
	cons, err := w.s.js.Consumer(ctx, w.s.streamName(), w.consumer)
	if err != nil {
		return err
	}
	if err := w.recover(ctx, cons.CachedInfo()); err != nil {
		return err
	}
	// Short pulls with heartbeats: a consumer whose leader moved (a NATS node died) is noticed in seconds.
	it, err := cons.Messages(jetstream.PullMaxMessages(256), jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(2*time.Second))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		if err := w.handle(ctx, msg); err != nil {
			return err // attach again: recover reads what the consumer handed out, from the ack floor
		}
	}
}

// recover puts the messages the consumer handed out but that were not handled (a previous worker was
// stopped or killed while it held them, or a pull request died with them) into their lanes first, read
// from the stream in order. Left to JetStream they would come back only after the ack wait, behind newer
// changes of the same citizens. Messages handled already (acknowledged out of order above the ack floor,
// or forgotten by a consumer that lost its last acknowledgements in a NATS crash) are left out: those at or
// below the handled floor or their citizen's mark (citizen_marks.go). Then the worker expects the message
// after the last one handed out.
func (w *worker) recover(ctx context.Context, info *jetstream.ConsumerInfo) error {
	epoch := info.Created.UnixNano()
	w.mu.Lock()
	if epoch != w.epoch { // the first attach, or a replay recreated the consumer
		w.epoch, w.next, w.floorMark, w.done, w.marks = epoch, 0, 0, map[string]doneMark{}, map[string]uint64{}
	}
	w.mu.Unlock()
	marks, err := w.s.store.citizenMarks(ctx, w.id, epoch, info.AckFloor.Stream)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.floorMark = max(w.floorMark, marks[floorCitizen])
	delete(marks, floorCitizen)
	for k, seq := range marks {
		if seq > w.floorMark && seq > w.marks[k] {
			w.marks[k] = seq
		}
	}
	w.marksSince += len(marks)
	from, to := max(info.AckFloor.Stream, w.floorMark)+1, info.Delivered.Stream+1
	w.mu.Unlock()
	if err := w.fill(ctx, from, to); err != nil {
		return err
	}
	w.mu.Lock()
	w.next = to
	w.mu.Unlock()
	return nil
}

// fill enqueues the stream's messages from..to-1 read from the stream itself, skipping those in a lane and
// those handled already. It fails on the first message it cannot read; a deleted one (past the stream's
// retention) is skipped.
func (w *worker) fill(ctx context.Context, from, to uint64) error {
	if from >= to {
		return nil
	}
	stream, err := w.s.js.Stream(ctx, w.s.streamName())
	if err != nil {
		return err
	}
	for seq := from; seq < to; seq++ {
		raw, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		w.mu.Lock()
		_, inLane := w.held[seq] // attached again after an error: still in its lane
		w.mu.Unlock()
		if !inLane {
			w.enqueue(ctx, seq, nil, raw.Data)
		}
	}
	return nil
}

// handle takes a message from the consumer. Messages come in stream order; one that comes again while it
// waits in a lane replaces the delivery held; one the worker is past was handled already (or is in a lane,
// or comes again from the stream when the worker attaches) and is only acknowledged; and where the
// consumer skips messages (handed to a pull request that died with its connection), the worker reads them
// from the stream first, so no change overtakes an older one of its citizen.
//
// When the skipped messages cannot be read (a NATS leader election makes GetMsg time out), handle puts
// nothing more in a lane and the worker still expects the first skipped message: the message in hand stays
// unacknowledged, and the error makes the worker attach again, when recover reads every message from the
// ack floor on, the skipped ones and this one included, in order.
func (w *worker) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return nil
	}
	seq := meta.Sequence.Stream
	w.mu.Lock()
	if _, ok := w.held[seq]; ok {
		w.held[seq] = msg
		w.mu.Unlock()
		return nil
	}
	next := w.next
	w.mu.Unlock()
	if seq < next {
		_ = msg.Ack()
		return nil
	}
	if err := w.fill(ctx, next, seq); err != nil {
		return fmt.Errorf("read skipped changes %d to %d: %w", next, seq-1, err)
	}
	w.enqueue(ctx, seq, msg, msg.Data())
	w.mu.Lock()
	w.next = seq + 1 // only now: the handled floor (citizen_marks.go) counts everything before next as handled or held
	w.mu.Unlock()
	return nil
}

// enqueue adds a change to its citizen's lane, starting the lane when it was idle; msg is nil for a change
// read from the stream. A change handled already (see handledAlready) is left out, its message
// acknowledged.
func (w *worker) enqueue(ctx context.Context, seq uint64, msg jetstream.Msg, data []byte) {
	c, ev, err := parseChange(data)
	if err != nil {
		w.s.log.Error("webhook consumer: not a change event", "subscription_id", w.id, "stream_seq", seq)
		if msg != nil {
			_ = msg.Term()
		}
		return
	}
	if !w.target.Load().Filters.matches(ev) {
		if msg != nil {
			_ = msg.Ack()
		}
		return
	}
	w.mu.Lock()
	if w.handledAlready(c.CitizenKey, seq) {
		w.mu.Unlock()
		if msg != nil {
			_ = msg.Ack()
		}
		return // one read from the stream is acknowledged when JetStream hands it out again (handle)
	}
	w.held[seq] = msg
	queue, busy := w.lanes[c.CitizenKey]
	w.lanes[c.CitizenKey] = append(queue, laneItem{seq: seq, epoch: w.epoch, c: c})
	w.mu.Unlock()
	if !busy {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.runLane(ctx, c.CitizenKey)
		}()
	}
}

// runLane delivers a citizen's changes one at a time until its lane is empty. Before it handles a change
// it makes sure the citizen's previous one is on record as its mark, where that is needed (see
// citizen_marks.go).
func (w *worker) runLane(ctx context.Context, key string) {
	for {
		w.mu.Lock()
		queue := w.lanes[key]
		if len(queue) == 0 || ctx.Err() != nil {
			delete(w.lanes, key)
			w.mu.Unlock()
			return
		}
		if d, ok := w.done[key]; ok && !d.saved {
			w.mu.Unlock()
			if !w.saveMark(ctx, key, d.seq) {
				return
			}
			continue
		}
		it := queue[0]
		w.lanes[key] = queue[1:]
		parked := w.parked[key]
		w.mu.Unlock()
		if parked {
			w.park(ctx, it, parkedChange{change: it.c})
			continue
		}
		w.sem <- struct{}{}
		r := w.attempt(ctx, it.c, 1)
		<-w.sem
		switch {
		case ctx.Err() != nil || r.Class == classHeld:
			return // unacknowledged: JetStream has it again when the worker stops
		case r.Class == "":
			w.s.metrics.deliveries.WithLabelValues("delivered").Inc()
			w.ack(it)
		case r.Class == classGone:
			w.disable(ctx, "gone", "the receiver answered 410 Gone")
			return
		default:
			w.s.metrics.deliveries.WithLabelValues("parked").Inc()
			w.park(ctx, it, parkedChange{change: it.c, Attempts: 1, NextAttempt: time.Now().Add(w.delay(1, r)),
				LastErrorClass: r.Class, LastStatusCode: r.StatusCode})
		}
	}
}

// park stores a change for the retry loop, then acknowledges its message. A database failure is retried,
// with a growing wait: the lane must not move past a change that is neither delivered nor parked.
func (w *worker) park(ctx context.Context, it laneItem, p parkedChange) {
	for n := 0; ; n++ {
		w.mu.Lock()
		err := w.s.store.park(ctx, w.id, p)
		if err == nil {
			w.parked[it.c.CitizenKey] = true
		}
		w.mu.Unlock()
		if err == nil {
			w.ack(it)
			return
		}
		if ctx.Err() != nil {
			return // unacknowledged: JetStream has it again when the worker stops
		}
		w.s.log.Error("park change", "subscription_id", w.id, "change_id", it.c.ChangeID, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(storeBackoff(n)):
		}
	}
}

// ack notes a citizen's change as handled (delivered or parked), then acknowledges the latest delivery of
// its message and forgets it; a change read from the stream without one is acknowledged when JetStream
// hands it out again.
func (w *worker) ack(it laneItem) {
	w.mu.Lock()
	seq, key := it.seq, it.c.CitizenKey
	m := w.held[seq]
	delete(w.held, seq)
	if it.epoch == w.epoch && seq > w.done[key].seq { // not one of a consumer a replay replaced
		w.done[key] = doneMark{seq: seq}
	}
	w.mu.Unlock()
	if m != nil {
		if err := m.Ack(); err != nil {
			w.s.log.Warn("ack change", "subscription_id", w.id, "stream_seq", seq, "err", err)
		}
	}
}

// attempt makes one call, logs it and feeds the circuit breaker. It first checks that the subscriber may
// still receive: when not, nothing is sent, the worker holds (its ctx ends) and the change stays where it
// is, neither attempted nor acknowledged.
func (w *worker) attempt(ctx context.Context, c change, n int) result {
	t := w.target.Load()
	if !w.mayDeliver(ctx, t.Subscriber) {
		return result{Class: classHeld}
	}
	tok, err := w.s.tokens.get(ctx, t.Subscriber)
	if refusedSubscriber(err) {
		w.hold("the STS refused a SystemToken for the subscriber")
		return result{Class: classHeld}
	}
	if err != nil {
		w.s.log.Error("system token", "subscription_id", w.id, "err", err)
		return result{Class: classSystemToken}
	}
	actx, cancel := context.WithTimeout(ctx, w.s.cfg.Timeout)
	start := time.Now()
	r := w.s.sender.send(actx, t, c, tok)
	cancel()
	if ctx.Err() != nil {
		return r
	}
	w.s.logAttempt(attempt{SubscriptionID: w.id, ChangeID: c.ChangeID, Sekvensnummer: c.Sekvensnummer, Attempt: n, Time: start,
		StatusCode: r.StatusCode, Latency: r.Latency, ErrorClass: r.Class})
	label := r.Class
	if label == "" {
		label = "ok"
		if !c.EventTime.IsZero() {
			w.s.metrics.latency.Observe(time.Since(c.EventTime).Seconds())
		}
	}
	w.s.metrics.attempts.WithLabelValues(label).Inc()
	// A receiver that asks for time (429, or 503 with Retry-After) is not failing: the change waits as
	// asked (delay), and the breaker does not count the call.
	if r.RetryAfter == 0 && w.breaker.record(r.Class == "", time.Now(), w.s.cfg.BreakerFailures, w.s.cfg.BreakerPeriod) {
		w.disable(ctx, "breaker", fmt.Sprintf("%d consecutive failed calls over %s", w.s.cfg.BreakerFailures, w.s.cfg.BreakerPeriod))
	}
	return r
}

// classSystemToken marks an attempt that could not be made for want of a SystemToken.
const classSystemToken = "system_token"

// maxRetryAfter bounds how long a receiver's Retry-After may hold a change back.
const maxRetryAfter = 24 * time.Hour

// delay is the wait before attempt n+1 after attempt n failed: the schedule's wait with ±20 % jitter, or the
// receiver's Retry-After (up to a day).
func (w *worker) delay(n int, r result) time.Duration {
	sched := w.s.cfg.Schedule
	if r.RetryAfter > 0 {
		return min(r.RetryAfter, maxRetryAfter)
	}
	d := sched[min(n, len(sched))-1]
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// disable has PVK disable the subscription and stops delivering; the dispatcher's next sync sees the new
// status. Re-enabled (ResumeSubscription), it resumes where it stopped: unacknowledged messages come back.
func (w *worker) disable(ctx context.Context, reason, text string) {
	if !w.stopping.CompareAndSwap(false, true) {
		return
	}
	w.s.metrics.disabled.WithLabelValues(reason).Inc()
	w.s.log.Warn("webhook subscription disabled", "subscription_id", w.id, "reason", text)
	if err := w.s.disable(ctx, w.id, text); err != nil {
		w.s.log.Error("disable subscription", "subscription_id", w.id, "err", err)
	}
	w.cancel()
}

// retryLoop works through the parked changes that are due, until ctx ends. A citizen with a change due is
// marked parked first, so its newer changes queue behind it even when the worker missed the notice of a
// replay (see ReplayDeadLetters). After a database write failed it pauses (storeFailed): a dispatcher that
// cannot record attempts must not call receivers again and again.
func (w *worker) retryLoop(ctx context.Context) {
	t := time.NewTicker(w.s.cfg.RetryTick)
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			return
		case now = <-t.C:
		}
		w.mu.Lock()
		paused := now.Before(w.pauseUntil)
		w.mu.Unlock()
		if paused {
			continue
		}
		heads, err := w.s.store.dueHeads(ctx, w.id, time.Now(), 256)
		if err != nil {
			if ctx.Err() == nil {
				w.s.log.Error("parked changes", "subscription_id", w.id, "err", err)
			}
			continue
		}
		w.mu.Lock()
		for _, h := range heads {
			w.parked[h.CitizenKey] = true
		}
		w.mu.Unlock()
		var wg sync.WaitGroup
		for _, h := range heads {
			wg.Add(1)
			w.sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-w.sem }()
				w.retryCitizen(ctx, h)
			}()
		}
		wg.Wait()
	}
}

// retryCitizen attempts a citizen's first parked change and, while attempts succeed (or changes die), the
// ones behind it. A change delivered whose removal from the database failed is not sent again: its
// removal is retried first.
func (w *worker) retryCitizen(ctx context.Context, p parkedChange) {
	sched := w.s.cfg.Schedule
	for {
		w.mu.Lock()
		sent := w.unsaved[p.ChangeID]
		w.mu.Unlock()
		n := p.Attempts + 1
		r := result{}
		if !sent {
			r = w.attempt(ctx, p.change, n)
		}
		now := time.Now()
		switch {
		case ctx.Err() != nil || r.Class == classHeld:
			return // still parked, its attempts unchanged
		case r.Class == "":
			if err := w.s.store.delivered(ctx, w.id, p.ChangeID); err != nil {
				w.storeFailed(p, true, err)
				return
			}
			w.storeWrote(p.ChangeID)
			if !sent {
				w.s.metrics.deliveries.WithLabelValues("delivered").Inc()
			}
		case r.Class == classGone:
			w.disable(ctx, "gone", "the receiver answered 410 Gone")
			return
		default:
			p.Attempts, p.LastErrorClass, p.LastStatusCode = n, r.Class, r.StatusCode
			if n > len(sched) {
				p.Dead, p.DeadTime = true, now
			} else {
				p.NextAttempt = now.Add(w.delay(n, r))
			}
			if err := w.s.store.failed(ctx, w.id, p); err != nil {
				p.Dead = false
				w.storeFailed(p, false, err)
				return
			}
			w.storeWrote("")
			if !p.Dead {
				return
			}
			w.s.metrics.deliveries.WithLabelValues("dead_lettered").Inc()
		}
		// The next change of this citizen, if any; none left means the lane may deliver directly again.
		w.mu.Lock()
		next, err := w.s.store.head(ctx, w.id, p.CitizenKey)
		if errors.Is(err, store.ErrNotFound) {
			delete(w.parked, p.CitizenKey)
		}
		w.mu.Unlock()
		if err != nil || next.NextAttempt.After(now) {
			return
		}
		p = next
	}
}

// storeFailed notes that recording an attempt on a parked change failed: the retry loop pauses, 1 s
// doubling to a minute while the failures go on, and a change that was delivered is remembered as sent.
func (w *worker) storeFailed(p parkedChange, delivered bool, err error) {
	w.s.log.Error("record an attempt on a parked change", "subscription_id", w.id, "change_id", p.ChangeID, "delivered", delivered,
		"err", err)
	w.mu.Lock()
	defer w.mu.Unlock()
	if delivered {
		w.unsaved[p.ChangeID] = true
	}
	w.pauseUntil = time.Now().Add(storeBackoff(w.pauses))
	w.pauses++
}

// storeWrote notes that recording an attempt succeeded (for a delivered change, its id): the pause ends.
func (w *worker) storeWrote(changeID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.unsaved, changeID)
	w.pauses = 0
}

// refreshParked marks the citizens with waiting changes (when attaching, and after dead letters were
// replayed).
func (w *worker) refreshParked(ctx context.Context) error {
	citizens, err := w.s.store.parkedCitizens(ctx, w.id)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range citizens {
		w.parked[c] = true
	}
	return nil
}

// breaker counts consecutive failed calls of a subscription.
type breaker struct {
	mu       sync.Mutex
	failures int
	since    time.Time
}

// record counts a call and reports whether the breaker trips: at least n consecutive failures spanning at
// least period.
func (b *breaker) record(ok bool, now time.Time, n int, period time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.failures = 0
		return false
	}
	if b.failures == 0 {
		b.since = now
	}
	b.failures++
	return b.failures >= n && now.Sub(b.since) >= period
}
