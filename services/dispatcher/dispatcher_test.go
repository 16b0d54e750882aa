package dispatcher

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hnsec/hnsec/pkg/ssrf"
)

// The address rules apply when dialling: a receiver whose name resolves to a refused address (as after DNS
// rebinding) is never called, and the attempt is classed address_refused.
func TestSenderChecksTheAddressWhenDialling(t *testing.T) {
	called := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { called = true }))
	defer srv.Close()
	wh, err := standardwebhooks.NewWebhook("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	tgt := &target{ID: "s", Subscriber: "c", URL: srv.URL, signers: []*standardwebhooks.Webhook{wh}}
	c := change{ChangeID: "id", Payload: []byte(`{}`)}

	refusing := newSender(ssrf.Policy{}, time.Second)
	if r := refusing.send(context.Background(), tgt, c, "token"); r.Class != classAddressRefused || called {
		t.Fatalf("refused address: class %q, called %t", r.Class, called)
	}
	allowing := newSender(ssrf.Policy{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, time.Second)
	if r := allowing.send(context.Background(), tgt, c, "token"); r.Class != "" || r.StatusCode != http.StatusOK || !called {
		t.Fatalf("allowed address: %+v, called %t", r, called)
	}
}

func TestSenderClassifiesAnswers(t *testing.T) {
	tests := []struct {
		status     int
		header     string
		class      string
		retryAfter time.Duration
	}{
		{200, "", "", 0},
		{204, "", "", 0},
		{302, "", classRedirect, 0},
		{400, "", classClientError, 0},
		{410, "", classGone, 0},
		{429, "7", classTooManyRequests, 7 * time.Second},
		{429, "soon", classTooManyRequests, 0},
		{500, "", classServerError, 0},
		{503, "2", classServerError, 2 * time.Second},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if tt.header != "" {
				w.Header().Set("Retry-After", tt.header)
			}
			if tt.status == 302 {
				w.Header().Set("Location", "/elsewhere")
			}
			w.WriteHeader(tt.status)
		}))
		s := newSender(ssrf.Policy{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, time.Second)
		r := s.send(context.Background(), &target{URL: srv.URL}, change{ChangeID: "id", Payload: []byte(`{}`)}, "token")
		srv.Close()
		if r.Class != tt.class || r.RetryAfter != tt.retryAfter || r.StatusCode != tt.status {
			t.Errorf("%d %q: got %+v, want class %q retry after %s", tt.status, tt.header, r, tt.class, tt.retryAfter)
		}
	}
	// A receiver slower than the timeout.
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(300 * time.Millisecond) }))
	defer slow.Close()
	s := newSender(ssrf.Policy{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, 50*time.Millisecond)
	if r := s.send(context.Background(), &target{URL: slow.URL}, change{ChangeID: "id", Payload: []byte(`{}`)}, "token"); r.Class != classTimeout {
		t.Errorf("slow receiver: class %q, want %q", r.Class, classTimeout)
	}
}

func TestScheduleFlag(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "5s,30s,2m", want: "5s,30s,2m0s"},
		{in: "10ms", want: "10ms"},
		{in: "5s,,1m", err: `want comma-separated positive durations, got ""`},
		{in: "5s,-1s", err: `want comma-separated positive durations, got "-1s"`},
		{in: "often", err: `want comma-separated positive durations, got "often"`},
	}
	for _, tt := range tests {
		var s Schedule
		err := s.Set(tt.in)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("Set(%q) = %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || s.String() != tt.want):
			t.Errorf("Set(%q) = %q, %v; want %q", tt.in, s.String(), err, tt.want)
		}
	}
}

func TestBreakerTripsAfterFailuresSpanningThePeriod(t *testing.T) {
	var b breaker
	t0 := time.Unix(1000, 0)
	for i := range 4 {
		if b.record(false, t0.Add(time.Duration(i)*time.Minute), 3, 5*time.Minute) {
			t.Fatalf("tripped after %d failures within %d minutes", i+1, i)
		}
	}
	if b.record(true, t0.Add(5*time.Minute), 3, 5*time.Minute) {
		t.Fatal("a success trips nothing")
	}
	for i := range 6 {
		tripped := b.record(false, t0.Add(time.Duration(6+i)*time.Minute), 3, 5*time.Minute)
		if want := i == 5; tripped != want {
			t.Fatalf("failure %d after the success: tripped %t, want %t", i+1, tripped, want)
		}
	}
}
