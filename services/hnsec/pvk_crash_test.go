package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/services/pvk"
)

// kill -9 while changes are being written: every committed change reaches the stream exactly once after
// a restart, whether the crash came between commit and publish (the first process runs without a relay, so
// every change is still in the outbox when it dies) or anywhere in the relay's work (the second is killed
// under load with its relay running).
func TestPVKCrashLosesAndDuplicatesNothing(t *testing.T) {
	dir := t.TempDir()
	natsAddr := freeAddr(t)

	acked := writeUntilKilled(t, dir, natsAddr, "--pvk-relay=false")
	committed, pending := pvkCounts(t, dir)
	t.Logf("first kill: %d acknowledged, %d committed, %d in the outbox", acked, committed, pending)
	require.GreaterOrEqual(t, committed, acked, "every acknowledged change was committed")
	require.Equal(t, committed, pending, "killed between commit and publish")

	acked = writeUntilKilled(t, dir, natsAddr)
	committed2, pending := pvkCounts(t, dir)
	t.Logf("second kill: %d more acknowledged, %d committed in all, %d in the outbox", acked, committed2, pending)
	require.GreaterOrEqual(t, committed2-committed, acked)

	childServer(t, dir, "--nats-listen", natsAddr)
	require.Eventually(t, func() bool { _, p := pvkCounts(t, dir); return p == 0 }, 30*time.Second, 50*time.Millisecond)
	requireStreamHoldsExactly(t, dir, natsAddr, committed2)
}

// writeUntilKilled starts a child on dir, writes changes from 8 connections for 700 ms, kills it with
// SIGKILL and returns how many changes it acknowledged.
func writeUntilKilled(t *testing.T, dir, natsAddr string, extra ...string) int64 {
	srv, cmd := childServer(t, dir, append([]string{"--nats-listen", natsAddr}, extra...)...)
	tok := srv.token(t)
	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 2 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body, _ := json.Marshal(setBody(validFnr(w*1000+i%50), (i/50)%2 == 0))
				req, _ := http.NewRequest(http.MethodPost, srv.base+pvkBase+"SettInnbyggersPersonvernInnstilling", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					return // the process is gone
				}
				var out map[string]string
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if out["instansEndret"] == "endret" {
					acked.Add(1)
				}
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	cmd.Kill()
	close(stop)
	wg.Wait()
	return acked.Load()
}

// requireStreamHoldsExactly checks that PVK's change stream holds endringsnummer 1..n, each once.
func requireStreamHoldsExactly(t *testing.T, dir, natsAddr string, n int64) {
	nc, err := nats.Connect("nats://"+natsAddr, natsToken(t, dir))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, pvk.StreamName, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	ids, seqs := map[string]bool{}, map[int64]bool{}
	for int64(len(seqs)) < n {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range batch.Messages() {
			got++
			id := m.Headers().Get("Nats-Msg-Id")
			require.False(t, ids[id], "change %s stored twice", id)
			ids[id] = true
			var ev struct {
				Endringsnummer int64 `json:"endringsnummer"`
			}
			require.NoError(t, json.Unmarshal(m.Data(), &ev))
			require.False(t, seqs[ev.Endringsnummer], "endringsnummer %d stored twice", ev.Endringsnummer)
			seqs[ev.Endringsnummer] = true
		}
		require.NoError(t, batch.Error())
		require.NotZero(t, got, "the stream holds %d of %d changes", len(seqs), n)
	}
	for i := int64(1); i <= n; i++ {
		require.True(t, seqs[i], "endringsnummer %d is missing", i)
	}
	st, err := js.Stream(ctx, pvk.StreamName)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(n), info.State.Msgs, "nothing more than the committed changes")
}

// token gets the demo client's access token from a child server.
func (t benchTarget) token(tb testing.TB) string {
	resp, err := http.PostForm(t.base+"/sts/Token", map[string][]string{"grant_type": {"client_credentials"},
		"client_id": {t.dev.ClientID}, "client_secret": {t.dev.ClientSecret}})
	require.NoError(tb, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(tb, json.NewDecoder(resp.Body).Decode(&out))
	return fmt.Sprint(out["access_token"])
}

// pvkCounts reads how many changes PVK committed and how many wait in its outbox.
func pvkCounts(t testing.TB, dir string) (committed, pending int64) {
	db, err := sql.Open("sqlite", filepath.Join(dir, "pvk.db"))
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.QueryRow(`SELECT value FROM sequence`).Scan(&committed))
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&pending))
	return committed, pending
}
