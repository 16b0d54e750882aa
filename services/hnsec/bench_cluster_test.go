package main

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// BenchmarkCluster runs the local cluster (package localcluster: 3 NATS nodes, PostgreSQL, a process per
// service) with one and then two replicas of the STS, introspection, the dispatcher and the gateway, and
// measures how the work scales: tokens/s from 64 connections spread over the gateways, and deliveries/s
// draining a backlog (changes written while ten webhook subscriptions were paused) once they resume.
func BenchmarkCluster(b *testing.B) {
	fmt.Printf("\n%-12s %12s %10s %10s %8s %10s %14s\n", "cluster", "tokens/s", "p50", "p99", "errors", "backlog", "deliveries/s")
	for _, replicas := range []int{1, 2} {
		b.Run("replicas="+strconv.Itoa(replicas), func(b *testing.B) {
			c := startCluster(b, replicas)
			gw := clusterTarget(b, c, 0)
			var hosts []string
			for _, p := range c.Gateways() {
				hosts = append(hosts, p.HTTP)
			}
			cred := gw.dev
			req := tokenRequest(hosts[0], "grant_type=client_credentials&client_id="+cred.ClientID+"&client_secret="+cred.ClientSecret)
			request := func(int, int) []byte { return req }
			runRequests(hosts, request, 16, 2*time.Second) // warm-up
			tokens := runRequests(hosts, request, 64, benchDuration())

			tok := gw.token(b)
			sink := newWebhookSink(b)
			var subs []string
			for i := range 10 {
				status, created := gw.postJSON(b, "/pvk/v1/subscriptions", tok, map[string]any{"webhook": map[string]any{"url": sink.srv.URL + "/s" + strconv.Itoa(i)}})
				if status != http.StatusOK {
					b.Fatalf("subscribe: %d %v", status, created)
				}
				id := fmt.Sprint(created["subscription"].(map[string]any)["subscriptionId"])
				if status, out := gw.postJSON(b, "/pvk/v1/subscriptions/"+id+":pause", tok, map[string]any{}); status != http.StatusOK {
					b.Fatalf("pause: %d %v", status, out)
				}
				subs = append(subs, id)
			}
			w := &pacedWriter{target: gw, auth: "Bearer " + tok, sent: map[string][]time.Time{}}
			written := w.run(0, benchDuration())
			start := time.Now()
			for _, id := range subs {
				if status, out := gw.postJSON(b, "/pvk/v1/subscriptions/"+id+":resume", tok, map[string]any{}); status != http.StatusOK {
					b.Fatalf("resume: %d %v", status, out)
				}
			}
			deadline := time.Now().Add(3 * time.Minute)
			for sink.count() < written*len(subs) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			deliveries := float64(sink.count()) / time.Since(start).Seconds()
			fmt.Printf("%-12s %12.0f %10s %10s %8d %10d %14.0f\n", "replicas="+strconv.Itoa(replicas), tokens.perSecond(),
				tokens.percentile(0.50).Round(10*time.Microsecond), tokens.percentile(0.99).Round(10*time.Microsecond), tokens.failed,
				written*len(subs), deliveries)
			if missing := written*len(subs) - sink.count(); missing != 0 {
				b.Errorf("%d deliveries missing", missing)
			}
			b.ReportMetric(tokens.perSecond(), "tokens/s")
			b.ReportMetric(deliveries, "deliveries/s")
		})
	}
}
