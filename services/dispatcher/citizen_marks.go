package dispatcher

import (
	"context"
	"database/sql"
	"time"

	"github.com/hnsec/hnsec/pkg/store"
)

// Citizen marks keep a worker that attaches (after a NATS error, at a lease handover, after a restart or a
// crash, of the dispatcher or of NATS) from sending a citizen's older change after a newer one.
//
// Lanes run in parallel, so a subscription's messages are acknowledged out of order and the consumer's ack
// floor trails the changes handled; and after a NATS crash the consumer may even have forgotten the last
// acknowledgements (JetStream writes a consumer's state to disk every so often) and hand out again
// messages that were handled. So the worker keeps its own record, in the store, of what it handled in the
// consumer:
//
//   - the handled floor (the mark of citizen ""): every message up to it was handled (delivered, parked,
//     filtered out). The worker knows it exactly (the message before the first it still holds, or before
//     next) and records it every trimEvery when it moved;
//   - a citizen's mark: the stream sequence of the citizen's last handled change, recorded before the
//     citizen's next change is handled while the last one lies above the recorded handled floor (worker.done
//     holds those). So a mark is written only for a citizen with a second change within a fraction of a
//     second (longer behind a slow citizen, which holds the floor back), through a group commit; the
//     common case costs a map entry.
//
// A worker that stops records its handled floor and its citizens' last changes above it, so after a
// handover nothing is sent again. When it attaches, the worker reads the marks; recover and handle leave
// out every message at or below the handled floor, its citizen's mark or the worker's own last change of
// the citizen (acknowledging it when JetStream hands it out). What may come again after a crash is only
// the change a citizen was last sent, the same change with the same webhook-id, never an older one.
//
// Marks belong to one incarnation of the consumer (its creation time): a replay recreates the consumer and
// starts afresh. Citizen marks at or below the recorded handled floor are never needed again and are
// deleted every pruneMarksEvery, with the marks of older incarnations.

// trimEvery is how often a worker records its handled floor (when it moved) and forgets the citizens' last
// changes at or below it.
const trimEvery = 250 * time.Millisecond

// pruneMarksEvery is how often a worker deletes the citizen marks it no longer needs from the store.
const pruneMarksEvery = 30 * time.Second

// stopSaveTimeout bounds the write of a stopping worker's marks: a handover must not wait long for a
// database that does not answer (the next worker then may send the last changes again).
const stopSaveTimeout = 2 * time.Second

// floorCitizen is the citizen key under which the store keeps a worker's handled floor; no citizen key is
// empty.
const floorCitizen = ""

// doneMark is the last change of a citizen a worker handled: its stream sequence, and whether the store
// holds it as the citizen's mark.
type doneMark struct {
	seq   uint64
	saved bool
}

// citizenMark is a citizen's mark in a subscription (or the handled floor, for floorCitizen): a stream
// sequence in the consumer created at epoch (unix nanoseconds).
type citizenMark struct {
	Subscription, Citizen string
	Epoch                 int64
	Seq                   uint64
}

// saveMark records the citizen's last handled change (seq) as its mark before the lane handles the next,
// retrying a failing store with a growing wait (it never calls the receiver meanwhile). It returns false
// when ctx ended first.
func (w *worker) saveMark(ctx context.Context, key string, seq uint64) bool {
	for n := 0; ; n++ {
		w.mu.Lock()
		epoch := w.epoch
		w.mu.Unlock()
		err := w.s.marks.Submit(ctx, citizenMark{Subscription: w.id, Citizen: key, Epoch: epoch, Seq: seq})
		if err == nil {
			w.mu.Lock()
			if d, ok := w.done[key]; ok && d.seq == seq {
				w.done[key] = doneMark{seq: seq, saved: true}
			}
			w.marksSince++
			w.mu.Unlock()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.s.log.Error("save citizen mark", "subscription_id", w.id, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(storeBackoff(n)):
		}
	}
}

// handledAlready reports whether the message at seq, a change of citizen key, was handled before: at or
// below the handled floor, the citizen's mark or the worker's own last change of the citizen. mu is held.
func (w *worker) handledAlready(key string, seq uint64) bool {
	return seq <= w.floorMark || seq <= w.done[key].seq || seq <= w.marks[key]
}

// handledFloor is the stream sequence up to which every message was handled (none is held, in a lane or
// on its way there), and whether the worker knows one (it is attached). mu is held.
func (w *worker) handledFloor() (uint64, bool) {
	if w.next == 0 {
		return 0, false
	}
	floor := w.next - 1
	for seq := range w.held {
		floor = min(floor, seq-1)
	}
	return floor, true
}

// trimMarks records the handled floor when it moved, then forgets the citizens' last changes and marks at
// or below it; every pruneMarksEvery it deletes such marks from the store.
func (w *worker) trimMarks(ctx context.Context, now time.Time) {
	w.mu.Lock()
	floor, ok := w.handledFloor()
	epoch, saved := w.epoch, w.floorMark
	w.mu.Unlock()
	if ok && floor > saved {
		if err := w.s.marks.Submit(ctx, citizenMark{Subscription: w.id, Citizen: floorCitizen, Epoch: epoch, Seq: floor}); err != nil {
			if ctx.Err() == nil {
				w.s.log.Warn("save handled floor", "subscription_id", w.id, "err", err)
			}
			return
		}
		w.mu.Lock()
		if w.epoch == epoch && floor > w.floorMark {
			w.floorMark = floor
			for k, d := range w.done {
				if d.seq <= floor {
					delete(w.done, k)
				}
			}
			for k, seq := range w.marks {
				if seq <= floor {
					delete(w.marks, k)
				}
			}
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	prune := w.marksSince > 0 && now.Sub(w.prunedAt) >= pruneMarksEvery && w.epoch == epoch
	floor = w.floorMark
	w.mu.Unlock()
	if !prune {
		return
	}
	if err := w.s.store.pruneMarks(ctx, w.id, epoch, floor); err != nil {
		if ctx.Err() == nil {
			w.s.log.Warn("prune citizen marks", "subscription_id", w.id, "err", err)
		}
		return
	}
	w.mu.Lock()
	w.prunedAt, w.marksSince = now, 0
	w.mu.Unlock()
}

// saveMarksAtStop records, once the worker stopped, its handled floor and every citizen's last change above
// it, so the next worker (at a lease handover, a hold, a restart) sends nothing again.
func (w *worker) saveMarksAtStop() {
	w.mu.Lock()
	floor, ok := w.handledFloor()
	var marks []citizenMark
	if ok && floor > w.floorMark {
		marks = append(marks, citizenMark{Subscription: w.id, Citizen: floorCitizen, Epoch: w.epoch, Seq: floor})
	}
	for k, d := range w.done {
		if !d.saved && d.seq > floor {
			marks = append(marks, citizenMark{Subscription: w.id, Citizen: k, Epoch: w.epoch, Seq: d.seq})
		}
	}
	w.mu.Unlock()
	if len(marks) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopSaveTimeout)
	defer cancel()
	if err := w.s.store.saveMarks(ctx, marks); err != nil {
		w.s.log.Warn("save citizen marks at stop: the next worker may send the last changes again", "subscription_id", w.id, "err", err)
	}
}

// storeBackoff is the wait before the n-th retry (from 0) of a store write that failed: 1 s doubling to a
// minute.
func storeBackoff(n int) time.Duration {
	return min(time.Second<<min(n, 6), time.Minute)
}

// saveMarks records citizen marks; a mark never moves back within its consumer's incarnation.
func (s *sqlStore) saveMarks(ctx context.Context, marks []citizenMark) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO citizen_marks (subscription_id, citizen_key, consumer_epoch, stream_seq)
			VALUES (?, ?, ?, ?) ON CONFLICT (subscription_id, citizen_key) DO UPDATE
			SET consumer_epoch = excluded.consumer_epoch, stream_seq = excluded.stream_seq
			WHERE citizen_marks.consumer_epoch < excluded.consumer_epoch
				OR (citizen_marks.consumer_epoch = excluded.consumer_epoch AND citizen_marks.stream_seq < excluded.stream_seq)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range marks {
			if _, err := stmt.ExecContext(ctx, m.Subscription, m.Citizen, m.Epoch, int64(m.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// citizenMarks returns a subscription's marks of the consumer created at epoch that lie above floor, by
// citizen (the handled floor under floorCitizen).
func (s *sqlStore) citizenMarks(ctx context.Context, sub string, epoch int64, floor uint64) (map[string]uint64, error) {
	type row struct {
		citizen string
		seq     int64
	}
	rows, err := store.Query(ctx, s.db, `SELECT citizen_key, stream_seq FROM citizen_marks
		WHERE subscription_id = ? AND consumer_epoch = ? AND stream_seq > ?`, []any{sub, epoch, int64(floor)},
		func(sc store.Scanner) (row, error) {
			var r row
			return r, sc.Scan(&r.citizen, &r.seq)
		})
	if err != nil {
		return nil, err
	}
	marks := make(map[string]uint64, len(rows))
	for _, r := range rows {
		marks[r.citizen] = uint64(r.seq)
	}
	return marks, nil
}

// pruneMarks deletes a subscription's marks that no worker attached to the consumer created at epoch can
// need: those of older incarnations, and citizens' marks at or below the handled floor.
func (s *sqlStore) pruneMarks(ctx context.Context, sub string, epoch int64, floor uint64) error {
	_, err := s.db.Write.ExecContext(ctx, `DELETE FROM citizen_marks WHERE subscription_id = ?
		AND (consumer_epoch < ? OR (consumer_epoch = ? AND citizen_key <> ? AND stream_seq <= ?))`,
		sub, epoch, epoch, floorCitizen, int64(floor))
	return err
}
