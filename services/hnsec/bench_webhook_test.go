package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhookSink is the benchmark's receiver: it answers 204 at once and records, per subscription and
// citizen, when each distinct change arrived.
type webhookSink struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]bool                   // webhook-id of each subscription's changes
	got  map[string]map[string][]time.Time // subscription path -> fnr -> arrival of its n-th change
	n    int
}

func newWebhookSink(b *testing.B) *webhookSink {
	s := &webhookSink{seen: map[string]bool{}, got: map[string]map[string][]time.Time{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		at := time.Now()
		var ev struct {
			Data struct {
				Fnr string `json:"innbyggerFnr"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &ev)
		key := r.URL.Path + " " + r.Header.Get("webhook-id")
		s.mu.Lock()
		if !s.seen[key] {
			s.seen[key] = true
			if s.got[r.URL.Path] == nil {
				s.got[r.URL.Path] = map[string][]time.Time{}
			}
			s.got[r.URL.Path][ev.Data.Fnr] = append(s.got[r.URL.Path][ev.Data.Fnr], at)
			s.n++
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(s.srv.Close)
	return s
}

func (s *webhookSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// pacedWriter writes changes through REST: workers each own citizens and toggle them in turn; it records
// when each citizen's n-th change was sent, so the sink's n-th arrival for that citizen is the same change.
type pacedWriter struct {
	target benchTarget
	auth   string
	mu     sync.Mutex
	sent   map[string][]time.Time
	first  int
}

// run writes at rate changes/s (0: as fast as 16 connections go) for d and returns how many it wrote.
func (p *pacedWriter) run(rate float64, d time.Duration) int {
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	deadline := time.Now().Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			var tick <-chan time.Time
			if rate > 0 {
				t := time.NewTicker(time.Duration(float64(workers) / rate * float64(time.Second)))
				defer t.Stop()
				tick = t.C
			}
			for i := 0; time.Now().Before(deadline); i++ {
				if tick != nil {
					<-tick
				}
				fnr := validFnr(p.first + w*50 + i%50)
				p.mu.Lock()
				aktiv := len(p.sent[fnr])%2 == 0
				p.mu.Unlock()
				body := fmt.Sprintf(`{"innbyggerFnr":%q,"definisjonGuid":"6f1c2d3e-0000-4000-8000-0000000000a1","typePi":"samtykke","aktiv":%t,"tidspunkt":"2026-11-22T10:00:00Z"}`,
					fnr, aktiv)
				req, _ := http.NewRequest(http.MethodPost, p.target.base+pvkBase+"SettInnbyggersPersonvernInnstilling", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", p.auth)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				var out map[string]string
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if out["instansEndret"] != "endret" {
					continue
				}
				p.mu.Lock()
				p.sent[fnr] = append(p.sent[fnr], t0)
				p.mu.Unlock()
				mu.Lock()
				total++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total
}

// latencies pairs each arrival with its write: the n-th arrival of a citizen's change at a subscription
// is the citizen's n-th change (delivered in order), written at sent[fnr][n].
func latencies(sent map[string][]time.Time, got map[string][]time.Time) []time.Duration {
	var out []time.Duration
	for fnr, arrivals := range got {
		for n, at := range arrivals {
			if n < len(sent[fnr]) {
				out = append(out, at.Sub(sent[fnr][n]))
			}
		}
	}
	slices.Sort(out)
	return out
}

// BenchmarkWebhook measures end to end, from the PVK REST write to the receiver's 2xx: latency at a steady
// 500 changes/s to one subscription and at 200 changes/s to ten (2,000 deliveries/s), and the deliveries/s
// sustained to ten subscriptions when writes go as fast as they can.
func BenchmarkWebhook(b *testing.B) {
	srv, _ := childServer(b, b.TempDir(), "--webhook-allow-cidr", "127.0.0.0/8", "--webhook-allow-http-host", "127.0.0.1")
	tok := srv.token(b)
	sink := newWebhookSink(b)
	subscribe := func(i int) {
		body, _ := json.Marshal(map[string]any{"webhook": map[string]any{"url": sink.srv.URL + "/s" + strconv.Itoa(i)}})
		req, _ := http.NewRequest(http.MethodPost, srv.base+"/pvk/v1/subscriptions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("subscribe: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	// drain waits until the sink holds want deliveries (or a minute passed) and returns when the last came.
	drain := func(want int) time.Time {
		deadline := time.Now().Add(time.Minute)
		for sink.count() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return time.Now()
	}
	fmt.Printf("\n%-34s %6s %10s %12s %10s %10s %8s\n", "webhook (write to receiver 2xx)", "subs", "changes/s", "deliveries/s", "p50", "p99", "missing")
	step := func(name string, subs int, rate float64, first int) {
		b.Run(name, func(b *testing.B) {
			sink.mu.Lock()
			sink.got, sink.n = map[string]map[string][]time.Time{}, 0
			sink.mu.Unlock()
			w := &pacedWriter{target: srv, auth: "Bearer " + tok, sent: map[string][]time.Time{}, first: first}
			start := time.Now()
			written := w.run(rate, benchDuration())
			writeTime := time.Since(start)
			end := drain(written * subs)
			sink.mu.Lock()
			var lat []time.Duration
			for _, got := range sink.got {
				lat = append(lat, latencies(w.sent, got)...)
			}
			n := sink.n
			sink.mu.Unlock()
			slices.Sort(lat)
			r := loadResult{latencies: lat}
			deliveries := float64(n) / end.Sub(start).Seconds()
			fmt.Printf("%-34s %6d %10.0f %12.0f %10s %10s %8d\n", name, subs, float64(written)/writeTime.Seconds(), deliveries,
				r.percentile(0.50).Round(10*time.Microsecond), r.percentile(0.99).Round(10*time.Microsecond), written*subs-n)
			b.ReportMetric(deliveries, "deliveries/s")
			b.ReportMetric(float64(r.percentile(0.50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(r.percentile(0.99).Microseconds())/1000, "p99-ms")
		})
	}
	subscribe(0)
	time.Sleep(6 * time.Second) // the dispatcher picks the subscription up (at once on its event; this covers a missed one)
	step("500 changes/s, 1 subscription", 1, 500, 0)
	for i := 1; i < 10; i++ {
		subscribe(i)
	}
	time.Sleep(6 * time.Second)
	step("200 changes/s, 10 subscriptions", 10, 200, 2000)
	step("as fast as writes go, 10 subs", 10, 0, 4000)
}
