package dispatcher

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	dispatcherv1 "github.com/hnsec/hnsec/gen/hnsec/dispatcher/v1"
)

// The consumer skips two messages (handed to a pull request that died) and reading them from the stream
// fails for a while (a NATS leader election): the worker delivers them all the same, before the citizen's
// newer change, and none is lost.
func TestFailedGapFillLosesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	x := h.publish("X") // stream sequence 1: the worker is attached and expects 2
	h.rcv.waitForIDs(t, []string{x}, 10*time.Second)

	var failing atomic.Bool
	failing.Store(true)
	h.faults.setDrop(func(seq, delivered uint64) bool { return (seq == 2 || seq == 3) && delivered == 1 })
	h.faults.setGetMsg(func(seq uint64) error {
		if failing.Load() && (seq == 2 || seq == 3) {
			return nats.ErrTimeout
		}
		return nil
	})
	a := []string{h.publish("A"), h.publish("A"), h.publish("A")} // 2 and 3 skipped, 4 handed out
	time.Sleep(1500 * time.Millisecond)                           // past the ack wait: 2 and 3 come again
	failing.Store(false)

	got := h.rcv.waitForIDs(t, append([]string{x}, a...), 15*time.Second)
	requireNeverBackwards(t, got)
	require.Equal(t, a, uniq(citizenIDs(got, "A")), "A's changes in order, none lost")
}

// A worker attaches again while a slow citizen holds the ack floor below changes already delivered (and
// acknowledged out of order): after a consumer error, and after a restart of the replica (as at a lease
// handover, with nothing in memory). The receiver never sees an older change of a citizen after a newer
// one, nor any change twice (only a crash may repeat a citizen's newest change; services/hnsec's
// TestWebhookRestartsNeverSendAnOlderChange kills the process).
func TestAttachingAgainNeverSendsAnOlderChange(t *testing.T) {
	tests := []struct {
		name    string
		restart bool
	}{
		{"attach again after a consumer error", false},
		{"restart of the replica", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			release := make(chan struct{})
			t.Cleanup(func() {
				select {
				case <-release:
				default:
					close(release)
				}
			})
			h.rcv.setRespond(func(a arrival, call int) (int, http.Header) {
				if a.Citizen == "B" && call == 0 {
					<-release // B's first change hangs: the ack floor stays below A's changes
				}
				return http.StatusNoContent, nil
			})
			_, stop := h.start()
			b := h.publish("B")
			a := []string{h.publish("A"), h.publish("A"), h.publish("A")}
			h.rcv.waitForIDs(t, a, 10*time.Second)

			attaches := h.faults.attaches()
			if tt.restart {
				stop()
				h.start()
			} else {
				h.faults.breakConsumers()
			}
			require.Eventually(t, func() bool { return h.faults.attaches() > attaches }, 10*time.Second, 10*time.Millisecond,
				"the worker attaches again")
			close(release)
			a = append(a, h.publish("A"))
			got := h.rcv.waitForIDs(t, append([]string{b}, a...), 15*time.Second)
			time.Sleep(500 * time.Millisecond) // anything sent again has arrived
			got = h.rcv.taken()
			requireNeverBackwards(t, got)
			require.Equal(t, a, citizenIDs(got, "A"), "nothing sent again: the worker stopped, or attached again, without a crash")
		})
	}
}

// Dead letters replayed through another replica (one that does not run the subscription's worker) reach
// the worker: the citizen's next change queues behind the replayed one instead of overtaking it.
func TestReplayOnAnotherReplicaReachesTheWorker(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Schedule = Schedule{10 * time.Millisecond}
		c.RetryTick = 500 * time.Millisecond
	})
	var refuse atomic.Bool
	refuse.Store(true)
	h.rcv.setRespond(func(arrival, int) (int, http.Header) {
		if refuse.Load() {
			return http.StatusInternalServerError, nil
		}
		return http.StatusNoContent, nil
	})
	worker, _ := h.start()
	a1 := h.publish("A")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		dead, err := worker.store.deadLetters(context.Background(), h.sub, 0, "", 10)
		require.NoError(c, err)
		require.Len(c, dead, 1)
	}, 10*time.Second, 20*time.Millisecond, "a1 dies")
	refuse.Store(false)

	other := h.open() // another replica: it serves the API, the worker runs on the first
	resp, err := other.ReplayDeadLetters(context.Background(), &dispatcherv1.ReplayDeadLettersRequest{SubscriptionId: h.sub, ChangeId: a1})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GetReplayed())
	a2 := h.publish("A")

	got := h.rcv.waitForIDs(t, []string{a1, a2}, 10*time.Second)
	requireNeverBackwards(t, got)
	require.Equal(t, []string{a1, a2}, citizenIDs(got, "A"))
}

// A receiver that asks for time (429, or 503 with Retry-After) does not trip the circuit breaker, and its
// change waits as long as asked; 5xx without Retry-After still does trip it.
func TestBreakerHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   http.Header
		disabled bool
	}{
		{"429 with Retry-After", http.StatusTooManyRequests, http.Header{"Retry-After": {"3"}}, false},
		{"503 with Retry-After", http.StatusServiceUnavailable, http.Header{"Retry-After": {"3"}}, false},
		{"500", http.StatusInternalServerError, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.BreakerFailures, c.BreakerPeriod = 3, 0
				c.Schedule = Schedule{time.Hour}
			})
			h.rcv.setRespond(func(arrival, int) (int, http.Header) { return tt.status, tt.header })
			h.start()
			var ids []string
			for _, c := range []string{"A", "B", "C", "D", "E"} {
				ids = append(ids, h.publish(c))
			}
			if tt.disabled {
				require.EventuallyWithT(t, func(c *assert.CollectT) { require.Positive(c, h.pvk.disabledCount()) }, 10*time.Second,
					20*time.Millisecond, "the breaker trips")
				return
			}
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				for _, id := range ids {
					require.Positive(c, h.rcv.callsOf(id))
				}
			}, 10*time.Second, 20*time.Millisecond, "every change was tried")
			time.Sleep(time.Second)
			require.Zero(t, h.pvk.disabledCount(), "the breaker must not count calls answered with Retry-After")
			for _, id := range ids {
				require.Equal(t, 1, h.rcv.callsOf(id), "not tried again before Retry-After")
			}
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				for _, id := range ids {
					require.GreaterOrEqual(c, h.rcv.callsOf(id), 2)
				}
			}, 15*time.Second, 20*time.Millisecond, "tried again after Retry-After, not after the schedule's hour")
			require.Zero(t, h.pvk.disabledCount())
		})
	}
}

// The dispatcher's database refuses writes (disk full, a failover) while a parked change is retried: the
// receiver is not called again and again (delivered ones are not sent again; failed ones wait), and once
// the database writes again the change is settled.
func TestStoreThatCannotWriteDoesNotHotLoopTheReceiver(t *testing.T) {
	tests := []struct {
		name     string
		trigger  string // the write the database refuses
		schedule Schedule
		answer   func(call int) int
		settled  func(t *testing.T, h *harness, s *Server, id string)
	}{
		{name: "removing a delivered change", trigger: "DELETE", schedule: Schedule{20 * time.Millisecond, 20 * time.Millisecond},
			answer: func(call int) int {
				if call == 0 {
					return http.StatusInternalServerError
				}
				return http.StatusNoContent
			},
			settled: func(t *testing.T, h *harness, s *Server, id string) {
				require.EventuallyWithT(t, func(c *assert.CollectT) {
					n, err := s.store.waitingCount(context.Background(), h.sub)
					require.NoError(c, err)
					require.Zero(c, n)
				}, 15*time.Second, 50*time.Millisecond, "removed once the database writes")
				require.Equal(t, 2, h.rcv.callsOf(id), "delivered once, never sent again")
			}},
		{name: "recording a failed attempt", trigger: "UPDATE", schedule: Schedule{20 * time.Millisecond, time.Hour},
			answer: func(int) int { return http.StatusInternalServerError },
			settled: func(t *testing.T, h *harness, s *Server, id string) {
				require.EventuallyWithT(t, func(c *assert.CollectT) {
					p, err := s.store.head(context.Background(), h.sub, h.citizenKey("A"))
					require.NoError(c, err)
					require.Equal(c, 2, p.Attempts)
				}, 15*time.Second, 50*time.Millisecond, "the attempt is recorded once the database writes")
				calls := h.rcv.callsOf(id)
				time.Sleep(500 * time.Millisecond)
				require.Equal(t, calls, h.rcv.callsOf(id), "then it waits for the next attempt (in an hour)")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.Schedule = tt.schedule
			})
			h.rcv.setRespond(func(_ arrival, call int) (int, http.Header) { return tt.answer(call), nil })
			s, _ := h.start()
			_, err := s.store.db.Write.Exec(`CREATE TRIGGER refuse BEFORE ` + tt.trigger + ` ON parked BEGIN SELECT RAISE(ABORT, 'injected: the disk is full'); END`)
			require.NoError(t, err)
			id := h.publish("A")
			time.Sleep(2 * time.Second)
			calls := h.rcv.callsOf(id)
			require.LessOrEqual(t, calls, 4, "the receiver was called %d times in 2 s while the database refused writes", calls)
			_, err = s.store.db.Write.Exec(`DROP TRIGGER refuse`)
			require.NoError(t, err)
			tt.settled(t, h, s, id)
		})
	}
}

// citizenKey is the key the dispatcher orders a citizen's changes by.
func (h *harness) citizenKey(fnr string) string {
	c, _, err := parseChange([]byte(`{"id":"x","data":{"innbyggerFnr":"` + fnr + `"}}`))
	require.NoError(h.t, err)
	return c.CitizenKey
}

// A replay (PVK recreates the subscription's consumer from an earlier point) delivers the changes again:
// the marks of what was handled belong to the consumer they were made in.
func TestReplayedConsumerDeliversAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ids := []string{h.publish("A"), h.publish("B"), h.publish("A"), h.publish("A")}
	h.rcv.waitForIDs(t, ids, 10*time.Second)
	time.Sleep(3 * trimEvery) // the handled floor is on record

	ctx := context.Background()
	require.NoError(t, h.js.DeleteConsumer(ctx, testStream, "sub-"+h.sub))
	_, err := h.js.CreateOrUpdateConsumer(ctx, testStream, jetstream.ConsumerConfig{Durable: "sub-" + h.sub, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Second, MaxAckPending: 1000, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 2})
	require.NoError(t, err)
	ids = append(ids, h.publish("A"))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for i, id := range ids {
			want := 2
			if i == 0 || i == len(ids)-1 {
				want = 1 // before the replay's start; after the replay
			}
			require.Equal(c, want, len(citizenIDsOf(h.rcv.taken(), id)), "change %d", i)
		}
	}, 15*time.Second, 20*time.Millisecond)
	got := h.rcv.taken()
	require.Equal(t, []string{ids[0], ids[2], ids[3], ids[2], ids[3], ids[4]}, citizenIDs(got, "A"))
}

// citizenIDsOf returns the arrivals of one change.
func citizenIDsOf(got []arrival, id string) []arrival {
	var out []arrival
	for _, a := range got {
		if a.ID == id {
			out = append(out, a)
		}
	}
	return out
}
