package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/services/dispatcher"
)

// newWebhookServer starts a dev server whose webhooks may call loopback over http as `make run`'s do
// (devWebhookDefaults), retrying on a schedule of milliseconds.
func newWebhookServer(t *testing.T, mods ...func(*serveConfig)) *testServer {
	return newTestServer(t, append([]func(*serveConfig){func(c *serveConfig) {
		devWebhookDefaults(c)
		c.Dispatcher.Schedule = dispatcher.Schedule{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond}
		c.Dispatcher.RetryTick = 10 * time.Millisecond
	}}, mods...)...)
}

// subscribe creates a webhook subscription to the receiver as the dev client and lets the receiver check
// its calls; it returns the subscription id.
func (s *testServer) subscribe(tok string, rcv *receiver, xAuth bool, filters map[string]any) string {
	s.t.Helper()
	r := s.subCall(http.MethodPost, "", tok, map[string]any{"filters": filters,
		"webhook": map[string]any{"url": rcv.srv.URL + "/pvk", "useXAuthorization": xAuth}})
	require.Equal(s.t, http.StatusOK, r.status, "%s", r.raw)
	secret := r.body["webhookSecret"].(string)
	require.True(s.t, strings.HasPrefix(secret, "whsec_"))
	rcv.expect(s.base, s.cfg.STS.Issuer, s.dev.ClientID, secret, xAuth)
	return r.body["subscription"].(map[string]any)["subscriptionId"].(string)
}

// writeChanges writes changes for citizens citizens (from first), each toggled rounds times, concurrently
// across citizens; it returns how many changes were made.
func (s *testServer) writeChanges(tok string, first, citizens, rounds int) int {
	s.t.Helper()
	var wg sync.WaitGroup
	for c := range citizens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(validFnr(first+c), i%2 == 0))
				require.Equal(s.t, "endret", r.body["instansEndret"], "%s", r.raw)
			}
		}()
	}
	wg.Wait()
	return citizens * rounds
}

func TestWebhookDeliversSignedChangesInCitizenOrder(t *testing.T) {
	for _, xAuth := range []bool{false, true} {
		t.Run(fmt.Sprintf("xAuthorization=%t", xAuth), func(t *testing.T) {
			s := newWebhookServer(t)
			tok := s.token()
			rcv := newReceiver(t)
			id := s.subscribe(tok, rcv, xAuth, nil)
			// A second subscriber's filter matches none of these changes: it is called for none.
			other := newReceiver(t)
			s.subscribe(tok, other, false, map[string]any{"partKoder": []string{"ANNEN"}})

			n := s.writeChanges(tok, 100, 4, 5)
			got := rcv.waitFor(n, 10*time.Second)
			requireCitizenOrder(t, got)
			rcv.mu.Lock()
			require.Empty(t, rcv.rejected, "every call passes the receiver's checks")
			require.Len(t, rcv.calls, n, "each change once when the receiver takes it at once")
			require.Len(t, rcv.tokens, 1, "one SystemToken, cached, for every call")
			last, body := rcv.last, rcv.lastBody
			rcv.mu.Unlock()
			require.Empty(t, other.delivered())

			// The Standard Webhooks library refuses a tampered body and a signature by another secret.
			rotated := s.subCall(http.MethodPost, "/"+id+":rotateSecret", tok, map[string]any{})
			require.Equal(t, http.StatusOK, rotated.status, "%s", rotated.raw)
			wh, err := standardwebhooks.NewWebhook(rotated.body["webhookSecret"].(string))
			require.NoError(t, err)
			require.Error(t, wh.Verify(body, last.Header), "a new secret did not sign the old call")
			rcv.mu.Lock()
			tampered := bytes.Replace(body, []byte(`"aktiv":`), []byte(`"aktiv": `), 1)
			require.ErrorIs(t, rcv.webhook.Verify(tampered, last.Header), standardwebhooks.ErrNoMatchingSignature)
			require.NoError(t, rcv.webhook.Verify(body, last.Header))
			rcv.mu.Unlock()

			// After the rotation both secrets sign: receivers still on the old one and those on the new one
			// both accept the next call.
			time.Sleep(200 * time.Millisecond) // the dispatcher reloads the subscription on PVK's change event
			s.writeChanges(tok, 190, 1, 1)
			rcv.waitFor(n+1, 5*time.Second)
			rcv.mu.Lock()
			require.Empty(t, rcv.rejected, "the old secret still verifies")
			require.NoError(t, wh.Verify(rcv.lastBody, rcv.last.Header), "the new secret verifies too")
			require.Len(t, strings.Fields(rcv.last.Header.Get("webhook-signature")), 2)
			rcv.mu.Unlock()

			// The delivery log shows each attempt, without payload.
			n++
			// The log is written beside the deliveries: wait until it holds every change, paging through it.
			var first response
			require.Eventually(t, func() bool {
				seen := map[string]bool{}
				for page := s.subCall(http.MethodGet, "/"+id+"/deliveries?pageSize=5", tok, nil); ; {
					require.Equal(t, http.StatusOK, page.status, "%s", page.raw)
					if len(seen) == 0 {
						first = page
					}
					for _, x := range page.body["attempts"].([]any) {
						seen[x.(map[string]any)["changeId"].(string)] = true
					}
					next := page.body["nextPageToken"].(string)
					if next == "" {
						break
					}
					page = s.subCall(http.MethodGet, "/"+id+"/deliveries?pageSize=5&pageToken="+next, tok, nil)
				}
				return len(seen) == n
			}, 5*time.Second, 20*time.Millisecond, "paging walks the whole log")
			attempts := first.body["attempts"].([]any)
			require.Len(t, attempts, 5)
			a := attempts[0].(map[string]any)
			require.Equal(t, float64(204), a["statusCode"])
			require.Equal(t, "", a["errorClass"])
			require.Equal(t, float64(1), a["attempt"])
			require.NotContains(t, first.raw, validFnr(100))
			require.NotContains(t, s.logs.String(), validFnr(100), "no fnr in the logs")
		})
	}
}

// One citizen's calls hang for a second; the other citizens' changes arrive meanwhile, and the slow
// citizen's still in order.
func TestWebhookSlowCitizenHoldsUpOnlyItself(t *testing.T) {
	s := newWebhookServer(t)
	tok := s.token()
	rcv := newReceiver(t)
	slow := validFnr(600)
	rcv.setRespond(func(_ int, d delivery) (int, http.Header) {
		if d.Fnr == slow {
			time.Sleep(time.Second)
		}
		return http.StatusOK, nil
	})
	s.subscribe(tok, rcv, false, nil)
	start := time.Now()
	n := s.writeChanges(tok, 600, 5, 3)
	got := rcv.waitFor(n-3, 5*time.Second)
	others := 0
	for _, d := range got {
		if d.Fnr != slow {
			others++
		}
	}
	require.Equal(t, n-3, others, "every other citizen's changes")
	require.Less(t, time.Since(start), 2*time.Second, "before the slow citizen's three calls (3 s)")
	requireCitizenOrder(t, rcv.waitFor(n, 10*time.Second))
}

func TestWebhookRetriesUntilTheReceiverRecovers(t *testing.T) {
	s := newWebhookServer(t, func(c *serveConfig) {
		c.Dispatcher.Schedule = dispatcher.Schedule{10 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond,
			20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	})
	tok := s.token()
	rcv := newReceiver(t)
	// 500 for the first 12 calls, then one 429 asking for a second's patience, then 200.
	var limited delivery
	rcv.setRespond(func(call int, d delivery) (int, http.Header) {
		switch {
		case call <= 12:
			return http.StatusInternalServerError, nil
		case call == 13:
			limited = d
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	})
	s.subscribe(tok, rcv, false, nil)
	n := s.writeChanges(tok, 200, 3, 4)
	got := rcv.waitFor(n, 20*time.Second)
	requireCitizenOrder(t, got)

	rcv.mu.Lock()
	calls := rcv.calls
	rcv.mu.Unlock()
	require.Greater(t, len(calls), n, "failed calls were repeated")
	ids := map[string]int{}
	for _, c := range calls {
		ids[c.ID]++
		require.Equal(t, c.EventID, c.ID, "every attempt of a change carries its id")
	}
	require.Len(t, ids, n, "retries repeat the same webhook-id: nothing else arrives")
	// The 429's Retry-After held that change back a second, though the schedule's waits are milliseconds.
	for _, c := range calls {
		if c.ID == limited.ID && c.At.After(limited.At) {
			require.GreaterOrEqual(t, c.At.Sub(limited.At), 900*time.Millisecond)
			break
		}
	}
}

func TestWebhookDeadLettersAndReplay(t *testing.T) {
	s := newWebhookServer(t)
	tok := s.token()
	rcv := newReceiver(t)
	rcv.setRespond(func(int, delivery) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	id := s.subscribe(tok, rcv, false, nil)
	before := time.Now().UTC()
	n := s.writeChanges(tok, 300, 2, 3)

	// Down past the schedule: 1 + 3 attempts each, then every change is a dead letter.
	var dead []any
	require.Eventually(t, func() bool {
		r := s.subCall(http.MethodGet, "/"+id+"/dead-letters", tok, nil)
		dead = r.body["deadLetters"].([]any)
		return len(dead) == n
	}, 10*time.Second, 20*time.Millisecond)
	d := dead[0].(map[string]any)
	require.Equal(t, float64(4), d["attempts"])
	require.Equal(t, "http_5xx", d["lastErrorClass"])
	require.Equal(t, float64(503), d["lastStatusCode"])
	require.Empty(t, rcv.delivered())

	bad := []struct {
		name   string
		body   map[string]any
		status int
		code   string
		msg    string
	}{
		{"neither", map[string]any{}, 400, "EPVK-100070", "name exactly one of changeId and since"},
		{"both", map[string]any{"changeId": d["changeId"], "since": before.Format(time.RFC3339Nano)}, 400, "EPVK-100070",
			"name exactly one of changeId and since"},
	}
	for _, tt := range bad {
		r := s.subCall(http.MethodPost, "/"+id+"/dead-letters:replay", tok, tt.body)
		require.Equal(t, tt.status, r.status, tt.name)
		require.Equal(t, tt.code, r.body["code"], tt.name)
		require.Equal(t, tt.msg, r.body["message"], tt.name)
	}

	// The receiver is back: one dead letter by id, then every one since the outage began.
	rcv.setRespond(func(int, delivery) (int, http.Header) { return http.StatusOK, nil })
	r := s.subCall(http.MethodPost, "/"+id+"/dead-letters:replay", tok, map[string]any{"changeId": d["changeId"]})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Equal(t, float64(1), r.body["replayed"])
	rcv.waitFor(1, 5*time.Second)
	r = s.subCall(http.MethodPost, "/"+id+"/dead-letters:replay", tok, map[string]any{"since": before.Format(time.RFC3339Nano)})
	require.Equal(t, float64(n-1), r.body["replayed"])
	got := rcv.waitFor(n, 10*time.Second)
	require.Len(t, distinct(got), n)
	require.Empty(t, s.subCall(http.MethodGet, "/"+id+"/dead-letters", tok, nil).body["deadLetters"])
}

func TestWebhookGoneAndCircuitBreakerDisable(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		reason  string
		metric  string
		breaker int
	}{
		{"410 Gone", http.StatusGone, "the receiver answered 410 Gone", `hnsec_dispatcher_subscriptions_disabled_total{reason="gone"} 1`, 50},
		{"breaker", http.StatusBadGateway, "5 consecutive failed calls over 0s", `hnsec_dispatcher_subscriptions_disabled_total{reason="breaker"} 1`, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newWebhookServer(t, func(c *serveConfig) {
				c.Dispatcher.BreakerFailures, c.Dispatcher.BreakerPeriod = tt.breaker, 0
				c.Dispatcher.Schedule = dispatcher.Schedule{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond,
					10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
			})
			tok := s.token()
			rcv := newReceiver(t)
			rcv.setRespond(func(int, delivery) (int, http.Header) { return tt.status, nil })
			id := s.subscribe(tok, rcv, false, nil)
			n := s.writeChanges(tok, 400, 1, 2)

			var sub map[string]any
			require.Eventually(t, func() bool {
				sub = s.subCall(http.MethodGet, "/"+id, tok, nil).body["subscription"].(map[string]any)
				return sub["status"] == "SUBSCRIPTION_STATUS_DISABLED"
			}, 10*time.Second, 20*time.Millisecond)
			require.Equal(t, tt.reason, sub["statusReason"])
			require.Contains(t, s.metricsText(), tt.metric)
			rcv.mu.Lock()
			calls := len(rcv.calls)
			rcv.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
			rcv.mu.Lock()
			require.Equal(t, calls, len(rcv.calls), "a disabled subscription is not called")
			rcv.mu.Unlock()

			// Re-enabled, it resumes where it stopped: every change arrives.
			rcv.setRespond(func(int, delivery) (int, http.Header) { return http.StatusOK, nil })
			r := s.subCall(http.MethodPost, "/"+id+":resume", tok, map[string]any{})
			require.Equal(t, "SUBSCRIPTION_STATUS_ACTIVE", r.body["subscription"].(map[string]any)["status"], "%s", r.raw)
			requireCitizenOrder(t, rcv.waitFor(n, 10*time.Second))

			// The audit trail tells who did what, and why the dispatcher disabled it.
			events := s.subCall(http.MethodGet, "/"+id+"/events", tok, nil).body["events"].([]any)
			var trail []string
			for _, e := range events {
				ev := e.(map[string]any)
				trail = append(trail, fmt.Sprintf("%s %s %s", ev["actor"], ev["action"], ev["reason"]))
			}
			require.Equal(t, []string{s.dev.ClientID + " created ", "dispatcher disabled " + tt.reason, s.dev.ClientID + " resumed "}, trail)
		})
	}
}
