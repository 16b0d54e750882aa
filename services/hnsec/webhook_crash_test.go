package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/services/hnsec/localcluster"
	"github.com/hnsec/hnsec/services/pvk"
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
// once, and after de-duplication by webhook-id each citizen's endringsnummer only increases, none missing.
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
			cmd.Signal(tt.signal)
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
				require.True(t, seqs[seq], "endringsnummer %d never arrived", seq)
			}
			rcv.mu.Lock()
			require.Empty(t, rcv.rejected)
			rcv.mu.Unlock()
		})
	}
}

// Two dispatcher replicas (the second a process of its own on the first's NATS and gRPC) share the
// subscriptions; killed, the second's share moves to the first once its leases lapse, and every change
// still reaches every receiver, in each citizen's order.
func TestWebhookReplicasShareTheWorkAndTakeOverFromADeadOne(t *testing.T) {
	natsAddr := freeAddr(t)
	lease := []string{"--dispatcher-lease-ttl", "1s"}
	dir := t.TempDir()
	first, _ := childServer(t, dir, slices.Concat([]string{"--nats-listen", natsAddr}, webhookChildArgs, lease)...)
	_, second := childServer(t, t.TempDir(), slices.Concat([]string{"--services", "dispatcher", "--nats-url", "nats://" + natsAddr,
		"--nats-credential-file", filepath.Join(dir, natsCredentialFile),
		"--peer-addr", first.grpcAddr, "--internal-credential-file", filepath.Join(dir, "internal-credential")}, webhookChildArgs, lease)...)
	tok := first.token(t)

	rcvs := make([]*receiver, 6)
	ids := make([]string, len(rcvs))
	for i := range rcvs {
		rcvs[i] = newReceiver(t)
		status, created := first.postJSON(t, "/pvk/v1/subscriptions", tok, map[string]any{"webhook": map[string]any{"url": rcvs[i].srv.URL + "/pvk"}})
		require.Equal(t, http.StatusOK, status, "%v", created)
		rcvs[i].expect(first.base, "sikkerhet.helsenorge.no", first.dev.ClientID, created["webhookSecret"].(string), false)
		ids[i] = created["subscription"].(map[string]any)["subscriptionId"].(string)
	}
	nc, err := nats.Connect("nats://"+natsAddr, natsToken(t, dir))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	owners := func() map[string]int {
		kv, err := js.KeyValue(context.Background(), "hnsec_dispatcher_leases")
		if err != nil {
			return nil
		}
		out := map[string]int{}
		for _, id := range ids {
			if e, err := kv.Get(context.Background(), "lease."+id); err == nil {
				out[string(e.Value())]++
			}
		}
		return out
	}
	require.Eventually(t, func() bool {
		o := owners()
		return len(o) == 2 && sum(o) == len(ids)
	}, 10*time.Second, 50*time.Millisecond, "both replicas hold leases: %v", owners())
	require.Equal(t, map[int]int{3: 2}, shares(owners()), "an equal share each")

	write := func(d time.Duration) {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			first.writeUntil(t, tok, 700, stop)
		}()
		time.Sleep(d)
		close(stop)
		<-done
	}
	write(500 * time.Millisecond)
	second.Kill()
	write(1500 * time.Millisecond)
	committed, _ := pvkCounts(t, dir)
	for i, rcv := range rcvs {
		got := rcv.waitFor(int(committed), 30*time.Second)
		requireCitizenOrder(t, got)
		rcv.mu.Lock()
		require.Empty(t, rcv.rejected, "receiver %d", i)
		rcv.mu.Unlock()
	}
	require.Eventually(t, func() bool { return len(owners()) == 1 }, 5*time.Second, 50*time.Millisecond, "the survivor holds every lease")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// shares counts the replicas by how many leases each holds.
func shares(m map[string]int) map[int]int {
	out := map[int]int{}
	for _, v := range m {
		out[v]++
	}
	return out
}

// startNATS runs a NATS server with JetStream on port, storing in dir, in the test process: the "external"
// NATS of a deployment.
func startNATS(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{ServerName: "external", Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		NoSigs: true, NoLog: true})
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(ns.Shutdown)
	return ns
}

// The external NATS server restarts while changes are written and delivered: the relay and the
// dispatcher reconnect, and every change still arrives, in each citizen's order.
func TestWebhookDeliveryOutlivesAnExternalNATSRestart(t *testing.T) {
	_, port, err := hostPort(freeAddr(t))
	require.NoError(t, err)
	natsDir := t.TempDir()
	ns := startNATS(t, natsDir, port)
	dir := t.TempDir()
	srv, _ := childServer(t, dir, slices.Concat([]string{"--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", port)}, webhookChildArgs)...)
	tok := srv.token(t)
	rcv := newReceiver(t)
	status, created := srv.postJSON(t, "/pvk/v1/subscriptions", tok, map[string]any{"webhook": map[string]any{"url": rcv.srv.URL + "/pvk"}})
	require.Equal(t, http.StatusOK, status, "%v", created)
	rcv.expect(srv.base, "sikkerhet.helsenorge.no", srv.dev.ClientID, created["webhookSecret"].(string), false)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.writeUntil(t, tok, 800, stop)
	}()
	time.Sleep(500 * time.Millisecond)
	ns.Shutdown()
	ns.WaitForShutdown()
	time.Sleep(500 * time.Millisecond) // writes go on: PVK commits them to its outbox
	startNATS(t, natsDir, port)
	time.Sleep(700 * time.Millisecond)
	close(stop)
	<-done

	committed, _ := pvkCounts(t, dir)
	got := rcv.waitFor(int(committed), 30*time.Second)
	requireCitizenOrder(t, got)
	t.Logf("%d changes committed and delivered across the restart", committed)
}

// externalNATS is the NATS server of the machine, which the scale-out tests share.
const externalNATS = "nats://127.0.0.1:4222"

// useExternalNATS points cfg at the machine's NATS in a namespace of its own (removed at the end); the
// test is skipped when there is none.
func useExternalNATS(t *testing.T, cfg *serveConfig) {
	nc, err := nats.Connect(externalNATS, nats.Timeout(time.Second))
	if err != nil {
		t.Skipf("no NATS at %s: %v", externalNATS, err)
	}
	ns := fmt.Sprintf("t%d", time.Now().UnixNano())
	cfg.NATSURL, cfg.NATSNamespace = externalNATS, ns
	t.Cleanup(func() {
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx := context.Background()
		for name := range js.StreamNames(ctx).Name() {
			if strings.HasPrefix(name, ns+"_") || strings.HasPrefix(name, "KV_"+ns+"_") {
				_ = js.DeleteStream(ctx, name)
			}
		}
	})
}

// The whole flow on the external NATS server shared with other runs: PVK's stream, the dispatcher's lease
// bucket and every subject live in the test's own namespace, and the changes reach the receiver.
func TestWebhookOnASharedExternalNATS(t *testing.T) {
	s := newWebhookServer(t, func(c *serveConfig) { useExternalNATS(t, c) })
	tok := s.token()
	rcv := newReceiver(t)
	s.subscribe(tok, rcv, false, nil)
	n := s.writeChanges(tok, 900, 3, 3)
	requireCitizenOrder(t, rcv.waitFor(n, 10*time.Second))

	nc, err := nats.Connect(externalNATS)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), s.cfg.NATSNamespace+"_"+pvk.StreamName)
	require.NoError(t, err, "the change stream is the namespace's own")
	require.Equal(t, []string{s.cfg.NATSNamespace + "." + pvk.SubjectPrefix + "*"}, st.CachedInfo().Config.Subjects)
	require.EqualValues(t, n, st.CachedInfo().State.Msgs)
	_, err = js.KeyValue(context.Background(), s.cfg.NATSNamespace+"_hnsec_dispatcher_leases")
	require.NoError(t, err, "so is the lease bucket")
}

// freeAddr returns a loopback address no one listens on (for processes that must know each other's
// addresses before they start).
func freeAddr(t testing.TB) string {
	addr, err := localcluster.FreeAddr()
	require.NoError(t, err)
	return addr
}

// Microservices mode: one process runs the registry, the STS, introspection and the gateway, another PVK and
// the dispatcher; each names the other as the peer of the services it lacks. A client gets its token and
// writes changes through the first process's gateway, and the second process's dispatcher delivers them.
func TestMicroservicesAcrossTwoProcesses(t *testing.T) {
	natsAddr, front, back := freeAddr(t), freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	first, _ := childServer(t, dir, "--services", "registry,sts,introspection,gateway", "--nats-listen", natsAddr, "--grpc-addr", front,
		"--peer", "pvk="+back, "--peer", "dispatcher="+back)
	second, _ := childServer(t, t.TempDir(), slices.Concat([]string{"--services", "pvk,dispatcher", "--nats-url", "nats://" + natsAddr, "--grpc-addr", back,
		"--nats-credential-file", filepath.Join(dir, natsCredentialFile),
		"--peer-addr", front, "--internal-credential-file", filepath.Join(dir, "internal-credential")}, webhookChildArgs)...)
	// Without the gateway, the REST port serves the operations endpoints only.
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`, "/metrics": "hnsec_dispatcher_", "/openapi.json": "404"} {
		resp, err := http.Get(second.base + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Contains(t, fmt.Sprint(resp.StatusCode, string(body)), want, path)
	}
	tok := first.token(t)
	rcv := newReceiver(t)
	status, created := first.postJSON(t, "/pvk/v1/subscriptions", tok, map[string]any{"webhook": map[string]any{"url": rcv.srv.URL + "/pvk"}})
	require.Equal(t, http.StatusOK, status, "%v", created)
	rcv.expect(first.base, "sikkerhet.helsenorge.no", first.dev.ClientID, created["webhookSecret"].(string), false)

	for i := range 4 {
		status, out := first.postJSON(t, pvkBase+"SettInnbyggersPersonvernInnstilling", tok, setBody(validFnr(950+i%2), i < 2))
		require.Equal(t, http.StatusOK, status, "%v", out)
		require.Equal(t, "endret", out["instansEndret"])
	}
	requireCitizenOrder(t, rcv.waitFor(4, 10*time.Second))
	rcv.mu.Lock()
	require.Empty(t, rcv.rejected)
	rcv.mu.Unlock()
}

// The same two processes with mutual TLS instead of a shared internal credential: each has a credential
// of its own, so only the certificates of `hnsec dev certs` make their calls to each other internal. A
// client over TLS without a certificate reaches the public RPCs but not the internal ones, and a plaintext
// client reaches nothing.
func TestMicroservicesWithMutualTLS(t *testing.T) {
	certs := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, rootCommand(&out).ParseAndRun(context.Background(), []string{"dev", "certs", "--out", certs}))
	tlsArgs := []string{"--grpc-tls-cert", filepath.Join(certs, "node.pem"), "--grpc-tls-key", filepath.Join(certs, "node-key.pem"),
		"--grpc-tls-ca", filepath.Join(certs, "ca.pem")}
	natsAddr, front, back := freeAddr(t), freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	first, _ := childServer(t, dir, slices.Concat([]string{"--services", "registry,sts,introspection,gateway", "--nats-listen", natsAddr,
		"--grpc-addr", front, "--peer", "pvk=" + back, "--peer", "dispatcher=" + back}, tlsArgs)...)
	childServer(t, t.TempDir(), slices.Concat([]string{"--services", "pvk,dispatcher", "--nats-url", "nats://" + natsAddr, "--grpc-addr", back,
		"--nats-credential-file", filepath.Join(dir, natsCredentialFile), "--peer-addr", front}, webhookChildArgs, tlsArgs)...)
	tok := first.token(t)
	rcv := newReceiver(t)
	status, created := first.postJSON(t, "/pvk/v1/subscriptions", tok, map[string]any{"webhook": map[string]any{"url": rcv.srv.URL + "/pvk"}})
	require.Equal(t, http.StatusOK, status, "%v", created)
	rcv.expect(first.base, "sikkerhet.helsenorge.no", first.dev.ClientID, created["webhookSecret"].(string), false)
	status, _ = first.postJSON(t, pvkBase+"SettInnbyggersPersonvernInnstilling", tok, setBody(validFnr(970), true))
	require.Equal(t, http.StatusOK, status)
	rcv.waitFor(1, 10*time.Second)

	publicTLS, err := grpcx.ClientDialOption(filepath.Join(certs, "ca.pem"))
	require.NoError(t, err)
	conn, err := grpcx.Dial(front, "", publicTLS)
	require.NoError(t, err)
	defer conn.Close()
	sts := stsv1.NewTokenServiceClient(conn)
	_, err = sts.GetJwks(context.Background(), &stsv1.GetJwksRequest{})
	require.NoError(t, err, "a public RPC over TLS")
	_, err = sts.IssueSystemToken(context.Background(), &stsv1.IssueSystemTokenRequest{Audience: "x", Scopes: []string{"s"}, ClientId: "c"})
	require.Equal(t, codes.PermissionDenied, grpcstatus.Code(err), "an internal RPC without a service certificate: %v", err)
	plain, err := grpcx.Dial(front, "")
	require.NoError(t, err)
	defer plain.Close()
	_, err = stsv1.NewTokenServiceClient(plain).GetJwks(context.Background(), &stsv1.GetJwksRequest{})
	require.Equal(t, codes.Unavailable, grpcstatus.Code(err), "plaintext is refused: %v", err)
}
