package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/pkg/obs"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
	"github.com/hnsec/hnsec/services/registry"
)

// testServer is one hnsec process (every service, monolithic mode) on loopback ports the OS chose.
type testServer struct {
	t       *testing.T
	cfg     serveConfig
	base    string
	natsURL string
	nc      *nats.Conn
	dev     registry.Credentials
	logs    *syncBuffer
	conn    *grpc.ClientConn
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// syncBuffer collects log output for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// envE2EPostgres, set with HNSEC_TEST_DATABASE_URL, runs every end-to-end test on PostgreSQL.
const envE2EPostgres = "HNSEC_TEST_E2E_POSTGRES"

// usePostgres points cfg at schemas of its own in the PostgreSQL of HNSEC_TEST_DATABASE_URL; the test is
// skipped without one.
func usePostgres(t *testing.T, cfg *serveConfig) {
	for _, b := range storetest.Backends() {
		if b.Name == "postgres" {
			sc := b.Config(t)
			cfg.DatabaseURL, cfg.DatabaseSchemaPrefix, cfg.DatabaseMaxConns = sc.DatabaseURL, sc.SchemaPrefix, sc.MaxConns
			return
		}
	}
	t.Skip("no PostgreSQL: set " + storetest.EnvDatabaseURL)
}

// serviceDB opens a service's database as the server has it (SQLite file or PostgreSQL schema), for tests
// that look into its tables; it is closed when the test ends.
func (s *testServer) serviceDB(name string) *sql.DB {
	s.t.Helper()
	db, err := store.Attach(context.Background(), storeConfigOf(s.cfg), name)
	require.NoError(s.t, err)
	s.t.Cleanup(func() { _ = db.Close() })
	return db.Write
}

// newTestServer starts a dev-mode server on a fresh data directory; mods adjust the configuration.
func newTestServer(t *testing.T, mods ...func(*serveConfig)) *testServer {
	t.Helper()
	var cfg serveConfig
	cfg.registerFlags(flag.NewFlagSet("test", flag.ContinueOnError)) // the flag defaults
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.DataDir, cfg.Dev, cfg.LogLevel = "127.0.0.1:0", "127.0.0.1:0", t.TempDir(), true, "debug"
	if os.Getenv(envE2EPostgres) != "" {
		usePostgres(t, &cfg)
	}
	for _, m := range mods {
		m(&cfg)
	}
	return startTestServer(t, cfg)
}

// newTestLogger logs to the test's output and to a buffer the test can read.
func newTestLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	logs := &syncBuffer{}
	log, err := obs.NewLogger(io.MultiWriter(t.Output(), logs), "debug")
	require.NoError(t, err)
	return log, logs
}

func startTestServer(t *testing.T, cfg serveConfig) *testServer {
	t.Helper()
	log, logs := newTestLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, log)
	require.NoError(t, err)
	s := &testServer{t: t, cfg: cfg, base: "http://" + a.httpAddr(), logs: logs, cancel: cancel, done: make(chan error, 1)}
	if a.bus != nil {
		s.natsURL, s.nc = a.bus.ClientURL(), a.bus.Conn
	}
	if a.devClient != nil {
		s.dev = *a.devClient
	}
	// Later starts on the same data directory reach the new ports.
	s.cfg.GRPCAddr = a.grpcLis.Addr().String()
	go func() { s.done <- a.run(ctx) }()
	// Tests call internal RPCs (LookupReference) as the services do.
	s.conn, err = grpcx.Dial(a.grpcLis.Addr().String(), a.internal.Credential)
	require.NoError(t, err)
	t.Cleanup(s.stop)
	return s
}

// stop shuts the server down gracefully and checks that it stopped cleanly.
func (s *testServer) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.conn.Close()
	s.cancel()
	select {
	case err := <-s.done:
		require.NoError(s.t, err)
	case <-time.After(30 * time.Second):
		s.t.Fatal("server did not stop within 30s")
	}
}

// restart stops the server and starts a new one on the same data directory.
func (s *testServer) restart() *testServer {
	s.stop()
	cfg := s.cfg
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	return startTestServer(s.t, cfg)
}

// response is an HTTP answer with its JSON body decoded.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// do sends a request to the REST gateway.
func (s *testServer) do(method, path, contentType string, body []byte, header http.Header) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		require.NoError(s.t, json.Unmarshal(raw, &r.body), "body %s", raw)
	}
	return r
}

const form = "application/x-www-form-urlencoded"

// tokenForm asks for a token with client_secret_post in a form body.
func (s *testServer) tokenForm(id, secret string) response {
	return s.do(http.MethodPost, "/sts/Token", form,
		[]byte("grant_type=client_credentials&client_id="+id+"&client_secret="+secret), nil)
}

// lookup resolves an access token through the STS's internal gRPC API.
func (s *testServer) lookup(token string) (*stsv1.Reference, error) {
	resp, err := stsv1.NewTokenServiceClient(s.conn).LookupReference(context.Background(), &stsv1.LookupReferenceRequest{AccessToken: token})
	return resp.GetReference(), err
}

// devClientFile reads dev-client.json.
func (s *testServer) devClientFile() registry.Credentials {
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, registry.DevClientFile))
	require.NoError(s.t, err)
	var c registry.Credentials
	require.NoError(s.t, json.Unmarshal(b, &c))
	return c
}

// jwtPart decodes part i (0 header, 1 claims) of a compact JWT.
func jwtPart(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func basicHeader(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}}
}
