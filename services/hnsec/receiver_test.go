package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/systemtoken"
)

// receiver is a subscriber's webhook endpoint for tests. It checks every call as a subscriber would: the
// SystemToken with pkg/systemtoken against the server's JWKS, the signature with the Standard Webhooks
// library. Calls that fail a check are answered 401 and counted as rejected; the others are answered as
// respond says and recorded.
type receiver struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	verifier *systemtoken.Verifier
	webhook  *standardwebhooks.Webhook
	xAuth    bool
	respond  func(call int, d delivery) (status int, header http.Header)
	calls    []delivery      // every checked call, in arrival order
	got      []delivery      // the calls answered 2xx, in arrival order
	rejected []string        // why calls were refused
	tokens   map[string]bool // the SystemTokens seen
	last     *http.Request
	lastBody []byte
}

// delivery is one call as the receiver saw it.
type delivery struct {
	ID      string // webhook-id
	EventID string // the CloudEvent's id
	Fnr     string
	Seq     int64 // endringsnummer: the change's position in the change stream
	At      time.Time
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t, respond: func(int, delivery) (int, http.Header) { return http.StatusNoContent, nil }, tokens: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// expect makes the receiver check calls for a subscriber and a subscription's secret.
func (r *receiver) expect(base, issuer, subscriber, secret string, xAuth bool) {
	v, err := systemtoken.NewVerifier(context.Background(), systemtoken.Config{JWKSURL: base + "/sts/.well-known/jwks.json", Issuer: issuer,
		Audience: subscriber, RequiredScopes: []string{scope.PVKReplication}})
	require.NoError(r.t, err)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(r.t, err)
	r.mu.Lock()
	r.verifier, r.webhook, r.xAuth = v, wh, xAuth
	r.mu.Unlock()
}

// setRespond changes how the receiver answers.
func (r *receiver) setRespond(f func(call int, d delivery) (int, http.Header)) {
	r.mu.Lock()
	r.respond = f
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	verifier, wh, xAuth, respond := r.verifier, r.webhook, r.xAuth, r.respond
	r.mu.Unlock()
	reject := func(why string) {
		r.mu.Lock()
		r.rejected = append(r.rejected, why)
		r.mu.Unlock()
		http.Error(w, why, http.StatusUnauthorized)
	}
	header := "Authorization"
	if xAuth {
		header = "X-Authorization"
	}
	tok, ok := strings.CutPrefix(req.Header.Get(header), "Bearer ")
	if !ok || verifier == nil {
		reject("no SystemToken in " + header)
		return
	}
	if _, err := verifier.Verify(req.Context(), tok); err != nil {
		reject(err.Error())
		return
	}
	if err := wh.Verify(body, req.Header); err != nil {
		reject(err.Error())
		return
	}
	var ev struct {
		ID             string `json:"id"`
		Endringsnummer int64  `json:"endringsnummer"`
		Data           struct {
			Fnr string `json:"innbyggerFnr"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || req.Header.Get("Content-Type") != "application/cloudevents+json" {
		reject("not a CloudEvent")
		return
	}
	d := delivery{ID: req.Header.Get("webhook-id"), EventID: ev.ID, Fnr: ev.Data.Fnr, Seq: ev.Endringsnummer, At: time.Now()}
	r.mu.Lock()
	r.calls = append(r.calls, d)
	r.tokens[tok] = true
	call := len(r.calls)
	r.mu.Unlock()
	status, extra := respond(call, d)
	r.mu.Lock()
	if status/100 == 2 {
		r.got = append(r.got, d)
	}
	r.last, r.lastBody = req, body
	r.mu.Unlock()
	for k, v := range extra {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

// delivered returns the deliveries answered 2xx so far.
func (r *receiver) delivered() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor waits until the receiver has taken n distinct changes.
func (r *receiver) waitFor(n int, within time.Duration) []delivery {
	r.t.Helper()
	ok := assert.Eventually(r.t, func() bool { return len(distinct(r.delivered())) >= n }, within, 10*time.Millisecond)
	if !ok {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.t.Fatalf("the receiver took %d distinct changes, want %d (%d calls, rejected: %q)", len(distinct(r.got)), n, len(r.calls), r.rejected)
	}
	return r.delivered()
}

// distinct drops repeated deliveries of a change (same webhook-id), keeping the first.
func distinct(ds []delivery) []delivery {
	seen := map[string]bool{}
	var out []delivery
	for _, d := range ds {
		if !seen[d.ID] {
			seen[d.ID] = true
			out = append(out, d)
		}
	}
	return out
}

// requireCitizenOrder checks that, after de-duplication by webhook-id, each citizen's changes arrived in
// increasing endringsnummer order and that webhook-id is the CloudEvent id.
func requireCitizenOrder(t testing.TB, ds []delivery) {
	t.Helper()
	last := map[string]int64{}
	for _, d := range distinct(ds) {
		require.Equal(t, d.EventID, d.ID, "webhook-id is the change id")
		if d.Seq <= last[d.Fnr] {
			var seqs []int64
			for _, e := range distinct(ds) {
				if e.Fnr == d.Fnr {
					seqs = append(seqs, e.Seq)
				}
			}
			t.Fatalf("a citizen's endringsnummer went backwards: %d after %d; the citizen's changes in arrival order: %v", d.Seq, last[d.Fnr], seqs)
		}
		last[d.Fnr] = d.Seq
	}
}
