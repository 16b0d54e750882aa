package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// webhookChildArgs let a child server's webhooks call loopback over http and retry within milliseconds.
var webhookChildArgs = []string{"--webhook-allow-cidr", "127.0.0.0/8", "--webhook-allow-http-host", "127.0.0.1",
	"--webhook-retry-schedule", "20ms,40ms,80ms,160ms,320ms,640ms", "--webhook-retry-tick", "10ms"}

// postJSON posts a JSON body with a bearer token to a child server and decodes the answer.
func (t benchTarget) postJSON(tb testing.TB, path, token string, body any) (int, map[string]any) {
	tb.Helper()
	b, err := json.Marshal(body)
	require.NoError(tb, err)
	req, err := http.NewRequest(http.MethodPost, t.base+path, bytes.NewReader(b))
	require.NoError(tb, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// writeUntil writes changes for 8 citizens from 8 connections until stop is closed or the server is gone.
func (t benchTarget) writeUntil(tb testing.TB, token string, first int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, _ := t.postJSON(tb, pvkBase+"SettInnbyggersPersonvernInnstilling", token, setBody(validFnr(first+c), i%2 == 0))
				if status != http.StatusOK {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// The dispatcher dies (kill -9) or restarts with its embedded NATS while changes are written and delivered,
// and a receiver fails some calls: after the restart every committed change reaches the receiver at least
// once, and after de-duplication by webhook-id each citizen's sekvensnummer only increases, none missing.
func TestWebhookDeliveryOutlivesCrashAndRestart(t *testing.T) {
	tests := []struct {
		name   string
		signal os.Signal
	}{
		{"kill -9", syscall.SIGKILL},
		{"restart with the embedded NATS", os.Interrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			srv, cmd := childServer(t, dir, webhookChildArgs...)
			tok := srv.token(t)
			rcv := newReceiver(t)
			var calls atomic.Int64
			rcv.setRespond(func(int, delivery) (int, http.Header) {
				if calls.Add(1)%13 == 0 {
					return http.StatusInternalServerError, nil // now and then: parked and retried
				}
				time.Sleep(time.Millisecond)
				return http.StatusOK, nil
			})
			status, created := srv.postJSON(t, "/pvk/v1/subscriptions", tok, map[string]any{"webhook": map[string]any{"url": rcv.srv.URL + "/pvk"}})
			require.Equal(t, http.StatusOK, status, "%v", created)
			rcv.expect(srv.base, "sikkerhet.helsenorge.no", srv.dev.ClientID, created["webhookSecret"].(string), false)

			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				srv.writeUntil(t, tok, 500, stop)
			}()
			time.Sleep(800 * time.Millisecond)
			require.NoError(t, cmd.Process.Signal(tt.signal))
			_ = cmd.Wait()
			<-done
			before := len(distinct(rcv.delivered()))

			srv, _ = childServer(t, dir, webhookChildArgs...)
			tok = srv.token(t)
			stop = make(chan struct{})
			done = make(chan struct{})
			go func() {
				defer close(done)
				srv.writeUntil(t, tok, 500, stop)
			}()
			time.Sleep(300 * time.Millisecond)
			close(stop)
			<-done
			committed, _ := pvkCounts(t, dir)
			got := rcv.waitFor(int(committed), 30*time.Second)
			t.Logf("%d changes committed, %d delivered before the %s, %d calls", committed, before, tt.name, calls.Load())
			requireCitizenOrder(t, got)
			seqs := map[int64]bool{}
			for _, d := range got {
				seqs[d.Seq] = true
			}
			for seq := int64(1); seq <= committed; seq++ {
				require.True(t, seqs[seq], "sekvensnummer %d never arrived", seq)
			}
			rcv.mu.Lock()
			require.Empty(t, rcv.rejected)
			rcv.mu.Unlock()
		})
	}
}
