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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/services/dispatcher"
	"github.com/hnsec/hnsec/services/pvk"
	"github.com/hnsec/hnsec/services/registry"
	"github.com/hnsec/hnsec/services/sts"
)

// admin runs `hnsec admin ARGS` against s and returns what it printed.
func (s *testServer) admin(args ...string) (string, error) {
	var out bytes.Buffer
	full := append([]string{"admin"}, args...)
	// The shared flags follow the command's name: admin GROUP CMD, or admin pvk subscription CMD.
	at := 3
	if len(args) > 2 && args[0] == "pvk" && args[1] == "subscription" {
		at = 4
	}
	full = append(full[:at:at], append([]string{"--addr", s.cfg.GRPCAddr, "--data-dir", s.cfg.DataDir}, full[at:]...)...)
	err := rootCommand(&out).ParseAndRun(context.Background(), full)
	return out.String(), err
}

func TestRestartKeepsClientsKeysAndReferences(t *testing.T) {
	s := newTestServer(t)
	r := s.tokenForm(s.dev.ClientID, s.dev.ClientSecret)
	require.Equal(t, http.StatusOK, r.status)
	token := r.body["access_token"].(string)
	operator, err := os.ReadFile(filepath.Join(s.cfg.DataDir, registry.OperatorFile))
	require.NoError(t, err)

	s2 := s.restart()
	require.Equal(t, s.dev, s2.dev, "dev mode keeps the demo client across restarts")
	require.Equal(t, http.StatusOK, s2.tokenForm(s.dev.ClientID, s.dev.ClientSecret).status, "the client still authenticates")
	ref, err := s2.lookup(token)
	require.NoError(t, err, "the stored reference and the signing key survived the restart")
	require.Equal(t, s.dev.ClientID, ref.GetClientId())
	again, err := os.ReadFile(filepath.Join(s.cfg.DataDir, registry.OperatorFile))
	require.NoError(t, err)
	require.Equal(t, operator, again, "operator.json is written once")
}

func TestDataFilesArePrivate(t *testing.T) {
	s := newTestServer(t)
	files := []string{registry.OperatorFile, registry.DevClientFile, registry.DevAPIFile, "kek"}
	if s.cfg.DatabaseURL == "" {
		files = append(files, "sts.db", "registry.db", "pvk.db", "dispatcher.db")
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(s.cfg.DataDir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
}

func TestAdminCreateBlockUnblock(t *testing.T) {
	s := newTestServer(t)
	out, err := s.admin("client", "create", "--name", "Beste Journal, God Lege", "--orgnr", "971000007",
		"--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read", "--scope", "x/y", "-o", "json")
	require.NoError(t, err)
	var created map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.ElementsMatch(t, []string{"client_id", "client_secret", "scopes"}, keys(created))
	id, secret := created["client_id"].(string), created["client_secret"].(string)
	require.Equal(t, []any{"nhn:helsenorge.eksternapi/personverninnstilling_read", "x/y"}, created["scopes"])

	r := s.tokenForm(id, secret)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	c := jwtPart(t, r.body["access_token"].(string), 1)
	require.Equal(t, "Beste Journal, God Lege", c["client_name"])

	// Blocking reaches the STS's cache through the registry's change event.
	_, err = s.admin("client", "block", id)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(c *assertCollect) {
		r := s.tokenForm(id, secret)
		require.Equal(c, http.StatusBadRequest, r.status)
		require.Equal(c, "unauthorized_client", r.body["error"])
		require.Equal(c, "client is blocked", r.body["error_description"])
	}, time.Second, 20*time.Millisecond)

	out, err = s.admin("client", "unblock", "-o", "json", id)
	require.NoError(t, err)
	require.Contains(t, out, `"status":"CLIENT_STATUS_ACTIVE"`)
	require.Equal(t, http.StatusOK, s.tokenForm(id, secret).status)
}

func TestAdminRejectsBadInput(t *testing.T) {
	s := newTestServer(t)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"client", "create", "--name", "A", "--orgnr", "971000008", "--scope", "a"}, "invalid_request: organisation_number has a wrong check digit"},
		{[]string{"client", "create", "--name", "A", "--orgnr", "97100000", "--scope", "a"}, "invalid_request: organisation_number must be 9 digits"},
		{[]string{"client", "create", "--name", "", "--orgnr", "971000007", "--scope", "a"}, "invalid_request: name must be 1 to 200 characters"},
		{[]string{"client", "create", "--name", "A", "--orgnr", "971000007"}, "invalid_request: scopes: at least one scope is required"},
		{[]string{"client", "create", "--name", "A", "--orgnr", "971000007", "--scope", `a"b`}, `invalid_request: scopes: scope "a\"b" has a character not allowed in a scope`},
		{[]string{"client", "get", "nope"}, "invalid_request: client_id must be a GUID"},
		{[]string{"client", "get", "6f1c2d3e-0000-4000-8000-00000000dead"}, "not_found: client not found"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := s.admin(tt.args...)
			require.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestRegistryRESTNeedsAnOperatorToken(t *testing.T) {
	s := newTestServer(t)
	path := "/registry/v1/clients/" + s.dev.ClientID
	r := s.do(http.MethodGet, path, "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "invalid_token", r.body["error"])
	require.Equal(t, `Bearer realm="hnsec", error="invalid_token"`, r.header.Get("WWW-Authenticate"))

	demo := s.tokenForm(s.dev.ClientID, s.dev.ClientSecret).body["access_token"].(string)
	r = s.do(http.MethodGet, path, "", nil, http.Header{"Authorization": {"Bearer " + demo}})
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "access_denied", r.body["error"])
	require.Equal(t, "the access token lacks scope hnsec:registry.admin", r.body["error_description"])

	var op registry.Credentials
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, registry.OperatorFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &op))
	opTok := s.do(http.MethodPost, "/sts/Token", form, []byte("grant_type=client_credentials&scope=hnsec:registry.admin&client_id="+
		op.ClientID+"&client_secret="+op.ClientSecret), nil).body["access_token"].(string)
	r = s.do(http.MethodGet, path, "", nil, http.Header{"Authorization": {"Bearer " + opTok}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Equal(t, "Ekstern testklient", r.body["client"].(map[string]any)["name"])
	require.NotContains(t, string(r.raw), "secret", "no secret material in client answers")

	r = s.do(http.MethodGet, "/sts/nothing", "", nil, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	require.Equal(t, "not_found", r.body["error"])
}

// metricsText returns the server's /metrics page.
func (s *testServer) metricsText() string {
	s.t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

func TestHealthMetricsAndLogHygiene(t *testing.T) {
	s := newTestServer(t)
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/healthz", "", nil, nil).status)
	require.Equal(t, http.StatusOK, s.do(http.MethodGet, "/readyz", "", nil, nil).status)

	ok := s.tokenForm(s.dev.ClientID, s.dev.ClientSecret)
	token := ok.body["access_token"].(string)
	s.tokenForm(s.dev.ClientID, "not-the-secret-but-still-secret")
	s.do(http.MethodPost, "/sts/Token", form, []byte("grant_type=client_credentials"), basicHeader(s.dev.ClientID, s.dev.ClientSecret+"x"))

	metrics := s.metricsText()
	require.Contains(t, metrics, `hnsec_sts_token_requests_total{outcome="issued"} 1`)
	require.Contains(t, metrics, `hnsec_sts_token_requests_total{outcome="invalid_client"} 2`)
	require.Contains(t, metrics, `hnsec_sts_token_duration_seconds_bucket`)
	require.Contains(t, metrics, `hnsec_build_info{commit="`, "the build is named")

	openapi := s.do(http.MethodGet, "/openapi.json", "", nil, nil)
	require.Equal(t, http.StatusOK, openapi.status)
	require.Contains(t, string(openapi.raw), "/sts/Token")

	logs := s.logs.String()
	for _, secret := range []string{s.dev.ClientSecret, "not-the-secret-but-still-secret", token, strings.Split(token, ".")[1]} {
		require.NotContains(t, logs, secret, "logs never hold secrets or tokens")
	}
}

type assertCollect = assert.CollectT

// Every token answered 200 during a graceful shutdown is resolvable after a restart: references are
// durable before the answer, and shutdown finishes in-flight requests.
func TestGracefulShutdownLosesNoIssuedToken(t *testing.T) {
	s := newTestServer(t)
	var (
		mu     sync.Mutex
		tokens []string
		wg     sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	body := "grant_type=client_credentials&client_id=" + s.dev.ClientID + "&client_secret=" + s.dev.ClientSecret
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Post(s.base+"/sts/Token", form, strings.NewReader(body))
				if err != nil {
					continue // the listener has closed
				}
				var out map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					tokens = append(tokens, out["access_token"].(string))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s.stop()
	close(stop)
	wg.Wait()
	require.NotEmpty(t, tokens)

	s2 := s.restart()
	for _, tok := range tokens {
		_, err := s2.lookup(tok)
		require.NoError(t, err)
	}
	t.Logf("%d tokens issued around the shutdown, all resolvable after restart", len(tokens))
}

func TestMigrateCommand(t *testing.T) {
	tests := []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"sqlite", func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} }},
		{"postgres", func(t *testing.T) []string {
			var cfg serveConfig
			usePostgres(t, &cfg)
			return []string{"--database-url", cfg.DatabaseURL, "--database-schema-prefix", cfg.DatabaseSchemaPrefix}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args(t)
			for range 2 { // the second run finds everything migrated
				var out bytes.Buffer
				require.NoError(t, rootCommand(&out).ParseAndRun(context.Background(), append([]string{"migrate"}, args...)))
				require.Equal(t, fmt.Sprintf("registry: schema version %d\nsts: schema version %d\npvk: schema version %d\ndispatcher: schema version %d\n",
					len(registry.Migrations.SQLite), len(sts.Migrations.SQLite), len(pvk.Migrations.SQLite), len(dispatcher.Migrations.SQLite)), out.String())
			}
			err := rootCommand(io.Discard).ParseAndRun(context.Background(), append([]string{"migrate", "--services", "billing"}, args...))
			require.EqualError(t, err, `--services: unknown database "billing" (want dispatcher, pvk, registry, sts)`)
		})
	}
}
