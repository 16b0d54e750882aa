package pvk

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hnsec/hnsec/pkg/apierr"
)

// streamSeqOf finds where a replay from an endringsnummer starts (see seekEndringsnummer). When the stream
// cannot be read it fails with Unavailable rather than start anywhere else: a replay that started later
// would silently skip changes.
func (s *Subscriptions) streamSeqOf(ctx context.Context, want int64) (uint64, error) {
	st, err := s.pvk.relay.js.Stream(ctx, s.pvk.relay.names.stream)
	if err == nil {
		var seq uint64
		if seq, err = seekEndringsnummer(ctx, st, s.pvk.relay.names.subjects+"*", want); err == nil {
			return seq, nil
		}
	}
	s.pvk.log.Warn("replay: find the start in the change stream", "err", err)
	return 0, apierr.WithCode(apierr.Unavailable, codeSubscription, "the change stream could not be read; try the replay again")
}

// seekEndringsnummer returns the stream sequence of the first message (on subjects) whose endringsnummer is
// at least want, or the sequence after the last when there is none: the stream is in endringsnummer order,
// so a binary search over stream sequences finds it. A probe that lands on a deleted message reads the
// first message after it instead; any other failure to read ends the search with the error.
func seekEndringsnummer(ctx context.Context, st jetstream.Stream, subjects string, want int64) (uint64, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := st.GetMsg(ctx, mid)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Deleted: the first message after it stands for it (the answer is no later than that one).
			m, err = st.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(subjects))
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Sequence >= hi):
				hi = mid // nothing from mid on (below hi): the answer is before mid or mid itself
				continue
			case err != nil:
				return 0, err
			}
			if eventOf(m.Data).position() < want {
				lo = m.Sequence + 1
			} else {
				hi = mid
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if eventOf(m.Data).position() < want {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}
