package store

import (
	"context"
	"errors"
	"time"
)

// lingerSiblings is how large the previous batch must have been before a smaller one lingers for more.
const lingerSiblings = 8

// ErrClosed is returned by Batcher.Submit once the batcher has stopped.
var ErrClosed = errors.New("store: batcher stopped")

// Batcher is a group commit: concurrent Submit calls are gathered while the previous batch is being
// written, and each batch is applied in one transaction (one fsync), so durability costs one sync per
// batch rather than one per request. Submit returns only after its item's batch committed.
//
// Like PostgreSQL's commit_delay with commit_siblings, a batch may linger. Concurrent clients tend to move in
// step: a large batch commits, its submitters answer and come back one by one, and the first to return would
// otherwise be committed alone while the rest queue behind it (half the commits of a 32-connection load were
// of one item). So when the previous batch had at least lingerSiblings items and fewer than that are waiting
// now, the batcher waits up to the linger time for as many as the previous batch had. Under light load
// (small batches) nothing waits.
type Batcher[T any] struct {
	in       chan batchItem[T]
	apply    func(ctx context.Context, items []T) error
	max      int
	linger   time.Duration
	finished chan struct{}
}

type batchItem[T any] struct {
	v    T
	done chan error
}

// NewBatcher returns a batcher applying at most max items per call of apply, lingering up to linger for
// more when there is concurrency. Run must be running.
func NewBatcher[T any](max int, linger time.Duration, apply func(ctx context.Context, items []T) error) *Batcher[T] {
	return &Batcher[T]{in: make(chan batchItem[T], 4*max), apply: apply, max: max, linger: linger, finished: make(chan struct{})}
}

// Submit queues v and waits until the batch holding it is committed, returning apply's error.
func (b *Batcher[T]) Submit(ctx context.Context, v T) error {
	it := batchItem[T]{v: v, done: make(chan error, 1)}
	select {
	case b.in <- it:
	case <-b.finished:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		return err
	case <-b.finished:
		select {
		case err := <-it.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run writes batches until ctx ends, then writes what is still queued and returns.
func (b *Batcher[T]) Run(ctx context.Context) error {
	defer close(b.finished)
	items := make([]batchItem[T], 0, b.max)
	values := make([]T, 0, b.max)
	last := 0
	for {
		select {
		case it := <-b.in:
			items = b.fill(append(items[:0], it))
			if b.linger > 0 && last >= lingerSiblings && len(items) < last {
				items = b.wait(items, last)
			}
			last = len(items)
			b.commit(context.WithoutCancel(ctx), items, values)
		case <-ctx.Done():
			for {
				items = b.fill(items[:0])
				if len(items) == 0 {
					return nil
				}
				b.commit(context.WithoutCancel(ctx), items, values)
			}
		}
	}
}

// fill adds queued items without waiting, up to max.
func (b *Batcher[T]) fill(items []batchItem[T]) []batchItem[T] {
	for len(items) < b.max {
		select {
		case it := <-b.in:
			items = append(items, it)
		default:
			return items
		}
	}
	return items
}

// wait adds items arriving within the linger time, until there are target.
func (b *Batcher[T]) wait(items []batchItem[T], target int) []batchItem[T] {
	t := time.NewTimer(b.linger)
	defer t.Stop()
	for len(items) < target {
		select {
		case it := <-b.in:
			items = append(items, it)
		case <-t.C:
			return items
		}
	}
	return items
}

func (b *Batcher[T]) commit(ctx context.Context, items []batchItem[T], values []T) {
	values = values[:0]
	for _, it := range items {
		values = append(values, it.v)
	}
	err := b.apply(ctx, values)
	for _, it := range items {
		it.done <- err
	}
}
