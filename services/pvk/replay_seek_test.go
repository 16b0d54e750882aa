package pvk

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/natsbus"
)

// seekFaults makes the fail-th GetMsg (from 1) time out, as during a stream leader election.
type seekFaults struct {
	jetstream.Stream
	calls, fail int
}

func (s *seekFaults) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	if s.calls++; s.calls == s.fail {
		return nil, nats.ErrTimeout
	}
	return s.Stream.GetMsg(ctx, seq, opts...)
}

// A replay from an endringsnummer starts at the first change that has it or a later one, also when the
// search lands on deleted messages and across changes written before the endringsnummer existed (their
// data.sekvensnummer was the stream position then); when the stream cannot be read the replay fails
// rather than start later and skip changes.
func TestReplaySeekNeverStartsLater(t *testing.T) {
	ctx := context.Background()
	bus, err := natsbus.Open(natsbus.Config{DataDir: t.TempDir(), Name: "seek-test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	js, err := jetstream.New(bus.Conn)
	require.NoError(t, err)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SEEK", Subjects: []string{"seek.*"}})
	require.NoError(t, err)
	for i := 1; i <= 20; i++ { // stream sequence i holds endringsnummer 10*i
		event := fmt.Appendf(nil, `{"endringsnummer":%d,"data":{"sekvensnummer":%d}}`, 10*i, 1+i%2)
		if i <= 9 { // written before the endringsnummer
			event = fmt.Appendf(nil, `{"data":{"sekvensnummer":%d}}`, 10*i)
		}
		_, err := js.Publish(ctx, fmt.Sprintf("seek.%d", i%3), event)
		require.NoError(t, err)
	}
	for _, seq := range []uint64{5, 6, 7, 12} {
		require.NoError(t, st.DeleteMsg(ctx, seq))
	}
	// firstFrom is the first message a consumer starting at seq gets.
	firstFrom := func(seq uint64) uint64 {
		for ; seq <= 20; seq++ {
			if _, err := st.GetMsg(ctx, seq); err == nil {
				return seq
			}
		}
		return 21
	}
	tests := []struct {
		want  int64
		first uint64
	}{
		{0, 1}, {10, 1}, {11, 2}, {35, 4}, {40, 4}, {41, 8}, {55, 8}, {110, 11}, {115, 13}, {200, 20}, {201, 21},
	}
	for _, tt := range tests {
		seq, err := seekEndringsnummer(ctx, st, "seek.*", tt.want)
		require.NoError(t, err, "from %d", tt.want)
		require.Equal(t, tt.first, firstFrom(seq), "from endringsnummer %d the replay starts at stream sequence %d", tt.want, seq)
	}
	for fail := 1; fail <= 5; fail++ { // the search from 35 reads 5 times or more
		_, err := seekEndringsnummer(ctx, &seekFaults{Stream: st, fail: fail}, "seek.*", 35)
		require.ErrorIs(t, err, nats.ErrTimeout, "read %d failed: no start", fail)
	}
}
