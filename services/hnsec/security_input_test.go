package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/services/pvk"
	"github.com/hnsec/hnsec/services/registry"
)

// The attacks of issue 14 on what the services take in and keep: decoder errors that would echo an fnr
// or a secret, answers that caches or browsers could keep or sniff, impossible birth dates, webhook URLs
// that reach a refused IPv4 address through IPv6, and secrets readable from a copy of the database.
// Assertions never print the secrets, tokens or fnrs they look for: a failure says what leaked, not the value.

// inputOperatorToken is an access token of the bootstrap operator (operator.json).
func (s *testServer) inputOperatorToken() string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, registry.OperatorFile))
	require.NoError(s.t, err)
	var op registry.Credentials
	require.NoError(s.t, json.Unmarshal(b, &op))
	r := s.tokenForm(op.ClientID, op.ClientSecret)
	require.Equal(s.t, http.StatusOK, r.status, "operator token: %s", r.body["error_description"])
	return r.body["access_token"].(string)
}

// inputTableBytes is every value of every row of a table, for looking for what must not be stored.
func inputTableBytes(t *testing.T, db *sql.DB, table string) []byte {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT * FROM "+table)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out bytes.Buffer
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		for _, v := range vals {
			if b, ok := v.([]byte); ok {
				out.Write(b)
			} else {
				fmt.Fprint(&out, v)
			}
			out.WriteByte('|')
		}
	}
	require.NoError(t, rows.Err())
	return out.Bytes()
}

// inputLeaks reports whether text holds any 10 consecutive characters of value: decoders may quote a
// fragment (protojson quoted an unquoted secret from its first letter on).
func inputLeaks(text, value string) bool {
	for i := 0; i+10 <= len(value); i++ {
		if strings.Contains(text, value[i:i+10]) {
			return true
		}
	}
	return false
}

// inputRestart starts a server again on s's data directory (after s.stop and whatever the test changed).
func inputRestart(s *testServer) *testServer {
	cfg := s.cfg
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	return startTestServer(s.t, cfg)
}

// An fnr sent as a JSON number, a secret sent unquoted or as a number, and a wrong query parameter are
// refused with the field's name and the kind of problem; the value reaches neither the answer nor the log.
// Before: protojson's and grpc-gateway's errors quoted the value into error_description and the gateway's
// "request failed" log line.
func TestSecurityInputDecoderErrorsNeverEchoValues(t *testing.T) {
	s := newTestServer(t)
	tok, opTok := s.token(), s.inputOperatorToken()
	fnr := validFnr(15000) // a JSON number cannot start with 0
	require.NotEqual(t, byte('0'), fnr[0])
	secret := s.dev.ClientSecret
	const numericSecret = "73920461857302948576"
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		value                    string // what must not be echoed
		field                    string // what the error names instead
	}{
		{"PVK read, fnr as a number", http.MethodPost, pvkBase + "SjekkInnbyggersPiStatus",
			`{"definisjonGuid":"` + pvk.DemoDefinition.GUID + `","innbyggerFnr":` + fnr + `}`, bearer(tok), fnr, "innbyggerFnr"},
		{"PVK write, fnr as a number", http.MethodPost, pvkBase + "SettInnbyggersPersonvernInnstilling",
			`{"innbyggerFnr":` + fnr + `,"aktiv":true}`, bearer(tok), fnr, "innbyggerFnr"},
		{"PVK read, fnr unquoted", http.MethodPost, pvkBase + "HentInnbyggersPiForPart",
			`{"innbyggerFnr":` + fnr + `x,"partKode":"DEMO"}`, bearer(tok), fnr, "syntax error"},
		{"PVK read, fnr in a number field", http.MethodPost, pvkBase + "HentInnbyggereAktivePiForDefinisjon",
			`{"definisjonGuid":"` + pvk.DemoDefinition.GUID + `","pagingReference":"` + fnr + `x"}`, bearer(tok), fnr, "pagingReference"},
		{"token, secret unquoted", http.MethodPost, "/sts/Token",
			`{"grant_type":"client_credentials","client_id":"` + s.dev.ClientID + `","client_secret":` + secret + `}`, nil, secret, "syntax error"},
		{"token, secret as a number", http.MethodPost, "/sts/Token",
			`{"grant_type":"client_credentials","client_id":"` + s.dev.ClientID + `","client_secret":` + numericSecret + `}`, nil, numericSecret,
			"client_secret"},
		{"registry body field, fnr as a number", http.MethodPatch, "/registry/v1/clients/" + s.dev.ClientID,
			`{"name":` + fnr + `}`, bearer(opTok), fnr, "name"},
		{"subscription, secret where a boolean goes", http.MethodPost, "/pvk/v1/subscriptions",
			`{"webhook":{"url":"https://93.184.216.34/hook","useXAuthorization":"` + numericSecret + `"}}`, bearer(tok), numericSecret,
			"webhook.useXAuthorization"},
		{"query parameter, fnr in a number", http.MethodGet, "/registry/v1/clients?pageSize=" + fnr + "x", "", bearer(opTok), fnr, "pageSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := ""
			if tt.body != "" {
				ct = "application/json"
			}
			r := s.do(tt.method, tt.path, ct, []byte(tt.body), tt.header)
			require.Equal(t, http.StatusBadRequest, r.status)
			require.False(t, inputLeaks(string(r.raw), tt.value), "the answer echoes the value sent")
			desc, _ := r.body["error_description"].(string)
			if desc == "" {
				desc, _ = r.body["message"].(string) // PVK's shape
			}
			require.Contains(t, desc, tt.field, "the error names the field or the kind of problem")
			require.False(t, inputLeaks(s.logs.String(), tt.value), "the server log holds the value sent")
		})
	}
}

// Answers carrying secrets or personal data are never stored by caches (Cache-Control: no-store), no
// answer may be content-sniffed (X-Content-Type-Options: nosniff), and over TLS every answer says HSTS.
// Before: only the OAuth2 endpoints said no-store; nothing said nosniff or HSTS.
func TestSecurityInputHTTPHygieneHeaders(t *testing.T) {
	s := newTestServer(t)
	tok, opTok := s.token(), s.inputOperatorToken()
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	fnr := validFnr(15001)
	require.Equal(t, http.StatusOK, s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(fnr, true)).status)
	jsonBody := func(v any) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}
	tests := []struct {
		name, method, path string
		body               []byte
		header             http.Header
		status             int
		cacheControl       string // "" for no-store
	}{
		{"token", http.MethodPost, "/sts/Token", []byte("grant_type=client_credentials&client_id=" + s.dev.ClientID + "&client_secret=" +
			s.dev.ClientSecret), nil, http.StatusOK, ""},
		{"client creation", http.MethodPost, "/registry/v1/clients", jsonBody(map[string]any{"name": "Hygiene", "organisationNumber": "994598759",
			"scopes": s.dev.Scopes[:1]}), bearer(opTok), http.StatusOK, ""},
		{"secret rotation", http.MethodPost, "/registry/v1/clients/" + s.dev.ClientID + "/secrets", []byte(`{}`), bearer(opTok), http.StatusOK, ""},
		{"client read", http.MethodGet, "/registry/v1/clients/" + s.dev.ClientID, nil, bearer(opTok), http.StatusOK, ""},
		{"subscription creation", http.MethodPost, "/pvk/v1/subscriptions", []byte(`{"filters":{}}`), bearer(tok), http.StatusOK, ""},
		{"subscription list", http.MethodGet, "/pvk/v1/subscriptions", nil, bearer(tok), http.StatusOK, ""},
		{"PVK read", http.MethodPost, pvkBase + "SjekkInnbyggersPiStatus", jsonBody(map[string]any{"innbyggerFnr": fnr,
			"definisjonGuid": pvk.DemoDefinition.GUID}), bearer(tok), http.StatusOK, ""},
		{"PVK read by part", http.MethodPost, pvkBase + "HentInnbyggersPiForPart", jsonBody(map[string]any{"innbyggerFnr": fnr,
			"partKode": "DEMO"}), bearer(tok), http.StatusOK, ""},
		{"an error", http.MethodGet, "/registry/v1/clients/" + s.dev.ClientID, nil, nil, http.StatusUnauthorized, ""},
		{"no such endpoint", http.MethodGet, "/nowhere", nil, nil, http.StatusNotFound, ""},
		{"JWK Set", http.MethodGet, "/sts/.well-known/jwks.json", nil, nil, http.StatusOK, "public, max-age="},
		{"metadata", http.MethodGet, "/.well-known/oauth-authorization-server", nil, nil, http.StatusOK, "-"},
		{"health", http.MethodGet, "/healthz", nil, nil, http.StatusOK, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := ""
			switch {
			case tt.path == "/sts/Token":
				ct = form
			case tt.body != nil:
				ct = "application/json"
			}
			r := s.do(tt.method, tt.path, ct, tt.body, tt.header)
			require.Equal(t, tt.status, r.status, "%s", r.body["error_description"])
			require.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
			switch tt.cacheControl {
			case "":
				require.Equal(t, "no-store", r.header.Get("Cache-Control"))
			case "-":
				require.NotContains(t, r.header.Get("Cache-Control"), "no-store")
			default:
				require.True(t, strings.HasPrefix(r.header.Get("Cache-Control"), tt.cacheControl), r.header.Get("Cache-Control"))
			}
			require.Empty(t, r.header.Get("Strict-Transport-Security"), "no HSTS over plain HTTP")
		})
	}

	t.Run("HSTS over TLS", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, writeDevCerts(dir, []string{"127.0.0.1"}, time.Now()))
		ts := newTestServer(t, func(c *serveConfig) {
			c.HTTPTLSCert, c.HTTPTLSKey = filepath.Join(dir, devCertFile), filepath.Join(dir, devCertKeyFile)
		})
		ca, err := os.ReadFile(filepath.Join(dir, devCAFile))
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(ca))
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		base := "https://" + strings.TrimPrefix(ts.base, "http://")
		for _, path := range []string{"/healthz", "/sts/.well-known/jwks.json", "/nowhere"} {
			var resp *http.Response
			require.Eventually(t, func() bool {
				resp, err = client.Get(base + path)
				return err == nil
			}, 5*time.Second, 20*time.Millisecond)
			resp.Body.Close()
			require.Equal(t, "max-age=31536000", resp.Header.Get("Strict-Transport-Security"), path)
			require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		}
	})
}

// PVK refuses fnrs whose first six digits are no calendar date (31 February, 29 February in a year that
// is not a leap year by the individual number's century), in reads and writes alike.
// Before: any day 1–31 of any month passed.
func TestSecurityInputFnrCalendarDate(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	tests := []struct {
		name, fnr string
		ok        bool
	}{
		{"31 February", "31020100063", false},
		{"31 April", "31040100043", false},
		{"29 February 1900", "29020000064", false},
		{"D-number 31 February", "71020100057", false},
		{"29 February 2000", "29020050088", true},
		{"D-number 31 January", "71010100067", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(tt.fnr, true))
			r := s.pvkCall("SjekkInnbyggersPiStatus", tok, map[string]any{"innbyggerFnr": tt.fnr, "definisjonGuid": pvk.DemoDefinition.GUID})
			if tt.ok {
				require.Equal(t, http.StatusOK, w.status, "%s", w.body["message"])
				require.Equal(t, http.StatusOK, r.status, "%s", r.body["message"])
				return
			}
			for _, resp := range []response{w, r} {
				require.Equal(t, http.StatusBadRequest, resp.status)
				require.Equal(t, "EPVK-100003", resp.body["code"])
				require.Equal(t, "innbyggerFnr does not start with a valid date", resp.body["message"])
			}
		})
	}
}

// A webhook URL may not reach a refused IPv4 address through an IPv6 form that carries it (NAT64, 6to4,
// IPv4-compatible, Teredo), nor the benchmarking, IETF and documentation ranges.
// Before: only IPv4-mapped IPv6 was unwrapped; these were accepted.
func TestSecurityInputWebhookURLsCarryingRefusedIPv4(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	for _, u := range []string{
		"https://[64:ff9b::a9fe:a9fe]/hook", // NAT64 of the cloud metadata address
		"https://[64:ff9b::a00:1]/hook",     // NAT64 of 10.0.0.1
		"https://[64:ff9b:1::a00:1]/hook",   // local-use NAT64
		"https://[2002:7f00:1::1]/hook",     // 6to4 of 127.0.0.1
		"https://[::127.0.0.1]/hook",        // IPv4-compatible
		"https://[::ffff:0:a00:1]/hook",     // IPv4-translated
		"https://[2001:0:5db8:d822::80ff:fffe]/hook",
		"https://198.18.0.1/hook",
		"https://192.0.0.8/hook",
		"https://192.0.2.1/hook",
		"https://198.51.100.1/hook",
		"https://203.0.113.1/hook",
		"https://[2001:db8::1]/hook",
	} {
		t.Run(u, func(t *testing.T) {
			r := s.subCall(http.MethodPost, "", tok, map[string]any{"webhook": map[string]any{"url": u}})
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.body["message"])
			require.Equal(t, "EPVK-100062", r.body["code"])
		})
	}
}

// Webhook secrets are sealed under the KEK: the subscriptions table never holds one in the clear, a
// secret an older version stored in the clear is sealed on the next start, and the subscriber's
// verification with that secret still succeeds. Before: the secret and previous_secret columns held them.
func TestSecurityInputWebhookSecretsSealedAtRest(t *testing.T) {
	s := newWebhookServer(t)
	tok := s.token()
	rcv := newReceiver(t)
	created := s.subCall(http.MethodPost, "", tok, map[string]any{"webhook": map[string]any{"url": rcv.srv.URL + "/pvk"}})
	require.Equal(t, http.StatusOK, created.status, "%s", created.body["message"])
	id := created.body["subscription"].(map[string]any)["subscriptionId"].(string)
	rotated := s.subCall(http.MethodPost, "/"+id+":rotateSecret", tok, map[string]any{})
	require.Equal(t, http.StatusOK, rotated.status, "%s", rotated.body["message"])
	previous, secret := created.body["webhookSecret"].(string), rotated.body["webhookSecret"].(string)
	rcv.expect(s.base, s.cfg.STS.Issuer, s.dev.ClientID, secret, false)
	db := s.serviceDB("pvk")
	requireNoSecret := func(what string) {
		t.Helper()
		raw := inputTableBytes(t, db, "subscriptions")
		for _, v := range []string{secret, previous, strings.TrimPrefix(secret, pvk.WebhookSecretPrefix), strings.TrimPrefix(previous, pvk.WebhookSecretPrefix)} {
			require.False(t, bytes.Contains(raw, []byte(v)), "%s: the subscriptions table holds a webhook secret in the clear", what)
		}
	}
	requireNoSecret("after creation and rotation")

	// The row as a version without sealing left it: the secrets in the clear columns, nothing sealed.
	s.stop()
	_, err := db.ExecContext(context.Background(), `UPDATE subscriptions SET secret = ?, previous_secret = ?, secret_sealed = ?,
		previous_secret_sealed = ? WHERE id = ?`, secret, previous, []byte{}, []byte{}, id)
	require.NoError(t, err)

	s2 := inputRestart(s)
	requireNoSecret("after the restart")
	rcv.expect(s2.base, s2.cfg.STS.Issuer, s2.dev.ClientID, secret, false)
	s2.writeChanges(s2.token(), 300, 1, 1)
	rcv.waitFor(1, 10*time.Second)
	rcv.mu.Lock()
	require.Empty(t, rcv.rejected, "the migrated secret still signs")
	rcv.mu.Unlock()
	for _, logs := range []string{s.logs.String(), s2.logs.String()} {
		require.False(t, strings.Contains(logs, strings.TrimPrefix(secret, pvk.WebhookSecretPrefix)), "a webhook secret reached the log")
	}
}

// The registry's secret hash key is sealed under the KEK: settings_kv holds no clear key, the sealed one
// is the key that hashes client secrets, and a clear key an older version stored is sealed on the next
// start, after which existing client secrets still authenticate. Before: settings_kv held the key in the
// clear, under secret_hash_key.
func TestSecurityInputSecretHashKeySealedAtRest(t *testing.T) {
	s := newTestServer(t)
	sealer := s.sealer()
	db := s.serviceDB("registry")
	ctx := context.Background()
	aad := []byte("registry/settings_kv/secret_hash_key")
	pepper := func() []byte {
		t.Helper()
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM settings_kv WHERE name = 'secret_hash_key'`).Scan(&n))
		require.Zero(t, n, "settings_kv holds the secret hash key in the clear")
		var sealed []byte
		require.NoError(t, db.QueryRowContext(ctx, `SELECT value FROM settings_kv WHERE name = 'secret_hash_key.sealed'`).Scan(&sealed))
		key, err := sealer.Open(sealed, aad)
		require.NoError(t, err, "the KEK opens the sealed key")
		var hashes [][]byte
		rows, err := db.QueryContext(ctx, `SELECT hash FROM client_secrets WHERE client_id = ?`, s.dev.ClientID)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var h []byte
			require.NoError(t, rows.Scan(&h))
			hashes = append(hashes, h)
		}
		require.Contains(t, hashes, secrets.Hash(key, s.dev.ClientSecret), "the sealed key is the one that hashes client secrets")
		return key
	}
	key := pepper()

	// The settings as a version without sealing left them: the key in the clear.
	s.stop()
	_, err := db.ExecContext(ctx, `DELETE FROM settings_kv WHERE name = 'secret_hash_key.sealed'`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO settings_kv (name, value) VALUES ('secret_hash_key', ?)`, key)
	require.NoError(t, err)

	s2 := inputRestart(s)
	require.Equal(t, key, pepper(), "the clear key was sealed, not replaced")
	r := s2.tokenForm(s2.dev.ClientID, s2.dev.ClientSecret)
	require.Equal(t, http.StatusOK, r.status, "an existing client secret still authenticates: %s", r.body["error_description"])
}
