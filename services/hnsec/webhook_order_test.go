package main

import (
	"net/http"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireNeverBackwards checks every delivery a receiver took, without de-duplicating, in the order the
// calls arrived: no citizen's change arrived after a newer change of the same citizen. A change may come
// again (the same webhook-id, after a crash) only while it is the citizen's newest. (A call in flight when
// the dispatcher died can still be answered after the next replica's calls: the receiver's handler ran on.
// It arrived first, and its repeat is a duplicate by webhook-id.)
func requireNeverBackwards(t testing.TB, ds []delivery) {
	t.Helper()
	ds = slices.Clone(ds)
	slices.SortStableFunc(ds, func(a, b delivery) int { return a.At.Compare(b.At) })
	last := map[string]delivery{}
	for _, d := range ds {
		if l, ok := last[d.Fnr]; ok && (d.Seq < l.Seq || (d.Seq == l.Seq && d.ID != l.ID)) {
			var seqs []int64
			for _, e := range ds {
				if e.Fnr == d.Fnr {
					seqs = append(seqs, e.Seq)
				}
			}
			t.Fatalf("a citizen's change arrived after a newer one: endringsnummer %d after %d; the citizen's deliveries in arrival order: %v",
				d.Seq, l.Seq, seqs)
		}
		last[d.Fnr] = d
	}
}

// firstArrivals keeps each change's first arrival (by webhook-id), in arrival order: what a receiver that
// drops duplicates by webhook-id, as the README asks, acts on.
func firstArrivals(ds []delivery) []delivery {
	ds = slices.Clone(ds)
	slices.SortStableFunc(ds, func(a, b delivery) int { return a.At.Compare(b.At) })
	seen := map[string]bool{}
	return slices.DeleteFunc(ds, func(d delivery) bool {
		dup := seen[d.ID]
		seen[d.ID] = true
		return dup
	})
}

// slowNowAndThen answers 200, but every fiftieth call only after a pause: that citizen's lane waits while
// the others go on, so the consumer's ack floor trails the changes delivered (as with any slow receiver).
func slowNowAndThen(call int, _ delivery) (int, http.Header) {
	if call%50 == 0 {
		time.Sleep(400 * time.Millisecond)
	}
	return http.StatusOK, nil
}

// The server is killed (kill -9) and later stopped (its worker hands the subscription over) while changes
// are written and delivered and the ack floor trails the deliveries: every committed change arrives, and
// no receiver ever gets an older change of a citizen after a newer one, not even a repeat.
func TestWebhookRestartsNeverSendAnOlderChange(t *testing.T) {
	dir := t.TempDir()
	srv, cmd := childServer(t, dir, webhookChildArgs...)
	tok := srv.token(t)
	rcv := newReceiver(t)
	rcv.setRespond(slowNowAndThen)
	status, created := srv.postJSON(t, "/pvk/v1/subscriptions", tok, map[string]any{"webhook": map[string]any{"url": rcv.srv.URL + "/pvk"}})
	require.Equal(t, http.StatusOK, status, "%v", created)
	rcv.expect(srv.base, "sikkerhet.helsenorge.no", srv.dev.ClientID, created["webhookSecret"].(string), false)

	for _, sig := range []os.Signal{syscall.SIGKILL, os.Interrupt, nil} {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.writeUntil(t, tok, 800, stop)
		}()
		time.Sleep(time.Second)
		if sig == nil {
			close(stop)
			<-done
			break
		}
		cmd.Signal(sig)
		<-done
		srv, cmd = childServer(t, dir, webhookChildArgs...)
		tok = srv.token(t)
	}
	committed, _ := pvkCounts(t, dir)
	rcv.waitFor(int(committed), 60*time.Second)
	time.Sleep(500 * time.Millisecond) // whatever comes again has come
	got := rcv.delivered()
	requireNeverBackwards(t, got)
	seqs := map[int64]bool{}
	for _, d := range got {
		seqs[d.Seq] = true
	}
	for seq := int64(1); seq <= committed; seq++ {
		require.True(t, seqs[seq], "endringsnummer %d never arrived", seq)
	}
	t.Logf("%d changes, %d deliveries", committed, len(got))
}
